# seg::testing — the real parts every integration test uses. Files are added
# by their owners; each is optional until it exists.
set(SEG_HARNESS_SRCS process.cc)
foreach(f redis_server.cc kafka_cluster.cc redis_cluster.cc local_stack.cc)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${f})
    list(APPEND SEG_HARNESS_SRCS ${f})
  endif()
endforeach()
add_library(seg_testing STATIC ${SEG_HARNESS_SRCS})
target_include_directories(seg_testing PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(seg_testing PUBLIC seg_common PkgConfig::RDKAFKA glog::glog)
target_compile_definitions(seg_testing PRIVATE SEG_REDIS_SERVER="${REDIS_SERVER}"
  SEG_SOURCE_DIR_DEFAULT="${CMAKE_SOURCE_DIR}" SEG_BINARY_DIR_DEFAULT="${CMAKE_BINARY_DIR}")
add_library(seg::testing ALIAS seg_testing)
