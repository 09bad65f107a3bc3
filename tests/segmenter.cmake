# Segmenter node integration tests (mock Kafka, Thrift2 store server, redis-server).
seg_add_test(segmenter_node_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/segmenter_node_test.cc
  LIBS seg_segmenter seg_store_server seg_testing
  TIMEOUT 120 LABELS integration)
# Membership over time: schedule, rebalance, failures, bots, forget, definitions.
seg_add_test(membership_node_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/membership_node_test.cc
  LIBS seg_segmenter seg_store_server seg_testing
  TIMEOUT 120 LABELS integration)
# The seg-segmenter binary as processes: kill -9 of a group member, SIGHUP reload.
seg_add_test(segmenter_process_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/segmenter_process_test.cc
  LIBS seg_segmenter seg_store_server seg_testing
  TIMEOUT 180 LABELS integration)
add_dependencies(segmenter_process_test seg-segmenter)
# seg-segmenter with scripts.source=store: bootstrap, adoption, push, backfill.
seg_add_test(segmenter_scripts_process_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/segmenter_scripts_process_test.cc
  LIBS seg_script_set seg_store_server seg_testing
  TIMEOUT 180 LABELS integration)
add_dependencies(segmenter_scripts_process_test seg-segmenter segctl)
