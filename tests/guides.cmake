# The guides run as written: docs/sdk/first-segment.md's script, fixture and
# segtool commands against tools/local-stack.sh (~20 s), and examples/.
add_test(NAME first_segment_guide_test
         COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/first_segment_guide_test.py
                 --build-dir ${CMAKE_BINARY_DIR})
set_tests_properties(first_segment_guide_test PROPERTIES TIMEOUT 240 LABELS integration)
# examples/ under /usr/bin/python3 (Debian's python3-kafka, -grpcio, -protobuf,
# -grpc-tools; a missing one fails the test) against the local stack (~40 s).
add_test(NAME examples_test
         COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/examples_test.py
                 --build-dir ${CMAKE_BINARY_DIR})
set_tests_properties(examples_test PROPERTIES TIMEOUT 300 LABELS integration)
