# Integration tests of the stats writer, seg-stats and segctl: a real
# redis-server, a local 3-master Redis Cluster, gRPC over loopback, and a
# Python client built from proto/stats.proto alone (Debian's python3-grpcio).
seg_add_test(stats_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/stats_writer_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/stats_batched_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/stats_service_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/stats_cache_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/stats_retention_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/stats_epoch_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/stats_segctl_test.cc
  LIBS seg_stats_service seg_stats_writer seg_segctl seg_testing
  TIMEOUT 300
  LABELS integration)
target_compile_definitions(stats_test PRIVATE SEG_PROTOC="$<TARGET_FILE:protobuf::protoc>")
add_dependencies(stats_test segctl)
