# `segctl forget`, `segctl stats expire-sweep` and `stats rebuild` (operations on Kafka and
# Redis rather than on seg-stats): library seg_segctl_ops, wired into segctl.
# Included by tools/segctl.cmake.
add_library(seg_segctl_ops STATIC
  ${CMAKE_CURRENT_LIST_DIR}/segctl_forget.cc
  ${CMAKE_CURRENT_LIST_DIR}/segctl_stats_admin.cc
  ${CMAKE_CURRENT_LIST_DIR}/segctl_stats_rebuild.cc
  ${CMAKE_CURRENT_LIST_DIR}/segctl_topics.cc)
target_include_directories(seg_segctl_ops PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(seg_segctl_ops
  PUBLIC seg_common seg_proto seg_stats_writer seg_store
  PRIVATE CLI11::CLI11 glog::glog)
add_library(seg::segctl_ops ALIAS seg_segctl_ops)
target_link_libraries(segctl PRIVATE seg_segctl_ops)
