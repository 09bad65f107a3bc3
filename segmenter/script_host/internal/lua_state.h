// LuaState: one sandboxed LuaJIT state holding the runtime
// (lua/script_runtime.lua) and a set of loaded segment scripts. The only
// place that includes lua.h.
//
// Memory: the state is created with lua_newstate and a counting allocator
// (small blocks from size-class free lists, the rest from malloc)
// (LuaJIT 2.1 in GC64 mode, as on Debian amd64, accepts a custom allocator);
// an allocation that would take the state above its limit fails, LuaJIT
// raises "not enough memory" in the running call, and the call is reported
// as kMemoryLimit. The state stays usable; a full GC follows every failed
// call. Nothing touches the state outside lua_pcall/lua_cpcall, so an
// allocation failure can never reach the panic handler.
//
// CPU: see lua_budget.h (checks compiled into scripts + a count hook).
//
// Thread-safety: single-threaded, like the ScriptHost that owns it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "segmenter/script_host/internal/event_index.h"
#include "segmenter/script_host/internal/lua_abi.h"
#include "segmenter/script_host/internal/lua_budget.h"
#include "segmenter/script_host/script_host.h"

struct lua_State;
struct lua_Debug;

namespace seg::segmenter::internal {

// The runtime source, embedded at build time (script_runtime_lua.cc).
extern const char kScriptRuntimeLua[];
extern const size_t kScriptRuntimeLuaSize;

class LuaState {
 public:
  struct ScriptDecl {
    std::string name;
    std::string version;
    std::string description;
    std::vector<std::string> segments;
  };
  struct CallOutcome {
    int32_t segment_count = 0;  // entries written to user()->out
    ScriptErrorKind kind = ScriptErrorKind::kNone;
    std::string error;
  };

  // Builds a state with the runtime loaded. Errors: Internal when LuaJIT
  // cannot create the state, the runtime fails to load or its FFI layout
  // does not match lua_abi.h.
  static StatusOr<std::unique_ptr<LuaState>> Create(int64_t memory_limit_bytes);
  ~LuaState();
  LuaState(const LuaState&) = delete;
  LuaState& operator=(const LuaState&) = delete;

  // Compiles `source` (already instrumented, or not) as chunk
  // "@<chunk_name>" and runs its top level under `budget_ns`. Returns the
  // declaration, or InvalidArgument "<chunk_name>:<line>: ..." (also for
  // budget and memory failures at load).
  StatusOr<ScriptDecl> LoadScript(std::string_view source, std::string_view chunk_name,
                                  int64_t budget_ns);

  // Runs evaluate() of loaded script `index` (0-based, load order) on the
  // user currently described by user(). Fills `out`.
  // `start_ns`: MonotonicNs() the caller read just before (saves a clock
  // read per call); < 0 reads it here.
  void Run(int index, int64_t budget_ns, CallOutcome* out, int64_t start_ns = -1);

  // The per-user data the runtime reads; fill before Run().
  FfiUser* user() { return &user_; }
  int64_t memory_used() const { return used_; }
  int64_t memory_limit() const { return limit_; }
  const CallBudget& budget() const { return budget_; }

 private:
  explicit LuaState(int64_t memory_limit_bytes);
  Status Init();
  static void* Alloc(void* ud, void* ptr, size_t osize, size_t nsize);
  void* PoolAlloc(size_t size);
  void PoolFree(void* p, size_t size);
  static void Hook(lua_State* L, lua_Debug* ar);
  static int Aborting(lua_State* L);
  static int InitInProtectedMode(lua_State* L);
  static int LoadInProtectedMode(lua_State* L);
  ScriptErrorKind Classify(std::string_view message) const;
  std::string PopError();

  static constexpr size_t kPoolGrain = 16;
  static constexpr size_t kPoolMaxBytes = 256;
  static constexpr size_t kPoolChunkBytes = 64 << 10;

  lua_State* L_ = nullptr;
  std::vector<void*> pool_free_[kPoolMaxBytes / kPoolGrain];  // free blocks by class
  size_t pool_carved_[kPoolMaxBytes / kPoolGrain] = {};       // blocks ever carved by class
  std::vector<char*> pool_chunks_;
  char* pool_next_ = nullptr;
  size_t pool_left_ = 0;
  int64_t used_ = 0;
  int64_t limit_ = 0;
  bool refused_ = false;  // an allocation failed during the current call
  CallBudget budget_;
  ScanContext scan_ctx_;
  FfiUser user_{};
  int api_load_ref_ = -1;
  int api_run_ref_ = -1;
  int api_layout_ref_ = -1;
};

}  // namespace seg::segmenter::internal
