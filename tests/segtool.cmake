# segtool: every shipped script's fixtures through `segtool test` (one ctest
# per script, from the scripts/ glob), and segtool against the real local
# stack (mock Kafka, seg-store over TCP, redis-server).
file(GLOB SEG_SHIPPED_SCRIPTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/scripts/*.lua)
foreach(script ${SEG_SHIPPED_SCRIPTS})
  get_filename_component(name ${script} NAME_WE)
  add_test(NAME segtool_script_${name} COMMAND segtool test ${script})
  set_tests_properties(segtool_script_${name} PROPERTIES TIMEOUT 60 LABELS unit)
endforeach()
# Outside the repository root: the scripts directory comes from the
# config's scripts.dir; without one, the error says where it looked.
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/segtool_outside_root.yaml
     "scripts:\n  dir: ${CMAKE_SOURCE_DIR}/scripts\n")
add_test(NAME segtool_outside_root
         COMMAND segtool --config ${CMAKE_CURRENT_BINARY_DIR}/segtool_outside_root.yaml test --all
         WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
add_test(NAME segtool_outside_root_without_config COMMAND segtool test
         WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
set_tests_properties(segtool_outside_root PROPERTIES TIMEOUT 60 LABELS unit
                     PASS_REGULAR_EXPRESSION "segtool test: [0-9]+ scripts, [0-9]+ cases, 0 failed")
set_tests_properties(segtool_outside_root_without_config PROPERTIES TIMEOUT 60 LABELS unit
                     PASS_REGULAR_EXPRESSION "no scripts directory 'scripts' \\(relative to .*--scripts DIR")
seg_add_test(segtool_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/segtool_test.cc
  LIBS seg_segtool seg_testing
  TIMEOUT 90 LABELS integration)
add_dependencies(segtool_test segtool seg-store)
