# tools/capacity.py on the committed bench/results: every workload and every
# resource present, the local check printed, and a clear exit 2 on a missing
# or malformed result file (stdlib Python, a second or two).
add_test(NAME capacity_test
         COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/capacity_test.py)
set_tests_properties(capacity_test PROPERTIES TIMEOUT 60)

