// UserData: turns one user's EventViews into the flat arrays the Lua
// helpers scan (lua_abi.h), once per user, shared by all scripts.
//
// Work per user is linear: one pass sorts (only if the input is out of
// order), one pass lower-cases url and query into an arena and locates host
// and path, one counting pass builds the per-type index lists. All buffers
// are reused between users, so a warm UserData does not allocate.
// Single-threaded.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/event.h"
#include "segmenter/internal/lua_abi.h"

namespace seg::segmenter::internal {

class UserData {
 public:
  // Fills `user` (all pointers into this object and into `events`, which
  // must outlive the evaluation). `matched` receives explain records.
  void Build(std::string_view user_id, std::span<const EventView> events, int64_t now_ms,
             bool explain, FfiUser* user);

 private:
  std::vector<int32_t> order_;
  std::vector<FfiEvent> events_;
  std::vector<FfiEventRaw> raw_;
  std::vector<FfiAttr> attrs_;
  std::vector<int32_t> by_type_;
  std::vector<int32_t> matched_;
  std::string arena_;
};

// Lower-cases ASCII and Cyrillic (UTF-8 А-Я, Ё) in place.
void LowerInPlace(char* s, size_t n);

// Host and path of a lower-cased url: "https://www.auto.ru:443/a/b?x" ->
// host "www.auto.ru", path "/a/b". Offsets into `url`.
void SplitUrl(std::string_view url, int32_t* host_off, int32_t* host_len, int32_t* path_off,
              int32_t* path_len);

}  // namespace seg::segmenter::internal
