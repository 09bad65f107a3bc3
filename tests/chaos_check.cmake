# seg-chaos-check (the chaos run's checks, tools/chaos/) finds lost, extra
# and unstored events and missing dead letters: kafka-local, seg-store and
# seg-ingest under seg-loadgen traffic, with ingest stopped for a while.
add_test(NAME chaos_check_test
         COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/chaos_check_test.py
                 --build-dir ${CMAKE_BINARY_DIR})
set_tests_properties(chaos_check_test PROPERTIES TIMEOUT 300 LABELS integration)
