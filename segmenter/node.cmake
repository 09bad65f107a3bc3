# seg::segmenter — the segmenter node (batch loop, membership state) and the
# seg-segmenter binary. Needs the store, the skip rules, the script host and
# the stats writer.
add_library(seg_segmenter STATIC
  ${CMAKE_CURRENT_LIST_DIR}/internal/node.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/node_options.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/membership.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/due_scanner.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/append_log.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/adapters.cc
)
target_link_libraries(seg_segmenter PUBLIC seg_common seg_skip seg_store seg_script_host
                                            seg_stats_writer)
add_library(seg::segmenter ALIAS seg_segmenter)
add_executable(seg-segmenter ${CMAKE_CURRENT_LIST_DIR}/seg_segmenter_main.cc)
target_link_libraries(seg-segmenter PRIVATE seg_segmenter seg_script_set CLI11::CLI11 glog::glog)
if(SEG_BUILD_TESTS)
  seg_add_test(segmenter_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/internal/membership_test.cc
            ${CMAKE_CURRENT_LIST_DIR}/internal/due_scanner_test.cc
            ${CMAKE_CURRENT_LIST_DIR}/internal/append_log_test.cc
    LIBS seg_segmenter seg_testing)
endif()
