# The `real` tier's launcher test: tools/services brings up Kafka (1 and 3
# KRaft nodes) and HBase + Thrift2, restarts a broker, and leaves nothing
# behind. Its own run directory, so it can run beside the real_hbase fixture.
add_test(NAME real_services_launcher COMMAND ${CMAKE_SOURCE_DIR}/tests/real_services_test.sh)
set_tests_properties(real_services_launcher PROPERTIES LABELS real TIMEOUT 600
  RUN_SERIAL TRUE
  ENVIRONMENT "SEG_SERVICES_DIR=${CMAKE_BINARY_DIR}/services-launcher-test;SEG_BUILD_DIR=${CMAKE_BINARY_DIR}")
