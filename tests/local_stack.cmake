# tools/local-stack.sh (the demo) end to end: --config switches the store and
# Redis to a seg-store and redis-server the test starts itself; config errors.
# Needs every binary of this tree (kafka-local, seg-*, segctl) built.
add_test(NAME local_stack_test
         COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/local_stack_test.py
                 --build-dir ${CMAKE_BINARY_DIR})
set_tests_properties(local_stack_test PROPERTIES TIMEOUT 300 LABELS integration)
# The same demo on a real Kafka broker and a real HBase + Thrift2
# (local-stack.sh --real starts and stops them): ctest label `real`.
add_test(NAME local_stack_real_test
         COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/local_stack_test.py
                 --build-dir ${CMAKE_BINARY_DIR} --real)
set_tests_properties(local_stack_real_test PROPERTIES TIMEOUT 600 LABELS real RUN_SERIAL TRUE)
