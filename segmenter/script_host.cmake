# seg::script_host — the LuaJIT segment-script host (included by
# segmenter/CMakeLists.txt). lua/script_runtime.lua is embedded into the
# library at configure time; editing it re-runs the configure step.
set(SEG_SCRIPT_RUNTIME_LUA ${CMAKE_SOURCE_DIR}/lua/script_runtime.lua)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${SEG_SCRIPT_RUNTIME_LUA})
file(READ ${SEG_SCRIPT_RUNTIME_LUA} SEG_SCRIPT_RUNTIME_SOURCE)
string(FIND "${SEG_SCRIPT_RUNTIME_SOURCE}" ")SEGLUA\"" SEG_RUNTIME_DELIM_POS)
if(NOT SEG_RUNTIME_DELIM_POS EQUAL -1)
  message(FATAL_ERROR "lua/script_runtime.lua must not contain )SEGLUA\"")
endif()
# file(CONFIGURE) rewrites the file only when its content changes.
file(CONFIGURE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/script_runtime_lua.cc
  CONTENT "// Generated from lua/script_runtime.lua by segmenter/script_host.cmake.
#include <cstddef>
namespace seg::segmenter::internal {
extern const char kScriptRuntimeLua[] = R\"SEGLUA(@SEG_SCRIPT_RUNTIME_SOURCE@)SEGLUA\";
extern const size_t kScriptRuntimeLuaSize = sizeof(kScriptRuntimeLua) - 1;
}  // namespace seg::segmenter::internal
" @ONLY)

add_library(seg_script_host STATIC
  ${CMAKE_CURRENT_LIST_DIR}/internal/script_host.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/script_host_options.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/script_host_user.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/script_host_fixtures.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/lua_state.cc
  ${CMAKE_CURRENT_LIST_DIR}/internal/lua_budget.cc
  ${CMAKE_CURRENT_BINARY_DIR}/script_runtime_lua.cc
)
target_link_libraries(seg_script_host
  PUBLIC seg_common
  PRIVATE PkgConfig::LUAJIT protobuf::libprotobuf)
add_library(seg::script_host ALIAS seg_script_host)

if(SEG_BUILD_TESTS)
  seg_add_test(script_host_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/internal/script_host_test.cc
            ${CMAKE_CURRENT_LIST_DIR}/internal/script_host_options_test.cc
            ${CMAKE_CURRENT_LIST_DIR}/internal/lua_budget_test.cc
            ${CMAKE_CURRENT_LIST_DIR}/internal/script_host_scan_test.cc
            ${CMAKE_CURRENT_LIST_DIR}/internal/script_host_due_test.cc
    LIBS seg_script_host
    TIMEOUT 60)
endif()
