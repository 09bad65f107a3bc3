# Redis helper (common/redis.h) over hiredis; included by common/CMakeLists.txt.
target_sources(seg_common PRIVATE ${CMAKE_CURRENT_LIST_DIR}/internal/redis.cc)
target_link_libraries(seg_common PRIVATE PkgConfig::HIREDIS)

if(SEG_BUILD_TESTS)
  # Integration: runs against a local redis-server (seg::testing::LocalRedis).
  seg_add_test(redis_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/internal/redis_test.cc
    LIBS seg_common seg_testing
    TIMEOUT 120
    LABELS integration)
endif()
