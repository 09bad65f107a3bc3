#include "segmenter/internal/script_host_user.h"

#include <algorithm>
#include <cstring>

namespace seg::segmenter::internal {
namespace {

constexpr char kEmpty[] = "";

FfiText Text(std::string_view s) {
  return FfiText{s.empty() ? kEmpty : s.data(), int64_t(s.size())};
}

inline void SetBigram(Bloom& b, unsigned char x, unsigned char y) {
  uint32_t h = ((static_cast<uint32_t>(x) << 8) | y) * 2654435761u;
  h >>= 24;
  b[h >> 6] |= uint64_t{1} << (h & 63);
}

inline bool Subset(const Bloom& needle, const Bloom& hay) {
  return ((needle[0] & hay[0]) == needle[0]) & ((needle[1] & hay[1]) == needle[1]) &
         ((needle[2] & hay[2]) == needle[2]) & ((needle[3] & hay[3]) == needle[3]);
}

}  // namespace

Bloom BigramBloom(const char* s, size_t n) {
  Bloom b{};
  for (size_t i = 0; i + 1 < n; ++i) {
    SetBigram(b, static_cast<unsigned char>(s[i]), static_cast<unsigned char>(s[i + 1]));
  }
  return b;
}

int32_t ScanContext::Add(const char** ptrs, const int32_t* lens, int32_t n) {
  std::string key;
  for (int32_t i = 0; i < n; ++i) {
    key.append(ptrs[i], lens[i]);
    key.push_back('\0');
  }
  auto it = ids_.find(key);
  if (it != ids_.end()) return it->second;
  if (static_cast<int32_t>(lists_.size()) >= kMaxNeedleLists) return -1;
  NeedleList list;
  for (int32_t i = 0; i < n; ++i) {
    list.needles.emplace_back(ptrs[i], lens[i]);
    list.blooms.push_back(BigramBloom(ptrs[i], lens[i]));
  }
  int32_t id = static_cast<int32_t>(lists_.size());
  lists_.push_back(std::move(list));
  ids_.emplace(std::move(key), id);
  return id;
}

const Bloom& UserData::Signature(int32_t k, bool query) {
  uint8_t bit = query ? 2 : 1;
  std::vector<Bloom>& blooms = query ? query_bloom_ : url_bloom_;
  if (!(bloom_done_[k] & bit)) {
    const FfiEvent& e = events_[k];
    blooms[k] = query ? BigramBloom(e.query, e.query_len) : BigramBloom(e.url, e.url_len);
    bloom_done_[k] |= bit;
  }
  return blooms[k];
}

void LowerInPlace(char* s, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 'A' && c <= 'Z') {
      s[i] = static_cast<char>(c + 32);
    } else if (c == 0xD0 && i + 1 < n) {
      unsigned char d = static_cast<unsigned char>(s[i + 1]);
      if (d >= 0x90 && d <= 0x9F) {  // А-П -> а-п
        s[i + 1] = static_cast<char>(d + 0x20);
        ++i;
      } else if (d >= 0xA0 && d <= 0xAF) {  // Р-Я -> р-я
        s[i] = static_cast<char>(0xD1);
        s[i + 1] = static_cast<char>(d - 0x20);
        ++i;
      } else if (d == 0x81) {  // Ё -> ё
        s[i] = static_cast<char>(0xD1);
        s[i + 1] = static_cast<char>(0x91);
        ++i;
      } else {
        ++i;
      }
    }
  }
}

