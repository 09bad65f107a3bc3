# Stats writer (seg::stats_writer) and the seg-stats gRPC service
# (seg::stats_service, executable seg-stats). Included by stats/CMakeLists.txt.

# The Lua library is compiled in; editing it re-runs CMake (CONFIGURE_DEPENDS).
set(SEG_STATS_LUA ${CMAKE_SOURCE_DIR}/lua/stats_functions.lua)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${SEG_STATS_LUA})
file(READ ${SEG_STATS_LUA} SEG_STATS_LUA_TEXT)
file(CONFIGURE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/gen/stats_functions_lua.cc
  CONTENT "// Generated from lua/stats_functions.lua by stats/service.cmake. Do not edit.
#include <string_view>
namespace seg::stats {
std::string_view StatsFunctionsLuaSource() {
  static constexpr std::string_view kLua = R\"SEGLUA(@SEG_STATS_LUA_TEXT@)SEGLUA\";
  return kLua;
}
}  // namespace seg::stats
" @ONLY)

add_library(seg_stats_writer STATIC
  ${CMAKE_CURRENT_LIST_DIR}/internal/stats_writer.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/stats_writer_days.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/hll_retention.cc
  ${CMAKE_CURRENT_BINARY_DIR}/gen/stats_functions_lua.cc)
target_include_directories(seg_stats_writer PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(seg_stats_writer PUBLIC seg_redis_cluster seg_common glog::glog)
add_library(seg::stats_writer ALIAS seg_stats_writer)

add_library(seg_stats_service STATIC
  ${CMAKE_CURRENT_LIST_DIR}/internal/stats_service.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/stats_service_query.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/past_day_cache.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/stats_service_store.cc)
target_include_directories(seg_stats_service PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(seg_stats_service
  PUBLIC seg_stats_writer seg_hll seg_redis_cluster seg_stats_grpc seg_common gRPC::grpc++
  PRIVATE gRPC::grpc++_reflection glog::glog)
add_library(seg::stats_service ALIAS seg_stats_service)

add_executable(seg-stats ${CMAKE_CURRENT_LIST_DIR}/seg_stats_main.cc)
# UserSegments reads family `s` through the store when configured
# (stats.store.backend).
target_link_libraries(seg-stats PRIVATE seg_stats_service seg_store CLI11::CLI11 glog::glog)
