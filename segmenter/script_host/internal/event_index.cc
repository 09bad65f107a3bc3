#include "segmenter/script_host/internal/event_index.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace seg::segmenter::internal {
namespace {

constexpr char kEmpty[] = "";
constexpr int kTypeBitmaps = 32;  // type codes 0..30 can be in a typemask

FfiText Text(std::string_view s) {
  return FfiText{s.empty() ? kEmpty : s.data(), int64_t(s.size())};
}

// Copies `n` bytes lower-cased (ASCII and Cyrillic): ASCII eight bytes at a
// time (SWAR), noting whether a 0xD0 lead byte (А-П, Р-Я, Ё) occurs; only
// then a second, byte-wise pass for Cyrillic.
void CopyLower(char* dst, const char* src, size_t n) {
  constexpr uint64_t k01 = 0x0101010101010101ull, k80 = 0x8080808080808080ull;
  uint64_t cyrillic = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x;
    std::memcpy(&x, src + i, 8);
    const uint64_t low7 = x & ~k80;
    const uint64_t ge_a = low7 + k01 * (0x80 - 'A');  // high bit: low7 >= 'A'
    const uint64_t gt_z = low7 + k01 * (0x7F - 'Z');  // high bit: low7 > 'Z'
    x |= (ge_a & ~gt_z & ~x & k80) >> 2;              // +0x20 on ASCII A-Z
    std::memcpy(dst + i, &x, 8);
    const uint64_t d = x ^ (k01 * 0xD0);
    cyrillic |= (d - k01) & ~d & k80;  // nonzero iff some byte is 0xD0
  }
  for (; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(src[i]);
    cyrillic |= c == 0xD0;
    dst[i] = static_cast<char>(c + (static_cast<unsigned char>(c - 'A') < 26 ? 32 : 0));
  }
  if (cyrillic != 0) LowerInPlace(dst, n);
}

// True when s[0, n) has nothing for LowerInPlace() to change: no ASCII A-Z
// and no upper-case Cyrillic (0xD0 followed by 0x81 or 0x90-0xAF). Eight
// bytes at a time; only strings with a 0xD0 byte get a byte-wise look.
bool IsLower(const char* s, size_t n) {
  constexpr uint64_t k01 = 0x0101010101010101ull, k80 = 0x8080808080808080ull;
  uint64_t upper = 0, cyrillic = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x;
    std::memcpy(&x, s + i, 8);
    const uint64_t low7 = x & ~k80;
    const uint64_t ge_a = low7 + k01 * (0x80 - 'A');
    const uint64_t gt_z = low7 + k01 * (0x7F - 'Z');
    upper |= ge_a & ~gt_z & ~x & k80;
    const uint64_t d = x ^ (k01 * 0xD0);
    cyrillic |= (d - k01) & ~d & k80;
  }
  for (; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    upper |= static_cast<unsigned char>(c - 'A') < 26;
    cyrillic |= c == 0xD0;
  }
  if (upper != 0) return false;
  if (cyrillic == 0) return true;
  for (i = 0; i + 1 < n; ++i) {
    if (static_cast<unsigned char>(s[i]) != 0xD0) continue;
    const unsigned char d = static_cast<unsigned char>(s[i + 1]);
    if (d == 0x81 || (d >= 0x90 && d <= 0xAF)) return false;
  }
  return true;
}

// The lower-cased text of s[0, n): `s` itself when it is lower-case already
// (most urls and queries: no copy, no arena bytes to touch), else a copy
// lower-cased at `arena` + *pos.
const char* LowerView(const char* s, size_t n, char* arena, size_t* pos) {
  if (n == 0) return kEmpty;
  if (IsLower(s, n)) return s;
  char* dst = arena + *pos;
  CopyLower(dst, s, n);
  *pos += n;
  return dst;
}

