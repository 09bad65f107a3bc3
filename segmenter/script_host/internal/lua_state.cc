#include "segmenter/script_host/internal/lua_state.h"

#include <luajit-2.1/lua.hpp>

#include <glog/logging.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "common/event_codec.h"
#include "proto/events.pb.h"

namespace seg::segmenter::internal {

// A filter's typemask (lua_abi.h FfiFilter) has one bit per type code, 0..30.
static_assert(EventType_MAX <= 30, "proto/events.proto outgrew FfiFilter.typemask");

namespace {

// memcmp(a, b, n) == 0 for the short strings the matchers see (needles,
// domains, attribute keys): mismatches mostly show in the first bytes, and
// a libc call per test (PLT + setup) cost ~2% of the benchmark's time.
inline bool SameBytes(const char* a, const char* b, int32_t n) {
  if (n > 32) return std::memcmp(a, b, static_cast<size_t>(n)) == 0;
  for (int32_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

}  // namespace

extern "C" {

int32_t seg_contains(const char* hay, int32_t hay_len, const char* needle, int32_t needle_len) {
  // Haystacks are short (urls, queries): memchr for the first byte plus
  // a compare beats glibc memmem, whose per-call setup dominated (18% of
  // the benchmark's time).
  if (needle_len == 0) return 1;
  if (needle_len > hay_len) return 0;
  const char first = needle[0];
  const char* p = hay;
  const char* last = hay + (hay_len - needle_len);
  while (p <= last) {
    p = static_cast<const char*>(std::memchr(p, first, static_cast<size_t>(last - p) + 1));
    if (p == nullptr) return 0;
    if (SameBytes(p + 1, needle + 1, needle_len - 1)) return 1;
    ++p;
  }
  return 0;
}

int32_t seg_host_is(const char* host, int32_t host_len, const char* domain, int32_t domain_len) {
  if (domain_len == 0 || host_len < domain_len) return 0;
  if (!SameBytes(host + host_len - domain_len, domain, domain_len)) return 0;
  return host_len == domain_len || host[host_len - domain_len - 1] == '.';
}

int32_t seg_has_prefix(const char* s, int32_t s_len, const char* prefix, int32_t prefix_len) {
  return s_len >= prefix_len && SameBytes(s, prefix, prefix_len);
}

int32_t seg_equals(const char* a, int32_t a_len, const char* b, int32_t b_len) {
  return a_len == b_len && SameBytes(a, b, a_len);
}

int32_t seg_equals_nocase(const char* a, int32_t a_len, const char* b, int32_t b_len) {
  if (a_len != b_len) return 0;
  for (int32_t i = 0; i < a_len; ++i) {
    unsigned char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x += 32;
    if (y >= 'A' && y <= 'Z') y += 32;
    if (x != y) return 0;
  }
  return 1;
}

}  // extern "C"

namespace {

constexpr int kHookInstructions = 10000;
constexpr int32_t kOutCapacity = 256;

template <typename F>
void* FnPtr(F* f) {
  return reinterpret_cast<void*>(f);
}

int Panic(lua_State* L) {
  const char* msg = lua_tostring(L, -1);
  LOG(FATAL) << "unprotected Lua error (host bug): " << (msg ? msg : "?");
  return 0;
}

}  // namespace

LuaState::LuaState(int64_t memory_limit_bytes) : limit_(memory_limit_bytes) {}

LuaState::~LuaState() {
  if (L_ != nullptr) lua_close(L_);
  for (char* chunk : pool_chunks_) std::free(chunk);
  std::free(user_.out);
}

// Small blocks (most Lua objects) come from per-state size-class free lists
// carved out of 64 KiB chunks; larger ones from malloc. glibc malloc/free
// for every table and string took ~15% of the benchmark's time. The free
// lists are stacks of pointers, not links stored in the blocks: popping an
// intrusive list loads from a block the GC freed long ago (a cache miss on
// most allocations, up to 8% of the benchmark's time on a busy machine).
void* LuaState::PoolAlloc(size_t size) {
  if (size > kPoolMaxBytes) return std::malloc(size);
  size_t cls = (size - 1) / kPoolGrain;
  if (std::vector<void*>& free = pool_free_[cls]; !free.empty()) {
    void* p = free.back();
    free.pop_back();
    return p;
  }
  // Room for every carved block of the class on its stack, so that
  // PoolFree() never allocates (a free must not fail).
  if (std::vector<void*>& free = pool_free_[cls]; free.capacity() <= pool_carved_[cls]) {
    try {
      free.reserve(2 * pool_carved_[cls] + 64);
    } catch (const std::bad_alloc&) {
      return nullptr;
    }
  }
  size_t bytes = (cls + 1) * kPoolGrain;
  if (pool_left_ < bytes) {
    char* chunk = static_cast<char*>(std::malloc(kPoolChunkBytes));
    if (chunk == nullptr) return nullptr;
    pool_chunks_.push_back(chunk);
    pool_next_ = chunk;
    pool_left_ = kPoolChunkBytes;
  }
  ++pool_carved_[cls];
  void* p = pool_next_;
  pool_next_ += bytes;
  pool_left_ -= bytes;
  return p;
}

void LuaState::PoolFree(void* p, size_t size) {
  if (size > kPoolMaxBytes) {
    std::free(p);
    return;
  }
  pool_free_[(size - 1) / kPoolGrain].push_back(p);
}

void* LuaState::Alloc(void* ud, void* ptr, size_t osize, size_t nsize) {
  auto* self = static_cast<LuaState*>(ud);
  if (ptr == nullptr) osize = 0;
  if (nsize == 0) {
    if (ptr != nullptr) self->PoolFree(ptr, osize);
    self->used_ -= static_cast<int64_t>(osize);
    return nullptr;
  }
  if (nsize > osize && self->used_ + static_cast<int64_t>(nsize - osize) > self->limit_) {
    self->refused_ = true;
    return nullptr;
  }
  void* p;
  if (ptr == nullptr) {
    p = self->PoolAlloc(nsize);
  } else if (osize > kPoolMaxBytes && nsize > kPoolMaxBytes) {
    p = std::realloc(ptr, nsize);
  } else if (osize <= kPoolMaxBytes && nsize <= kPoolMaxBytes &&
             (osize - 1) / kPoolGrain == (nsize - 1) / kPoolGrain) {
    p = ptr;  // same size class
  } else {
    p = self->PoolAlloc(nsize);
    if (p != nullptr) {
      std::memcpy(p, ptr, std::min(osize, nsize));
      self->PoolFree(ptr, osize);
    }
  }
  if (p == nullptr) {
    if (nsize > osize) {
      self->refused_ = true;
      return nullptr;
    }
    p = ptr;  // a shrink must not fail: keep the (larger) block
  }
  self->used_ += static_cast<int64_t>(nsize) - static_cast<int64_t>(osize);
  return p;
}

void LuaState::Hook(lua_State* L, lua_Debug* /*ar*/) {
  void* ud = nullptr;
  lua_getallocf(L, &ud);
  auto* self = static_cast<LuaState*>(ud);
  if (self->budget_.Check()) luaL_error(L, "cpu budget exceeded");
}

int LuaState::Aborting(lua_State* L) {
  auto* self = static_cast<LuaState*>(lua_touserdata(L, lua_upvalueindex(1)));
  lua_pushboolean(L, self->budget_.exceeded || self->refused_);
  return 1;
}

StatusOr<std::unique_ptr<LuaState>> LuaState::Create(int64_t memory_limit_bytes) {
  std::unique_ptr<LuaState> state(new LuaState(memory_limit_bytes));
  SEG_RETURN_IF_ERROR(state->Init());
  return state;
}

int LuaState::InitInProtectedMode(lua_State* L) {
  auto* self = static_cast<LuaState*>(lua_touserdata(L, 1));
  lua_settop(L, 0);
  luaL_openlibs(L);
  if (luaL_loadbuffer(L, kScriptRuntimeLua, kScriptRuntimeLuaSize, "@lua/script_runtime.lua") !=
      0) {
    lua_error(L);
  }
  lua_createtable(L, 0, 13);
  auto set_ptr = [&](const char* key, void* p) {
    lua_pushlightuserdata(L, p);
    lua_setfield(L, -2, key);
  };
  set_ptr("user", &self->user_);
  set_ptr("budget", &self->budget_);
  set_ptr("budget_slow", FnPtr(&seg_budget_slow));
  set_ptr("equals", FnPtr(&seg_equals));
  set_ptr("needles", FnPtr(&seg_needles));
  set_ptr("scan", FnPtr(&seg_scan));
  set_ptr("distinct", FnPtr(&seg_distinct));
  set_ptr("event_raw", FnPtr(&seg_event_raw));
  set_ptr("scan_ctx", &self->scan_ctx_);
  lua_pushlightuserdata(L, self);
  lua_pushcclosure(L, &LuaState::Aborting, 1);
  lua_setfield(L, -2, "aborting");
  lua_pushnumber(L, static_cast<lua_Number>(self->limit_ / 2));
  lua_setfield(L, -2, "max_string_bytes");
  // The event type names scripts filter on, from proto/events.proto.
  lua_createtable(L, 0, static_cast<int>(EventTypes().size()));
  for (const auto& [name, code] : EventTypes()) {
    lua_pushinteger(L, code);
    lua_setfield(L, -2, name.c_str());
  }
  lua_setfield(L, -2, "types");
  lua_call(L, 1, 1);  // -> api table
  if (!lua_istable(L, -1)) luaL_error(L, "runtime did not return its api table");
  lua_getfield(L, -1, "load_script");
  self->api_load_ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getfield(L, -1, "run");
  self->api_run_ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getfield(L, -1, "layout");
  constexpr int kLayoutItems = 11;
  lua_call(L, 0, kLayoutItems);
  const int64_t expected[kLayoutItems] = {
      sizeof(FfiEvent),          sizeof(FfiEventRaw),       sizeof(FfiAttr),
      sizeof(FfiUser),           offsetof(FfiUser, now_ms), offsetof(FfiUser, matched_cap),
      offsetof(FfiEvent, index), offsetof(FfiAttr, value),  sizeof(FfiFilter),
      offsetof(FfiFilter, mask), offsetof(FfiUser, opaque)};
  for (int i = 0; i < kLayoutItems; ++i) {
    if (lua_tointeger(L, -kLayoutItems + i) != expected[i]) {
      luaL_error(L, "FFI layout mismatch between lua_abi.h and script_runtime.lua (item %d)", i);
    }
  }
  lua_settop(L, 0);
  return 0;
}

Status LuaState::Init() {
  L_ = lua_newstate(&LuaState::Alloc, this);
  if (L_ == nullptr) {
    return InternalError("lua_newstate failed (LuaJIT without GC64 refuses custom allocators)");
  }
  lua_atpanic(L_, &Panic);
  user_.out = static_cast<int32_t*>(std::calloc(kOutCapacity, sizeof(int32_t)));
  user_.out_cap = kOutCapacity;
  if (lua_cpcall(L_, &LuaState::InitInProtectedMode, this) != 0) {
    return InternalError("loading lua/script_runtime.lua: " + PopError());
  }
  lua_sethook(L_, reinterpret_cast<lua_Hook>(&LuaState::Hook), LUA_MASKCOUNT, kHookInstructions);
  lua_gc(L_, LUA_GCCOLLECT, 0);
  return Status::OK();
}

std::string LuaState::PopError() {
  size_t len = 0;
  const char* msg = lua_tolstring(L_, -1, &len);
  std::string out = msg ? std::string(msg, len) : std::string("(non-string error)");
  lua_settop(L_, 0);
  return out;
}

namespace {
struct LoadArgs {
  LuaState::ScriptDecl* decl;
  std::string_view source;
  std::string chunk;
  int load_ref;
};
}  // namespace

int LuaState::LoadInProtectedMode(lua_State* L) {
  auto* args = static_cast<LoadArgs*>(lua_touserdata(L, 1));
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, args->load_ref);
  lua_pushlstring(L, args->source.data(), args->source.size());
  lua_pushlstring(L, args->chunk.data(), args->chunk.size());
  lua_call(L, 2, LUA_MULTRET);
  int n = lua_gettop(L);
  auto str = [&](int i) {
    size_t len = 0;
    const char* s = lua_tolstring(L, i, &len);
    return s ? std::string(s, len) : std::string();
  };
  args->decl->name = str(1);
  args->decl->version = str(2);
  args->decl->description = str(3);
  for (int i = 4; i <= n; ++i) args->decl->segments.push_back(str(i));
  lua_settop(L, 0);
  return 0;
}

StatusOr<LuaState::ScriptDecl> LuaState::LoadScript(std::string_view source,
                                                    std::string_view chunk_name,
                                                    int64_t budget_ns) {
  ScriptDecl decl;
  LoadArgs args{&decl, source, "@" + std::string(chunk_name), api_load_ref_};
  refused_ = false;
  budget_.Arm(budget_ns);
  int rc = lua_cpcall(L_, &LuaState::LoadInProtectedMode, &args);
  bool exceeded = budget_.exceeded;
  budget_.Disarm();
  if (rc != 0) {
    std::string msg = PopError();
    if (exceeded)
      msg = std::string(chunk_name) + ": cpu budget exceeded while loading (" + msg + ")";
    if (refused_) msg = std::string(chunk_name) + ": memory limit exceeded while loading";
    refused_ = false;
    lua_gc(L_, LUA_GCCOLLECT, 0);
    return InvalidArgumentError(msg);
  }
  return decl;
}

ScriptErrorKind LuaState::Classify(std::string_view message) const {
  if (budget_.exceeded) return ScriptErrorKind::kCpuBudget;
  if (refused_) return ScriptErrorKind::kMemoryLimit;
  if (message.starts_with("undeclared segment")) return ScriptErrorKind::kUndeclaredSegment;
  if (message.starts_with("bad result")) return ScriptErrorKind::kBadResult;
  return ScriptErrorKind::kError;
}

void LuaState::Run(int index, int64_t budget_ns, CallOutcome* out, int64_t start_ns) {
  out->segment_count = 0;
  out->kind = ScriptErrorKind::kNone;
  out->error.clear();
  refused_ = false;
  lua_rawgeti(L_, LUA_REGISTRYINDEX, api_run_ref_);
  lua_pushinteger(L_, index + 1);
  budget_.Arm(budget_ns, start_ns);
  int rc = lua_pcall(L_, 1, 1, 0);
  if (rc == 0) {
    budget_.Disarm();
    out->segment_count = static_cast<int32_t>(lua_tointeger(L_, -1));
    lua_settop(L_, 0);
    return;
  }
  std::string msg = PopError();
  out->kind = Classify(msg);
  budget_.Disarm();
  switch (out->kind) {
    case ScriptErrorKind::kCpuBudget:
      out->error = "cpu budget of " + std::to_string(budget_ns / 1'000'000) + " ms exceeded";
      break;
    case ScriptErrorKind::kMemoryLimit:
      out->error =
          "memory limit of " + std::to_string(limit_ >> 20) + " MiB exceeded (" + msg + ")";
      break;
    default:
      out->error = std::move(msg);
  }
  refused_ = false;
  lua_gc(L_, LUA_GCCOLLECT, 0);
}

}  // namespace seg::segmenter::internal
