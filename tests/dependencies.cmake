# A missing dependency fails configure naming its Debian package
# (cmake/SegDependencies.cmake): tests/seg_require/check.cmake configures a
# tiny project asking for missing and present ones (~1 s).
add_test(NAME seg_require_test
  COMMAND ${CMAKE_COMMAND} -DSEG_SOURCE_DIR=${CMAKE_SOURCE_DIR}
          -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/seg_require -DGENERATOR=${CMAKE_GENERATOR}
          -P ${CMAKE_SOURCE_DIR}/tests/seg_require/check.cmake)
set_tests_properties(seg_require_test PROPERTIES TIMEOUT 120 LABELS unit)
