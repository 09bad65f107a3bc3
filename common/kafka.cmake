# Kafka adapter (kafka.h) over librdkafka, and its integration test against
# the librdkafka mock cluster (tests/harness/kafka_cluster.h).
target_sources(seg_common PRIVATE
  internal/kafka_util.cc
  internal/kafka_producer.cc
  internal/kafka_consumer.cc
  internal/kafka_admin.cc
)
target_link_libraries(seg_common PRIVATE PkgConfig::RDKAFKA)

if(SEG_BUILD_TESTS)
  seg_add_test(kafka_test
    SOURCES internal/kafka_test.cc
    LIBS seg_common seg_testing
    TIMEOUT 90
    LABELS integration)
  # The kafka-local test runs the tool as a child process.
  if(EXISTS ${CMAKE_SOURCE_DIR}/tools/kafka_local.cc)
    add_dependencies(kafka_test kafka-local)
    target_compile_definitions(kafka_test PRIVATE
      SEG_KAFKA_LOCAL_BIN="$<TARGET_FILE:kafka-local>")
  endif()
endif()