void SplitUrl(std::string_view url, int32_t* host_off, int32_t* host_len, int32_t* path_off,
              int32_t* path_len) {
  // Hand-written scans: std::string_view::find_first_of calls memchr once
  // per character, which made this the benchmark's top item.
  const char* s = url.data();
  const size_t n = url.size();
  size_t start = 0;
  for (size_t i = 0; i + 2 < n && i < 16; ++i) {
    if (s[i] == ':' && s[i + 1] == '/' && s[i + 2] == '/') {
      start = i + 3;
      break;
    }
    if (s[i] == '/' || s[i] == '?' || s[i] == '#') break;
  }
  if (start == 0 && n >= 2 && s[0] == '/' && s[1] == '/') start = 2;
  size_t host_end = start;
  if (!(start == 0 && n > 0 && s[0] == '/')) {  // not a bare path
    while (host_end < n && s[host_end] != '/' && s[host_end] != '?' && s[host_end] != '#') {
      ++host_end;
    }
  }
  size_t h = start, he = host_end;
  for (size_t i = start; i < host_end; ++i) {
    if (s[i] == '@') h = i + 1;  // userinfo
  }
  for (size_t i = h; i < host_end; ++i) {
    if (s[i] == ':') {  // port
      he = i;
      break;
    }
  }
  *host_off = static_cast<int32_t>(h);
  *host_len = static_cast<int32_t>(he > h ? he - h : 0);
  size_t p = host_end, pe = host_end;
  if (p < n && s[p] == '/') {
    while (pe < n && s[pe] != '?' && s[pe] != '#') ++pe;
  }
  *path_off = static_cast<int32_t>(p);
  *path_len = static_cast<int32_t>(pe - p);
}

void UserData::Build(std::string_view user_id, std::span<const EventView> events, int64_t now_ms,
                     bool explain, FfiUser* user) {
  const size_t n = events.size();
  order_.resize(n);
  bool sorted = true;
  size_t text_bytes = 0, attr_count = 0;
  for (size_t i = 0; i < n; ++i) {
    order_[i] = static_cast<int32_t>(i);
    if (i > 0 && events[i].time_ms < events[i - 1].time_ms) sorted = false;
    text_bytes += events[i].url.size() + events[i].search_query.size();
    attr_count += events[i].attributes.size();
  }
  if (!sorted) {
    std::stable_sort(order_.begin(), order_.end(),
                     [&](int32_t a, int32_t b) { return events[a].time_ms < events[b].time_ms; });
  }
  arena_.resize(text_bytes + 1);
  events_.resize(n);
  raw_.resize(n);
  attrs_.clear();
  attrs_.reserve(attr_count);
  char* arena = arena_.data();
  size_t pos = 0;
  int32_t type_count[kMaxTypeCode + 2] = {};
  for (size_t k = 0; k < n; ++k) {
    const EventView& e = events[order_[k]];
    FfiEvent& f = events_[k];
    f.time_ms = static_cast<double>(e.time_ms);
    f.type = e.type;
    f.ipv4 = e.ipv4;
    f.index = order_[k];
    f.pad = 0;
    std::memcpy(arena + pos, e.url.data(), e.url.size());
    LowerInPlace(arena + pos, e.url.size());
    f.url = arena + pos;
    f.url_len = static_cast<int32_t>(e.url.size());
    SplitUrl(std::string_view(f.url, e.url.size()), &f.host_off, &f.host_len, &f.path_off,
             &f.path_len);
    pos += e.url.size();
    std::memcpy(arena + pos, e.search_query.data(), e.search_query.size());
    LowerInPlace(arena + pos, e.search_query.size());
    f.query = arena + pos;
    f.query_len = static_cast<int32_t>(e.search_query.size());
    pos += e.search_query.size();
    f.attr_begin = static_cast<int32_t>(attrs_.size());
    for (const auto& [key, value] : e.attributes) {
      attrs_.push_back(FfiAttr{key.empty() ? kEmpty : key.data(), int32_t(key.size()),
                               int32_t(value.size()), value.empty() ? kEmpty : value.data()});
    }
    f.attr_end = static_cast<int32_t>(attrs_.size());
    raw_[k] = FfiEventRaw{Text(e.url),          Text(e.referrer), Text(e.user_agent),
                          Text(e.search_query), Text(e.source),   Text(e.event_id)};
    int t = (e.type >= 0 && e.type <= kMaxTypeCode) ? e.type : kMaxTypeCode + 1;
    ++type_count[t];
  }
  // Per-type lists: counting sort keeps time order inside each type.
  int32_t begin = 0;
  for (int t = 0; t <= kMaxTypeCode + 1; ++t) {
    user->type_begin[t] = begin;
    begin += type_count[t];
  }
  user->type_begin[kMaxTypeCode + 2] = begin;
  by_type_.resize(n);
  int32_t fill[kMaxTypeCode + 2];
  for (int t = 0; t <= kMaxTypeCode + 1; ++t) fill[t] = user->type_begin[t];
  for (size_t k = 0; k < n; ++k) {
    int t = events_[k].type;
    if (t < 0 || t > kMaxTypeCode) t = kMaxTypeCode + 1;
    by_type_[fill[t]++] = static_cast<int32_t>(k);
  }
  if (explain) matched_.resize(std::max<size_t>(1024, 4 * n));
  scratch_.resize(std::max<size_t>(n, 1));
  url_bloom_.resize(n);
  query_bloom_.resize(n);
  bloom_done_.assign(n, 0);
  user->ev = events_.data();
  user->raw = raw_.data();
  user->attrs = attrs_.empty() ? nullptr : attrs_.data();
  user->by_type = by_type_.data();
  user->n = static_cast<int32_t>(n);
  user->explain = explain ? 1 : 0;
  user->now_ms = static_cast<double>(now_ms);
  user->id = user_id.empty() ? kEmpty : user_id.data();
  user->id_len = static_cast<int64_t>(user_id.size());
  user->matched = explain ? matched_.data() : nullptr;
  user->matched_cap = explain ? static_cast<int32_t>(matched_.size()) : 0;
  user->matched_n = 0;
  user->scratch = scratch_.data();
  user->scratch_cap = static_cast<int32_t>(scratch_.size());
  user->host_data = this;
}

