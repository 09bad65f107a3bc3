# seg-loadgen's ground truth against ingest's validator.
if(TARGET seg_loadgen AND TARGET seg_ingest)
  seg_add_test(loadgen_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/loadgen_test.cc
    LIBS seg_loadgen seg_ingest)
endif()
