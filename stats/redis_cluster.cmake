# seg::redis_cluster — RedisRouter (single server or Redis Cluster slot
# routing) over common/redis.h. Included by stats/CMakeLists.txt.
add_library(seg_redis_cluster STATIC ${CMAKE_CURRENT_LIST_DIR}/internal/redis_cluster.cc)
target_include_directories(seg_redis_cluster PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(seg_redis_cluster PUBLIC seg_common glog::glog)
add_library(seg::redis_cluster ALIAS seg_redis_cluster)

if(SEG_BUILD_TESTS)
  # Integration: runs against a local 3-master Redis Cluster (seg::testing).
  seg_add_test(redis_cluster_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/internal/redis_cluster_test.cc
    LIBS seg_redis_cluster seg_testing
    TIMEOUT 180
    LABELS integration)
endif()