namespace {

bool AnyContains(const ScanContext::NeedleList& list, const char* s, int32_t len,
                 const Bloom& sig) {
  for (size_t i = 0; i < list.needles.size(); ++i) {
    const std::string& n = list.needles[i];
    if (Subset(list.blooms[i], sig) &&
        seg_contains(s, len, n.data(), static_cast<int32_t>(n.size()))) {
      return true;
    }
  }
  return false;
}

template <typename F>
bool AnyOf(const ScanContext::NeedleList& list, F&& test) {
  for (const std::string& n : list.needles) {
    if (test(n.data(), static_cast<int32_t>(n.size()))) return true;
  }
  return false;
}

bool Matches(const ScanContext& ctx, UserData& ud, const FfiUser& u, const FfiFilter& f,
             int32_t k) {
  const FfiEvent& e = u.ev[k];
  if (f.typemask != 0 && (e.type < 0 || e.type > 30 || !(f.typemask & (1 << e.type)))) {
    return false;
  }
  if (f.host >= 0) {
    const char* h = e.url + e.host_off;
    if (e.host_len == 0 || !AnyOf(ctx.list(f.host), [&](const char* n, int32_t nl) {
          return seg_host_is(h, e.host_len, n, nl) != 0;
        })) {
      return false;
    }
  }
  if (f.path >= 0) {
    const char* p = e.url + e.path_off;
    if (!AnyOf(ctx.list(f.path),
               [&](const char* n, int32_t nl) { return seg_has_prefix(p, e.path_len, n, nl); })) {
      return false;
    }
  }
  if (f.source >= 0) {
    const FfiText& src = u.raw[k].source;
    if (!AnyOf(ctx.list(f.source), [&](const char* n, int32_t nl) {
          return seg_equals_nocase(src.ptr, static_cast<int32_t>(src.len), n, nl) != 0;
        })) {
      return false;
    }
  }
  if (f.net_n > 0) {
    if (e.ipv4 == 0) return false;
    bool ok = false;
    for (int32_t i = 0; i < f.net_n && !ok; ++i) ok = (e.ipv4 & f.mask[i]) == f.net[i];
    if (!ok) return false;
  }
  for (int32_t c = 0; c < f.attr_n; ++c) {
    const std::string& key = ctx.list(f.attr_key[c]).needles[0];
    bool found = false;
    for (int32_t a = e.attr_begin; a < e.attr_end && !found; ++a) {
      const FfiAttr& at = u.attrs[a];
      if (!seg_equals(at.key, at.key_len, key.data(), static_cast<int32_t>(key.size()))) continue;
      found = f.attr_vals[c] < 0 || AnyOf(ctx.list(f.attr_vals[c]), [&](const char* n, int32_t nl) {
                return seg_equals_nocase(at.value, at.value_len, n, nl) != 0;
              });
    }
    if (!found) return false;
  }
  if (f.url >= 0 && !AnyContains(ctx.list(f.url), e.url, e.url_len, ud.Signature(k, false))) {
    return false;
  }
  if (f.query >= 0 && (e.query_len == 0 || !AnyContains(ctx.list(f.query), e.query, e.query_len,
                                                        ud.Signature(k, true)))) {
    return false;
  }
  if (f.query_all >= 0) {
    if (e.query_len == 0) return false;
    const Bloom& sig = ud.Signature(k, true);
    const auto& list = ctx.list(f.query_all);
    for (size_t i = 0; i < list.needles.size(); ++i) {
      const std::string& n = list.needles[i];
      if (!Subset(list.blooms[i], sig) ||
          !seg_contains(e.query, e.query_len, n.data(), static_cast<int32_t>(n.size()))) {
        return false;
      }
    }
  }
  if (f.text >= 0 && !AnyContains(ctx.list(f.text), e.url, e.url_len, ud.Signature(k, false)) &&
      (e.query_len == 0 ||
       !AnyContains(ctx.list(f.text), e.query, e.query_len, ud.Signature(k, true)))) {
    return false;
  }
  return true;
}

}  // namespace

