# `segctl forget` against librdkafka's mock cluster (the library and the
# binary), and the rolling-upgrade wire compatibility of
# proto/segmentation.proto against its previous version (tests/old_segmentation.proto).
seg_add_test(segctl_forget_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/segctl_forget_test.cc
  LIBS seg_segctl seg_testing
  TIMEOUT 120
  LABELS integration)
add_dependencies(segctl_forget_test segctl)

# Rolling upgrade at the message level: tests/old_segmentation.proto (package
# seg.v1) is the previous wire schema; compiled here, test-only.
set(SEG_OLD_PROTO_OUT ${CMAKE_CURRENT_BINARY_DIR}/gen_old)
file(MAKE_DIRECTORY ${SEG_OLD_PROTO_OUT}/tests)
add_custom_command(
  OUTPUT ${SEG_OLD_PROTO_OUT}/tests/old_segmentation.pb.cc
         ${SEG_OLD_PROTO_OUT}/tests/old_segmentation.pb.h
  COMMAND protobuf::protoc --proto_path=${CMAKE_SOURCE_DIR} --cpp_out=${SEG_OLD_PROTO_OUT}
          ${CMAKE_SOURCE_DIR}/tests/old_segmentation.proto
  DEPENDS ${CMAKE_SOURCE_DIR}/tests/old_segmentation.proto protobuf::protoc
  COMMENT "protoc tests/old_segmentation.proto")
seg_add_test(proto_compat_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/proto_compat_test.cc
          ${SEG_OLD_PROTO_OUT}/tests/old_segmentation.pb.cc
  LIBS seg_proto
  TIMEOUT 60)
target_include_directories(proto_compat_test PRIVATE ${SEG_OLD_PROTO_OUT})
set_source_files_properties(${SEG_OLD_PROTO_OUT}/tests/old_segmentation.pb.cc
  PROPERTIES COMPILE_OPTIONS -w)