// Bytes that end or split a url's authority (one table load per byte).
constexpr uint8_t kEndOfAuthority = 1, kUserinfo = 2, kPort = 3;
constexpr std::array<uint8_t, 256> kAuthorityClass = [] {
  std::array<uint8_t, 256> t{};
  t['/'] = t['?'] = t['#'] = kEndOfAuthority;
  t['@'] = kUserinfo;
  t[':'] = kPort;
  return t;
}();

// Position of the first byte of s[i, n) that ends the path ('?', '#') or,
// unless kPath, is special in the authority ('/', '?', '#', '@', ':'); n
// when there is none. Sixteen bytes per step (SSE2, part of x86-64).
template <bool kPath>
size_t NextSpecial(const char* s, size_t i, size_t n) {
#if defined(__SSE2__)
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
    __m128i m =
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('?')), _mm_cmpeq_epi8(v, _mm_set1_epi8('#')));
    if (!kPath) {
      m = _mm_or_si128(m, _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('/')),
                                       _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('@')),
                                                    _mm_cmpeq_epi8(v, _mm_set1_epi8(':')))));
    }
    if (const int bits = _mm_movemask_epi8(m); bits != 0)
      return i + std::countr_zero(static_cast<unsigned>(bits));
  }
#endif
  for (; i < n; ++i) {
    const uint8_t c = kAuthorityClass[static_cast<unsigned char>(s[i])];
    if (kPath ? (s[i] == '?' || s[i] == '#') : c != 0) return i;
  }
  return n;
}

// The memo key of a filter. The multiplies are independent of each other
// (a chain of one multiply per word made this ~5% of the benchmark: one hash
// per helper call); equal hashes are told apart by comparing the bytes.
uint64_t HashFilter(const FfiFilter& f) {
  uint64_t words[(sizeof(FfiFilter) + 7) / 8] = {};
  std::memcpy(words, &f, sizeof(FfiFilter));
  uint64_t h = 0x9E3779B97F4A7C15ull;
  for (uint64_t w : words) h = std::rotl(h, 23) + (w ^ (w >> 31)) * 0xFF51AFD7ED558CCDull;
  return h ^ (h >> 29);
}

// Hash of a host for the per-user host table: its first and last eight
// bytes and its length (std::hash over every byte was 1.5% of the
// benchmark); equal hashes are told apart by comparing the hosts.
uint64_t HostHash(std::string_view host) {
  const size_t n = host.size();
  uint64_t a = 0, b = 0;
  if (n >= 8) {
    std::memcpy(&a, host.data(), 8);
    std::memcpy(&b, host.data() + n - 8, 8);
  } else {
    std::memcpy(&a, host.data(), n);
  }
  const uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + n) * 0xC2B2AE3D27D4EB4Full;
  return h ^ (h >> 32);
}

template <typename F>
bool AnyOf(const ScanContext::NeedleList& list, F&& test) {
  for (const std::string& n : list.needles) {
    if (test(n.data(), static_cast<int32_t>(n.size()))) return true;
  }
  return false;
}

// Calls fn(k) for every set bit k of bits[wb..we); fn returns false to clear it.
template <typename F>
void Refine(uint64_t* bits, int32_t wb, int32_t we, F&& fn) {
  for (int32_t w = wb; w < we; ++w) {
    uint64_t x = bits[w];
    while (x != 0) {
      int b = std::countr_zero(x);
      x &= x - 1;
      if (!fn(w * 64 + b)) bits[w] &= ~(uint64_t{1} << b);
    }
  }
}

}  // namespace

int32_t UrlSchemeSkip(const char* url, int32_t len) {
  if (len >= 8 && std::memcmp(url, "https://", 8) == 0) return 7;
  if (len >= 7 && std::memcmp(url, "http://", 7) == 0) return 6;
  return 0;
}

