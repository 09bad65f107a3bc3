#include "segmenter/internal/script_host_user.h"

#include <algorithm>
#include <cstring>

namespace seg::segmenter::internal {
namespace {

constexpr char kEmpty[] = "";

FfiText Text(std::string_view s) {
  return FfiText{s.empty() ? kEmpty : s.data(), int64_t(s.size())};
}

}  // namespace

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
  size_t start = 0;
  size_t scheme = url.substr(0, 16).find("://");
  if (scheme != std::string_view::npos) {
    start = scheme + 3;
  } else if (url.starts_with("//")) {
    start = 2;
  }
  size_t host_end = start;
  if (start == 0 && url.starts_with("/")) {
    host_end = 0;  // a bare path
  } else {
    host_end = url.find_first_of("/?#", start);
    if (host_end == std::string_view::npos) host_end = url.size();
  }
  size_t h = start, he = host_end;
  if (he > h) {
    std::string_view authority = url.substr(h, he - h);
    size_t at = authority.rfind('@');
    if (at != std::string_view::npos) h += at + 1;
    std::string_view rest = url.substr(h, he - h);
    size_t colon = rest.find(':');
    if (colon != std::string_view::npos) he = h + colon;
  }
  *host_off = static_cast<int32_t>(h);
  *host_len = static_cast<int32_t>(he > h ? he - h : 0);
  size_t p = host_end;
  size_t pe = p;
  if (p < url.size() && url[p] == '/') {
    pe = url.find_first_of("?#", p);
    if (pe == std::string_view::npos) pe = url.size();
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
}

}  // namespace seg::segmenter::internal