extern "C" int32_t seg_needles(void* ctx, const char** ptrs, const int32_t* lens, int32_t n) {
  return static_cast<ScanContext*>(ctx)->Add(ptrs, lens, n);
}

extern "C" int32_t seg_scan(void* ctx_ptr, FfiUser* u, const FfiFilter* f, int32_t flags) {
  const auto& ctx = *static_cast<const ScanContext*>(ctx_ptr);
  auto& ud = *static_cast<UserData*>(u->host_data);
  double lo = f->lo_ms, hi = f->hi_ms;
  if (f->within_ms > 0) lo = std::max(lo, u->now_ms - f->within_ms);
  if (f->older_ms > 0) hi = std::min(hi, u->now_ms - f->older_ms);
  const int32_t* list = nullptr;
  int32_t b = 0, e = u->n;
  if (f->single_type > 0 && f->single_type <= kMaxTypeCode) {
    list = u->by_type;
    b = u->type_begin[f->single_type];
    e = u->type_begin[f->single_type + 1];
  }
  auto time_at = [&](int32_t p) { return u->ev[list ? list[p] : p].time_ms; };
  // Time order: [b, e) -> the positions with lo <= time <= hi.
  int32_t lo_pos = b, hi_pos = e;
  while (lo_pos < hi_pos) {
    int32_t mid = lo_pos + (hi_pos - lo_pos) / 2;
    if (time_at(mid) < lo)
      lo_pos = mid + 1;
    else
      hi_pos = mid;
  }
  b = lo_pos;
  hi_pos = e;
  while (lo_pos < hi_pos) {
    int32_t mid = lo_pos + (hi_pos - lo_pos) / 2;
    if (time_at(mid) <= hi)
      lo_pos = mid + 1;
    else
      hi_pos = mid;
  }
  e = lo_pos;
  const bool reverse = flags & kScanReverse, stop = flags & kScanStop,
             collect = flags & kScanCollect, record = (flags & kScanRecord) && u->explain;
  int32_t count = 0;
  for (int32_t i = 0; i < e - b; ++i) {
    int32_t p = reverse ? e - 1 - i : b + i;
    int32_t k = list ? list[p] : p;
    if (!Matches(ctx, ud, *u, *f, k)) continue;
    if (collect && count < u->scratch_cap) u->scratch[count] = k;
    ++count;
    if (record && u->matched_n < u->matched_cap) u->matched[u->matched_n++] = u->ev[k].index;
    if (stop) break;
  }
  return count;
}

}  // namespace seg::segmenter::internal
