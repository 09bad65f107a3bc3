# segctl: the analysts' CLI on the seg-stats gRPC API. Included by
# tools/CMakeLists.txt.
add_library(seg_segctl_render STATIC ${CMAKE_CURRENT_LIST_DIR}/segctl_render.cc)
target_include_directories(seg_segctl_render PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(seg_segctl_render PUBLIC seg_stats_grpc seg_common)

add_executable(segctl ${CMAKE_CURRENT_LIST_DIR}/segctl.cc)
# `segctl load FILE`: seg_segctl_load (tools/segctl_load.h).
target_link_libraries(segctl PRIVATE seg_segctl_render seg_segctl_load seg_stats_grpc gRPC::grpc++
                                     CLI11::CLI11)

# `segctl forget` and `segctl stats expire-sweep` (tools/segctl_forget.h).
include(${CMAKE_CURRENT_LIST_DIR}/segctl_ops.cmake)

# `segctl scripts push|status` talks to the store, not to seg-stats.
target_sources(segctl PRIVATE ${CMAKE_CURRENT_LIST_DIR}/segctl_scripts.cc)
target_link_libraries(segctl PRIVATE seg_script_set)
