# seg::skip — the segmenter's skip rules: the last-segmented-timestamp cache
# (skip_cache.h) and the bot blacklist (bot_blacklist.h). Included by
# segmenter/CMakeLists.txt.
add_library(seg_skip STATIC
  ${CMAKE_CURRENT_LIST_DIR}/internal/skip_cache.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/bot_blacklist.cc
)
target_link_libraries(seg_skip PUBLIC seg_common)
add_library(seg::skip ALIAS seg_skip)

if(SEG_BUILD_TESTS)
  seg_add_test(skip_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/internal/skip_cache_test.cc
            ${CMAKE_CURRENT_LIST_DIR}/internal/bot_blacklist_test.cc
    LIBS seg_skip)
endif()
