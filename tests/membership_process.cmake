# Membership over time with whole processes on the real clock: kill -9 of
# every process between a window entry and its edge.
seg_add_test(membership_process_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/membership_process_test.cc
  LIBS seg_segmenter seg_store seg_testing
  TIMEOUT 180 LABELS integration)
add_dependencies(membership_process_test seg-store seg-segmenter)
