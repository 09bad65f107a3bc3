# The guides run as written: docs/sdk/first-segment.md's script, fixture and
# segtool commands against tools/local-stack.sh (~20 s), and examples/.
add_test(NAME first_segment_guide_test
         COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/first_segment_guide_test.py
                 --build-dir ${CMAKE_BINARY_DIR})
set_tests_properties(first_segment_guide_test PROPERTIES TIMEOUT 240 LABELS integration)
