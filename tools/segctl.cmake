# segctl: the analysts' CLI on the seg-stats gRPC API. Included by
# tools/CMakeLists.txt.
add_library(seg_segctl_render STATIC ${CMAKE_CURRENT_LIST_DIR}/segctl_render.cc)
target_include_directories(seg_segctl_render PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(seg_segctl_render PUBLIC seg_stats_grpc seg_common)

add_executable(segctl ${CMAKE_CURRENT_LIST_DIR}/segctl.cc)
target_link_libraries(segctl PRIVATE seg_segctl_render seg_stats_grpc gRPC::grpc++ CLI11::CLI11)
# `segctl load FILE` comes from seg_segctl_load (tools/segctl_load.h, another
# owner's). Whoever includes segctl_load.cmake (tools/ or tests/), the target
# exists by the end of the top-level directory: wire it there.
function(seg_segctl_wire_load)
  if(TARGET seg_segctl_load AND EXISTS ${CMAKE_SOURCE_DIR}/tools/segctl_load.h)
    target_link_libraries(segctl PRIVATE seg_segctl_load)
    target_compile_definitions(segctl PRIVATE SEG_HAVE_SEGCTL_LOAD)
  endif()
endfunction()
cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL seg_segctl_wire_load)

# `segctl forget` and `segctl stats expire-sweep` (tools/segctl_forget.h).
include(${CMAKE_CURRENT_LIST_DIR}/segctl_ops.cmake)

# `segctl scripts push|status` talks to the store, not to seg-stats.
if(TARGET seg_script_set)
  target_sources(segctl PRIVATE ${CMAKE_CURRENT_LIST_DIR}/segctl_scripts.cc)
  target_link_libraries(segctl PRIVATE seg_script_set)
  target_compile_definitions(segctl PRIVATE SEG_HAVE_SEGCTL_SCRIPTS)
endif()
