# The Redis ACL users of docs/security.md against a real redis-server (and a
# 3-master cluster): the product's paths work as them, nothing else does.
seg_add_test(redis_acl_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/redis_acl_test.cc
  LIBS seg_stats_service seg_stats_writer seg_testing
  TIMEOUT 120
  LABELS integration)
