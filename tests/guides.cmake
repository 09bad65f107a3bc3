# The docs run as written: docs/sdk/first-segment.md's script, fixture and
# segtool commands against tools/local-stack.sh (~20 s), examples/, and
# docs/metrics.md with the Grafana dashboard.
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
# docs/metrics.md and tools/grafana/segengine.json against the code's metric
# registrations (fast), and against every binary's /metrics in the local stack.
add_test(NAME metrics_doc_test COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/metrics_doc_test.py)
set_tests_properties(metrics_doc_test PROPERTIES TIMEOUT 60 LABELS unit)
add_test(NAME metrics_scrape_test
         COMMAND python3 ${CMAKE_SOURCE_DIR}/tests/metrics_doc_test.py
                 --build-dir ${CMAKE_BINARY_DIR})
set_tests_properties(metrics_scrape_test PROPERTIES TIMEOUT 240 LABELS integration)
