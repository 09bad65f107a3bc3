# Integration tests of seg-ingest, the coprocessor bridge (both modes) and
# seg-load: librdkafka mock cluster + the real seg-store (in-process
# StoreServer over Thrift2, and the seg-store binary for the restart test).
seg_add_test(ingest_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/ingest_pipeline_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/ingest_load_test.cc
  LIBS seg_ingest seg_bridge seg_bridge_store_observer seg_store_server seg_segctl
       seg_testing
  TIMEOUT 180
  LABELS integration)
# SegLoadTest runs the standalone seg-load binary too.
add_dependencies(ingest_test seg-store seg-load)

# The binaries as deployed: seg-store --notify-kafka, seg-ingest and SIGTERM,
# backpressure through a store outage longer than max.poll.interval.ms.
seg_add_test(ingest_process_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/ingest_process_test.cc
  LIBS seg_ingest seg_bridge seg_bridge_store_observer seg_store_server seg_testing
  TIMEOUT 240
  LABELS integration)
add_dependencies(ingest_process_test seg-store seg-ingest)
