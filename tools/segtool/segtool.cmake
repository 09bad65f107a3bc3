# segtool: the script developers' kit (test, run, explain, shadow, preview).
# Included by tools/CMakeLists.txt; needs the segmenter node library.
add_library(seg_segtool STATIC
  ${CMAKE_CURRENT_LIST_DIR}/internal/test_runner.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/user_rows.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/trace.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/hosts.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/inspect.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/dry_run.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/tool_options.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/users.cc
)
target_include_directories(seg_segtool PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(seg_segtool PUBLIC seg_segmenter seg_common)
add_library(seg::segtool ALIAS seg_segtool)
add_executable(segtool ${CMAKE_CURRENT_LIST_DIR}/segtool_main.cc)
target_link_libraries(segtool PRIVATE seg_segtool CLI11::CLI11 glog::glog)
