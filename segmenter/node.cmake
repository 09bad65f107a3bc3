# seg::segmenter — the segmenter node (batch loop, membership state) and the
# seg-segmenter binary. Needs the store, the skip rules, the script host and
# the stats writer.
if(TARGET seg_store AND TARGET seg_skip)
  add_library(seg_segmenter STATIC
    ${CMAKE_CURRENT_LIST_DIR}/internal/node.cc
    ${CMAKE_CURRENT_LIST_DIR}/internal/node_options.cc
    ${CMAKE_CURRENT_LIST_DIR}/internal/membership.cc
  )
  target_link_libraries(seg_segmenter PUBLIC seg_common seg_skip seg_store)
  add_library(seg::segmenter ALIAS seg_segmenter)
  if(SEG_BUILD_TESTS)
    seg_add_test(segmenter_test
      SOURCES ${CMAKE_CURRENT_LIST_DIR}/internal/membership_test.cc
      LIBS seg_segmenter)
  endif()
endif()
