# seg-loadgen: synthetic traffic (library seg_loadgen for tests and benches).
add_library(seg_loadgen STATIC ${CMAKE_CURRENT_LIST_DIR}/traffic.cc)
target_link_libraries(seg_loadgen PUBLIC seg_common seg_proto PRIVATE seg_ingest)
add_executable(seg-loadgen ${CMAKE_CURRENT_LIST_DIR}/seg_loadgen_main.cc)
target_link_libraries(seg-loadgen PRIVATE seg_loadgen seg_common CLI11::CLI11 glog::glog)
