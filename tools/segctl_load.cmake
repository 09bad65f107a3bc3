# `segctl load`: library seg_segctl_load (LoadFile / LoadMain, for segctl)
# and the standalone `seg-load FILE`. Included by tools/CMakeLists.txt.
add_library(seg_segctl_load STATIC ${CMAKE_CURRENT_LIST_DIR}/segctl_load.cc)
target_include_directories(seg_segctl_load PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(seg_segctl_load
  PUBLIC seg_ingest seg_common
  PRIVATE CLI11::CLI11 glog::glog seg_proto)
add_library(seg::segctl_load ALIAS seg_segctl_load)

add_executable(seg-load ${CMAKE_CURRENT_LIST_DIR}/segctl_load_main.cc)
target_link_libraries(seg-load PRIVATE seg_segctl_load)