namespace {

// The buckets of the bigrams UrlSchemeSkip() leaves out.
const std::array<bool, kBigramBuckets>& SchemeBuckets() {
  static const std::array<bool, kBigramBuckets> kSet = [] {
    std::array<bool, kBigramBuckets> set{};
    for (std::string_view scheme : {"https://", "http://"}) {
      for (size_t i = 0; i + 1 < scheme.size(); ++i) {
        set[BigramBucket(static_cast<unsigned char>(scheme[i]),
                         static_cast<unsigned char>(scheme[i + 1]))] = true;
      }
    }
    return set;
  }();
  return kSet;
}

}  // namespace

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
    std::vector<uint8_t> buckets;
    for (int32_t j = 0; j + 1 < lens[i]; ++j) {
      buckets.push_back(static_cast<uint8_t>(BigramBucket(
          static_cast<unsigned char>(ptrs[i][j]), static_cast<unsigned char>(ptrs[i][j + 1]))));
    }
    std::sort(buckets.begin(), buckets.end());
    buckets.erase(std::unique(buckets.begin(), buckets.end()), buckets.end());
    std::vector<uint8_t> url_buckets;
    for (uint8_t b : buckets) {
      if (!SchemeBuckets()[b]) url_buckets.push_back(b);
    }
    list.buckets.push_back(std::move(buckets));
    list.url_buckets.push_back(std::move(url_buckets));
  }
  int32_t id = static_cast<int32_t>(lists_.size());
  lists_.push_back(std::move(list));
  ids_.emplace(std::move(key), id);
  return id;
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
  if (n >= 8 && std::memcmp(s, "https://", 8) == 0) {
    start = 8;
  } else if (n >= 7 && std::memcmp(s, "http://", 7) == 0) {
    start = 7;
  } else {
    for (size_t i = 0; i + 2 < n && i < 16; ++i) {
      if (s[i] == ':' && s[i + 1] == '/' && s[i + 2] == '/') {
        start = i + 3;
        break;
      }
      if (s[i] == '/' || s[i] == '?' || s[i] == '#') break;
    }
  }
  if (start == 0 && n >= 2 && s[0] == '/' && s[1] == '/') start = 2;
  // One pass over the authority: its end, the last '@' (userinfo) and the
  // first ':' after it (port).
  size_t host_end = start, h = start, colon = std::string_view::npos;
  if (!(start == 0 && n > 0 && s[0] == '/')) {  // not a bare path
    while ((host_end = NextSpecial<false>(s, host_end, n)) < n) {
      const uint8_t c = kAuthorityClass[static_cast<unsigned char>(s[host_end])];
      if (c == kEndOfAuthority) break;
      if (c == kUserinfo) {
        h = host_end + 1;
        colon = std::string_view::npos;
      } else if (colon == std::string_view::npos) {
        colon = host_end;
      }
      ++host_end;
    }
  }
  size_t he = colon == std::string_view::npos ? host_end : colon;
  *host_off = static_cast<int32_t>(h);
  *host_len = static_cast<int32_t>(he > h ? he - h : 0);
  size_t p = host_end, pe = host_end;
  if (p < n && s[p] == '/') pe = NextSpecial<true>(s, p, n);
  *path_off = static_cast<int32_t>(p);
  *path_len = static_cast<int32_t>(pe - p);
}

