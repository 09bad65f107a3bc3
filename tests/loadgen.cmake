# seg-loadgen's ground truth against ingest's validator and the shipped scripts.
seg_add_test(loadgen_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/loadgen_test.cc
  LIBS seg_loadgen seg_ingest seg_script_host seg_testing)
