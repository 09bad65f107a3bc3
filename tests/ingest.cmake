# Integration tests of seg-ingest, the coprocessor bridge (both modes) and
# seg-load: librdkafka mock cluster + the real seg-store (in-process
# StoreServer over Thrift2, and the seg-store binary for the restart test).
if(TARGET seg_ingest AND TARGET seg_store_server)
  # tools/CMakeLists.txt includes segctl_load.cmake; until it does, do it here.
  if(NOT TARGET seg_segctl_load)
    include(${CMAKE_SOURCE_DIR}/tools/segctl_load.cmake)
  endif()
  seg_add_test(ingest_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/ingest_pipeline_test.cc
            ${CMAKE_CURRENT_LIST_DIR}/ingest_load_test.cc
    LIBS seg_ingest seg_bridge seg_bridge_store_observer seg_store_server seg_segctl_load
         seg_testing
    TIMEOUT 180
    LABELS integration)
  add_dependencies(ingest_test seg-store)
  # SegLoadTest runs the standalone binary too.
  if(TARGET seg-load)
    add_dependencies(ingest_test seg-load)
  endif()
endif()

# The binaries as deployed: seg-store --notify-kafka, seg-ingest and SIGTERM,
# backpressure through a store outage longer than max.poll.interval.ms.
if(TARGET seg_ingest AND TARGET seg_store_server AND TARGET seg-ingest)
  seg_add_test(ingest_process_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/ingest_process_test.cc
    LIBS seg_ingest seg_bridge seg_bridge_store_observer seg_store_server seg_testing
    TIMEOUT 240
    LABELS integration)
  add_dependencies(ingest_process_test seg-store seg-ingest)
endif()
