# Redis losing its data (issue #17 part 3): the segmenter node counting users
# again through the stats epochs, and `segctl stats rebuild` (the library on
# a redis-server, the binary on a 3-master Redis Cluster).
seg_add_test(stats_loss_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/stats_loss_test.cc
  LIBS seg_segmenter seg_store_server seg_segctl seg_testing
  TIMEOUT 180 LABELS integration)
add_dependencies(stats_loss_test segctl)
