# The chaos run (tools/chaos.py, `tools/dev chaos`): seg-chaos-check, its
# checks against seg-loadgen's ground truth, and the direct evaluation it
# shares with tests/e2e_test.cc. Included by tools/CMakeLists.txt.
add_library(seg_chaos_truth STATIC ${CMAKE_CURRENT_LIST_DIR}/direct_evaluation.cc)
target_include_directories(seg_chaos_truth PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(seg_chaos_truth PUBLIC seg_script_host seg_common)
add_executable(seg-chaos-check ${CMAKE_CURRENT_LIST_DIR}/chaos_check_main.cc)
target_link_libraries(seg-chaos-check PRIVATE seg_chaos_truth seg_segmenter seg_store
  seg_stats_grpc gRPC::grpc++ PkgConfig::RDKAFKA CLI11::CLI11 glog::glog)
