# Every listener of the deployed binaries binds loopback unless its address
# key says otherwise (seg-store's own: store_server_test; seg-segmenter's
# /metrics: segmenter_process_test).
seg_add_test(listeners_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/listeners_test.cc
  LIBS seg_testing
  TIMEOUT 120
  LABELS integration)
add_dependencies(listeners_test seg-stats seg-ingest)
