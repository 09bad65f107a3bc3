# The end-to-end test: the whole product as processes (tests/harness/local_stack.h)
# under seg-loadgen traffic; see tests/e2e_test.cc for what it checks.
# Under ASan (tools/dev test's asan stage, 4 tests at a time) it runs alone:
# the instrumented pipeline beside three other tests on 2 cores lagged past
# the 8 s window the test checks exits against (RELIABILITY.md).
set(SEG_E2E_PROPERTIES "")
if(SEG_SANITIZE)
  set(SEG_E2E_PROPERTIES RUN_SERIAL TRUE)
endif()
seg_add_test(e2e_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/e2e_test.cc
  LIBS seg_testing seg_loadgen seg_segmenter seg_script_host seg_stats_grpc seg_chaos_truth
  TIMEOUT 400
  LABELS integration
  PROPERTIES ${SEG_E2E_PROPERTIES})
add_dependencies(e2e_test seg-store seg-ingest seg-segmenter seg-stats)
# The same test on real Apache Kafka and HBase + Thrift2 (tools/services,
# started and stopped by the test's LocalStack): ctest label `real`.
add_test(NAME e2e_real_test COMMAND e2e_test --gtest_filter=EndToEndTest.*)
set_tests_properties(e2e_real_test PROPERTIES LABELS real TIMEOUT 900 RUN_SERIAL TRUE
  ENVIRONMENT "SEG_E2E_REAL=1;SEG_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
# Again with HBase's NoticeEndpoint (coprocessor-bridge/hbase) as the only
# source of change notices: ingest writes and sends none.
add_test(NAME e2e_real_endpoint_test COMMAND e2e_test --gtest_filter=EndToEndTest.*)
set_tests_properties(e2e_real_endpoint_test PROPERTIES LABELS real TIMEOUT 900 RUN_SERIAL TRUE
  ENVIRONMENT "SEG_E2E_REAL=1;SEG_E2E_NOTICES=hbase;SEG_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