void UserData::Build(std::string_view user_id, std::span<const EventView> events, int64_t now_ms,
                     bool explain, FfiUser* user) {
  const size_t n = events.size();
  n_ = n;
  input_ = events;
  words_ = (n + 63) / 64;
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
  if (arena_.size() < text_bytes + 1) arena_.resize(text_bytes + 1);
  events_.resize(n);
  raw_.resize(n);
  attrs_.clear();
  attrs_.reserve(attr_count);
  type_bits_.assign(kTypeBitmaps * words_, 0);
  has_query_.assign(words_, 0);
  char* arena = arena_.data();
  size_t pos = 0;
  for (size_t k = 0; k < n; ++k) {
    if (k + 4 < n) {  // the strings are scattered: start loading them early
      const EventView& ahead = events[order_[k + 4]];
      __builtin_prefetch(ahead.url.data());
      __builtin_prefetch(ahead.search_query.data());
    }
    const EventView& e = events[order_[k]];
    FfiEvent& f = events_[k];
    f.time_ms = static_cast<double>(e.time_ms);
    f.type = e.type;
    f.ipv4 = e.ipv4;
    f.index = order_[k];
    f.pad = 0;
    f.url = LowerView(e.url.data(), e.url.size(), arena, &pos);
    f.url_len = static_cast<int32_t>(e.url.size());
    SplitUrl(std::string_view(f.url, e.url.size()), &f.host_off, &f.host_len, &f.path_off,
             &f.path_len);
    f.query = LowerView(e.search_query.data(), e.search_query.size(), arena, &pos);
    f.query_len = static_cast<int32_t>(e.search_query.size());
    f.attr_begin = static_cast<int32_t>(attrs_.size());
    for (const auto& [key, value] : e.attributes) {
      attrs_.push_back(FfiAttr{key.empty() ? kEmpty : key.data(), int32_t(key.size()),
                               int32_t(value.size()), value.empty() ? kEmpty : value.data()});
    }
    f.attr_end = static_cast<int32_t>(attrs_.size());
    const uint64_t bit = uint64_t{1} << (k & 63);
    if (e.type >= 0 && e.type <= 30) type_bits_[e.type * words_ + (k >> 6)] |= bit;
    if (!e.search_query.empty()) has_query_[k >> 6] |= bit;
  }
  url_index_.built = false;
  query_index_.built = false;
  hosts_built_ = false;
  memo_.clear();
  memo_hashes_.clear();
  memo_bits_.clear();
  filters_evaluated_ = 0;
  memo_hits_ = 0;
  result_.resize(words_);
  tmp_.resize(words_);
  tmp2_.resize(words_);
  cand_.resize(words_);
  acc_.resize(words_);
  pending_.resize(words_);
  call_due_ms_ = kNoDue;
  union_.assign(words_, 0);
  if (explain) matched_.resize(std::max<size_t>(1024, 4 * n));
  scratch_.resize(std::max<size_t>(n, 1));
  user->ev = events_.data();
  user->raw = raw_.data();
  user->attrs = attrs_.empty() ? nullptr : attrs_.data();
  user->by_type = nullptr;  // unused since the bitmap scan; kept for the layout
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

void UserData::TimeRange(const FfiFilter& f, double now_ms, int32_t* b, int32_t* e) const {
  double lo = f.lo_ms, hi = f.hi_ms;
  if (f.within_ms > 0) lo = std::max(lo, now_ms - f.within_ms);
  if (f.older_ms > 0) hi = std::min(hi, now_ms - f.older_ms);
  auto first = events_.begin(), last = events_.begin() + static_cast<ptrdiff_t>(n_);
  auto lo_it =
      std::partition_point(first, last, [&](const FfiEvent& ev) { return ev.time_ms < lo; });
  auto hi_it =
      std::partition_point(lo_it, last, [&](const FfiEvent& ev) { return ev.time_ms <= hi; });
  *b = static_cast<int32_t>(lo_it - first);
  *e = static_cast<int32_t>(hi_it - first);
}

static_assert(std::endian::native == std::endian::little, "Index() loads byte pairs as LE");

// Indexes the events of dst[wb, we) not indexed yet: a filter only ever
// looks at its own candidates, so events no text filter reaches (other types,
// outside every window) are never indexed.
const UserData::TextIndex& UserData::Index(bool query, const uint64_t* dst, int32_t wb,
                                           int32_t we) {
  TextIndex& ix = query ? query_index_ : url_index_;
  if (!ix.built) {
    ix.bits.assign(kBigramBuckets * words_, 0);
    ix.indexed.assign(words_, 0);
    ix.built = true;
  }
  for (int32_t w = wb; w < we; ++w) {
    uint64_t need = dst[w] & ~ix.indexed[w];
    ix.indexed[w] |= need;
    uint64_t* block = ix.bits.data() + static_cast<size_t>(w) * kBigramBuckets;
    for (; need != 0; need &= need - 1) {
      const int b = std::countr_zero(need);
      const FfiEvent& e = events_[w * 64 + b];
      const unsigned char* s = reinterpret_cast<const unsigned char*>(query ? e.query : e.url);
      const int32_t len = query ? e.query_len : e.url_len;
      const uint64_t bit = uint64_t{1} << b;
      for (int32_t i = query ? 0 : UrlSchemeSkip(e.url, len); i + 1 < len; ++i) {
        uint16_t pair;
        std::memcpy(&pair, s + i, 2);  // x | y << 8 on little-endian x86
        block[BigramBucket16(pair)] |= bit;
      }
    }
  }
  return ix;
}

void UserData::BuildHosts() {
  if (hosts_built_) return;
  host_id_.assign(n_, -1);
  host_event_.clear();
  size_t cap = 16;
  while (cap < 2 * n_) cap *= 2;
  host_table_.assign(cap, 0);
  for (size_t k = 0; k < n_; ++k) {
    const FfiEvent& e = events_[k];
    if (e.host_len == 0) continue;
    std::string_view host(e.url + e.host_off, e.host_len);
    size_t slot = HostHash(host) & (cap - 1);
    while (true) {
      int32_t v = host_table_[slot];
      if (v == 0) {
        host_table_[slot] = static_cast<int32_t>(host_event_.size()) + 1;
        host_id_[k] = static_cast<int32_t>(host_event_.size());
        host_event_.push_back(static_cast<int32_t>(k));
        break;
      }
      const FfiEvent& o = events_[host_event_[v - 1]];
      if (host == std::string_view(o.url + o.host_off, o.host_len)) {
        host_id_[k] = v - 1;
        break;
      }
      slot = (slot + 1) & (cap - 1);
    }
  }
  hosts_built_ = true;
}

void UserData::Contains(const ScanContext::NeedleList& list, bool query, bool all, uint64_t* dst,
                        int32_t wb, int32_t we) {
  const TextIndex& ix = Index(query, dst, wb, we);
  uint64_t* cand = cand_.data();
  uint64_t* acc = acc_.data();
  if (!all) std::fill(acc + wb, acc + we, 0);
  for (size_t i = 0; i < list.needles.size(); ++i) {
    const std::string& needle = list.needles[i];
    const int32_t nl = static_cast<int32_t>(needle.size());
    uint64_t any = 0;
    for (int32_t w = wb; w < we; ++w) {
      uint64_t c = all ? dst[w] : dst[w] & ~acc[w];
      const uint64_t* block = ix.bits.data() + static_cast<size_t>(w) * kBigramBuckets;
      for (uint8_t bucket : (query ? list.buckets[i] : list.url_buckets[i])) c &= block[bucket];
      cand[w] = c;
      any |= c;
    }
    if (any != 0) {
      Refine(cand, wb, we, [&](int32_t k) {
        const FfiEvent& e = events_[k];
        return query ? seg_contains(e.query, e.query_len, needle.data(), nl) != 0
                     : seg_contains(e.url, e.url_len, needle.data(), nl) != 0;
      });
    }
    if (all) {
      for (int32_t w = wb; w < we; ++w) dst[w] = cand[w];
    } else {
      for (int32_t w = wb; w < we; ++w) acc[w] |= cand[w];
    }
  }
  if (!all) std::copy(acc + wb, acc + we, dst + wb);
}

bool UserData::MatchesRest(const ScanContext& ctx, const FfiFilter& f, int32_t k) const {
  const FfiEvent& e = events_[k];
  if (f.path >= 0) {
    const char* p = e.url + e.path_off;
    if (!AnyOf(ctx.list(f.path),
               [&](const char* n, int32_t nl) { return seg_has_prefix(p, e.path_len, n, nl); })) {
      return false;
    }
  }
  if (f.source >= 0) {
    const std::string_view src = input_[events_[k].index].source;
    if (!AnyOf(ctx.list(f.source), [&](const char* n, int32_t nl) {
          return seg_equals_nocase(src.data(), static_cast<int32_t>(src.size()), n, nl) != 0;
        })) {
      return false;
    }
  }
  if (f.net_n > 0) {
    if (e.ipv4 == 0) return false;
    bool ok = false;
    for (int32_t i = 0; i < f.net_n && i < kMaxFilterNets && !ok; ++i) {
      ok = (e.ipv4 & f.mask[i]) == f.net[i];
    }
    if (!ok) return false;
  }
  for (int32_t c = 0; c < f.attr_n && c < kMaxFilterAttrs; ++c) {
    const std::string& key = ctx.list(f.attr_key[c]).needles[0];
    bool found = false;
    for (int32_t a = e.attr_begin; a < e.attr_end && !found; ++a) {
      const FfiAttr& at = attrs_[a];
      if (!seg_equals(at.key, at.key_len, key.data(), static_cast<int32_t>(key.size()))) continue;
      found = f.attr_vals[c] < 0 || AnyOf(ctx.list(f.attr_vals[c]), [&](const char* n, int32_t nl) {
                return seg_equals_nocase(at.value, at.value_len, n, nl) != 0;
              });
    }
    if (!found) return false;
  }
  return true;
}

void UserData::Evaluate(const ScanContext& ctx, const FfiFilter& f, uint64_t* dst, int32_t* wbp,
                        int32_t* wep) {
  std::fill(dst, dst + words_, 0);
  *wbp = *wep = 0;
  int32_t b, e;
  TimeRange(f, user_now_ms_, &b, &e);
  if (b >= e) return;
  const int32_t wb = b >> 6, we = (e + 63) >> 6;
  std::fill(dst + wb, dst + we, ~uint64_t{0});
  dst[wb] &= ~uint64_t{0} << (b & 63);
  if (e & 63) dst[we - 1] &= (uint64_t{1} << (e & 63)) - 1;
  *wbp = wb;
  *wep = we;
  if (f.typemask != 0) {
    const uint32_t mask = static_cast<uint32_t>(f.typemask) & 0x7FFFFFFFu;
    for (int32_t w = wb; w < we; ++w) {
      uint64_t t = 0;
      for (uint32_t m = mask; m != 0; m &= m - 1) {
        t |= type_bits_[std::countr_zero(m) * words_ + w];
      }
      dst[w] &= t;
    }
  }
  if (f.host >= 0) {
    BuildHosts();
    const auto& list = ctx.list(f.host);
    host_ok_.assign(host_event_.size(), 2);  // 2: not tested yet
    Refine(dst, wb, we, [&](int32_t k) {
      int32_t id = host_id_[k];
      if (id < 0) return false;
      if (host_ok_[id] == 2) {
        const FfiEvent& ev = events_[k];
        const char* h = ev.url + ev.host_off;
        host_ok_[id] = AnyOf(list, [&](const char* n, int32_t nl) {
          return seg_host_is(h, ev.host_len, n, nl) != 0;
        });
      }
      return host_ok_[id] != 0;
    });
  }
  if (f.path >= 0 || f.source >= 0 || f.net_n > 0 || f.attr_n > 0) {
    Refine(dst, wb, we, [&](int32_t k) { return MatchesRest(ctx, f, k); });
  }
  if (f.url >= 0) Contains(ctx.list(f.url), false, false, dst, wb, we);
  if (f.query >= 0) {
    for (int32_t w = wb; w < we; ++w) dst[w] &= has_query_[w];
    Contains(ctx.list(f.query), true, false, dst, wb, we);
  }
  if (f.query_all >= 0) {
    for (int32_t w = wb; w < we; ++w) dst[w] &= has_query_[w];
    Contains(ctx.list(f.query_all), true, true, dst, wb, we);
  }
  if (f.text >= 0) {
    uint64_t* in_url = tmp_.data();
    uint64_t* in_query = tmp2_.data();
    for (int32_t w = wb; w < we; ++w) {
      in_url[w] = dst[w];
      in_query[w] = dst[w] & has_query_[w];
    }
    Contains(ctx.list(f.text), false, false, in_url, wb, we);
    Contains(ctx.list(f.text), true, false, in_query, wb, we);
    for (int32_t w = wb; w < we; ++w) dst[w] = in_url[w] | in_query[w];
  }
}

namespace {

// Epoch ms no later than `t` (a time in double ms): floor, so a fractional
// window (within_ms = 1.5) is early, not late; kNoDue beyond int64.
int64_t DueFloor(double t) {
  if (!(t < 9.2e18)) return UserData::kNoDue;  // also NaN
  if (t < -9.2e18) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(std::floor(t));
}

// Position of the first set bit of bits[wb, we), or -1.
int32_t FirstSet(const uint64_t* bits, int32_t wb, int32_t we) {
  for (int32_t w = wb; w < we; ++w) {
    if (bits[w] != 0) return w * 64 + std::countr_zero(bits[w]);
  }
  return -1;
}

}  // namespace

int64_t UserData::Due(const ScanContext& ctx, const FfiFilter& f, const uint64_t* bits, int32_t wb,
                      int32_t we) {
  int64_t due = kNoDue;
  // time >= now - within: the set only shrinks as now moves (an event never
  // gets younger), first when the oldest match leaves. since_ms does not
  // change that: it only keeps older events out for good.
  if (f.within_ms > 0) {
    if (const int32_t k = FirstSet(bits, wb, we); k >= 0) {
      due = DueFloor(events_[k].time_ms + f.within_ms);
    }
  }
  // time <= now - older: the set grows as now moves, first when the oldest
  // event newer than the edge that matches everything else crosses it. Such
  // events exist only while the edge is below until_ms.
  if (f.older_ms > 0) {
    const double edge = user_now_ms_ - f.older_ms;
    if (edge < f.hi_ms) {
      FfiFilter rest = f;
      // within is left out: with within > older it cannot exclude an event
      // newer than the edge; with within <= older nothing ever matches and
      // an early time is harmless.
      rest.within_ms = 0;
      rest.older_ms = 0;
      rest.lo_ms = std::max(f.lo_ms, std::nextafter(edge, HUGE_VAL));  // time > edge
      int32_t pb, pe;
      Evaluate(ctx, rest, pending_.data(), &pb, &pe);
      if (const int32_t k = FirstSet(pending_.data(), pb, pe); k >= 0) {
        due = std::min(due, DueFloor(events_[k].time_ms + f.older_ms));
      }
    }
  }
  return due;
}

int32_t UserData::Scan(const ScanContext& ctx, FfiUser* u, const FfiFilter& f, int32_t flags) {
  user_now_ms_ = u->now_ms;
  const uint64_t h = HashFilter(f);
  const uint64_t* bits = nullptr;
  int32_t wb = 0, we = 0, count = 0;
  int64_t due = kNoDue;
  for (size_t i = 0; i < memo_hashes_.size(); ++i) {
    if (memo_hashes_[i] != h) continue;
    const MemoEntry& m = memo_[i];
    if (std::memcmp(&m.filter, &f, sizeof(FfiFilter)) == 0) {
      ++memo_hits_;
      bits = memo_bits_.data() + m.bits_off;
      wb = m.wb;
      we = m.we;
      count = m.count;
      due = m.due_ms;
      break;
    }
  }
  if (bits == nullptr) {
    ++filters_evaluated_;
    Evaluate(ctx, f, result_.data(), &wb, &we);
    for (int32_t w = wb; w < we; ++w) count += std::popcount(result_[w]);
    bits = result_.data();
    // Once per distinct filter per user, not per call: memo hits reuse it.
    // Filters without a moving time edge pay one branch.
    if (f.within_ms > 0 || f.older_ms > 0) due = Due(ctx, f, bits, wb, we);
    if (memo_.size() < kMaxMemoEntries) {
      size_t off = memo_bits_.size();
      memo_bits_.insert(memo_bits_.end(), result_.begin(), result_.end());
      memo_.push_back(MemoEntry{h, f, off, count, wb, we, due});
      memo_hashes_.push_back(h);
      bits = memo_bits_.data() + off;
    }
  }
  call_due_ms_ = std::min(call_due_ms_, due);
  if (flags & kScanUnion) {
    for (int32_t w = wb; w < we; ++w) union_[w] |= bits[w];
  }
  const bool reverse = flags & kScanReverse, stop = flags & kScanStop,
             collect = flags & kScanCollect, record = (flags & kScanRecord) && u->explain;
  if (!stop && !collect && !record) return count;
  if (count == 0) return 0;
  int32_t out = 0;
  auto emit = [&](int32_t k) {
    if (collect && out < u->scratch_cap) u->scratch[out] = k;
    ++out;
    if (record && u->matched_n < u->matched_cap) u->matched[u->matched_n++] = events_[k].index;
  };
  if (!reverse) {
    for (int32_t w = wb; w < we; ++w) {
      for (uint64_t x = bits[w]; x != 0; x &= x - 1) {
        emit(w * 64 + std::countr_zero(x));
        if (stop) return out;
      }
    }
  } else {
    for (int32_t w = we - 1; w >= wb; --w) {
      for (uint64_t x = bits[w]; x != 0;) {
        int b = 63 - std::countl_zero(x);
        x &= ~(uint64_t{1} << b);
        emit(w * 64 + b);
        if (stop) return out;
      }
    }
  }
  return out;
}

const FfiEventRaw* UserData::Raw(int32_t k) {
  const EventView& e = input_[events_[k].index];
  raw_[k] = FfiEventRaw{Text(e.url),          Text(e.referrer), Text(e.user_agent),
                        Text(e.search_query), Text(e.source),   Text(e.event_id)};
  return &raw_[k];
}

int32_t UserData::Distinct(int32_t field) {
  int32_t count = 0;
  auto each = [&](auto&& fn) {
    for (size_t w = 0; w < words_; ++w) {
      for (uint64_t x = union_[w]; x != 0; x &= x - 1) {
        fn(static_cast<int32_t>(w * 64) + std::countr_zero(x));
      }
    }
  };
  switch (field) {
    case kDistinctDay: {
      // Events are in time order, so equal days are adjacent.
      double last = 0;
      each([&](int32_t k) {
        double day = std::floor(events_[k].time_ms / 86400000.0);
        if (count == 0 || day != last) ++count;
        last = day;
      });
      break;
    }
    case kDistinctHost: {
      BuildHosts();
      host_ok_.assign(host_event_.size(), 0);
      each([&](int32_t k) {
        int32_t id = host_id_[k];
        if (id >= 0 && !host_ok_[id]) {
          host_ok_[id] = 1;
          ++count;
        }
      });
      break;
    }
    case kDistinctQuery:
    case kDistinctUrl: {
      values_.clear();
      each([&](int32_t k) {
        const FfiEvent& e = events_[k];
        std::string_view v = field == kDistinctQuery ? std::string_view(e.query, e.query_len)
                                                     : std::string_view(e.url, e.url_len);
        if (!v.empty()) values_.push_back(v);
      });
      std::sort(values_.begin(), values_.end());
      count = static_cast<int32_t>(std::unique(values_.begin(), values_.end()) - values_.begin());
      break;
    }
    default:
      break;
  }
  std::fill(union_.begin(), union_.end(), 0);
  return count;
}

extern "C" const FfiEventRaw* seg_event_raw(FfiUser* u, int32_t k) {
  return static_cast<UserData*>(u->host_data)->Raw(k);
}

extern "C" int32_t seg_distinct(FfiUser* u, int32_t field) {
  return static_cast<UserData*>(u->host_data)->Distinct(field);
}

extern "C" int32_t seg_needles(void* ctx, const char** ptrs, const int32_t* lens, int32_t n) {
  return static_cast<ScanContext*>(ctx)->Add(ptrs, lens, n);
}

extern "C" int32_t seg_scan(void* ctx, FfiUser* u, const FfiFilter* f, int32_t flags) {
  return static_cast<UserData*>(u->host_data)
      ->Scan(*static_cast<const ScanContext*>(ctx), u, *f, flags);
}

}  // namespace seg::segmenter::internal
