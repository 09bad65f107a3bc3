# Kafka adapter (kafka.h) over librdkafka, and its integration test against
# the librdkafka mock cluster (tests/harness/kafka_cluster.h).
target_sources(seg_common PRIVATE
  internal/kafka_util.cc
  internal/kafka_producer.cc
  internal/kafka_consumer.cc
  internal/kafka_admin.cc
  internal/kafka_offsets.cc
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

# The adapter against a real three-broker Kafka 3.9.1 KRaft cluster (ctest
# label `real`; fixture real_kafka3 starts it with tools/services, then stops it).
if(SEG_BUILD_TESTS)
  set(SEG_REAL_KAFKA3_DIR ${CMAKE_BINARY_DIR}/services-kafka3)
  add_executable(kafka_real_test internal/kafka_real_test.cc)
  target_link_libraries(kafka_real_test PRIVATE seg_common seg_testing GTest::gtest GTest::gmock
                        seg_test_main)
  gtest_discover_tests(kafka_real_test
    DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT 400 LABELS real FIXTURES_REQUIRED real_kafka3 RUN_SERIAL TRUE
               ENVIRONMENT "SEG_SERVICES_DIR=${SEG_REAL_KAFKA3_DIR};SEG_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
  foreach(step up down)
    add_test(NAME real_kafka3_${step}
             COMMAND ${CMAKE_SOURCE_DIR}/tools/services/services.sh ${step} kafka3)
    set_tests_properties(real_kafka3_${step} PROPERTIES LABELS real TIMEOUT 600 RUN_SERIAL TRUE
      ENVIRONMENT "SEG_SERVICES_DIR=${SEG_REAL_KAFKA3_DIR};SEG_BUILD_DIR=${CMAKE_BINARY_DIR}")
  endforeach()
  set_tests_properties(real_kafka3_up PROPERTIES FIXTURES_SETUP real_kafka3)
  set_tests_properties(real_kafka3_down PROPERTIES FIXTURES_CLEANUP real_kafka3)
endif()
