# seg::script_set — the cluster-wide script set in the store (script_set.h)
# and its backfill job (internal/backfill.h). Included by
# segmenter/CMakeLists.txt; used by seg-segmenter and `segctl scripts`.
add_library(seg_script_set STATIC
  ${CMAKE_CURRENT_LIST_DIR}/internal/script_set.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/backfill.cc
)
target_link_libraries(seg_script_set PUBLIC seg_common seg_store seg_script_host)
add_library(seg::script_set ALIAS seg_script_set)
if(SEG_BUILD_TESTS)
  seg_add_test(script_set_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/internal/script_set_test.cc
            ${CMAKE_CURRENT_LIST_DIR}/internal/backfill_test.cc
    LIBS seg_script_set seg_store_server seg_testing
    TIMEOUT 120 LABELS integration)
endif()
