#include "common/event_codec.h"

#include <arpa/inet.h>
#include <google/protobuf/descriptor.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <vector>

#include "common/hash.h"
#include "proto/events.pb.h"

namespace seg {
namespace {

void AppendField(std::string* buf, std::string_view field) {
  // Length-prefix each field so ("ab","c") and ("a","bc") digest differently.
  uint32_t n = static_cast<uint32_t>(field.size());
  buf->append(reinterpret_cast<const char*>(&n), sizeof(n));
  buf->append(field);
}

// Minimal protobuf wire-format reader over a byte range.
class WireReader {
 public:
  explicit WireReader(std::string_view data)
      : p_(reinterpret_cast<const uint8_t*>(data.data())), end_(p_ + data.size()) {}
  bool done() const { return p_ >= end_; }

  bool Varint(uint64_t* v) {
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) return false;
      uint8_t b = *p_++;
      result |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) {
        *v = result;
        return true;
      }
    }
    return false;
  }
  bool Bytes(std::string_view* out) {
    uint64_t len;
    if (!Varint(&len) || len > uint64_t(end_ - p_)) return false;
    *out = std::string_view(reinterpret_cast<const char*>(p_), len);
    p_ += len;
    return true;
  }
  bool Fixed32(uint32_t* v) {
    if (end_ - p_ < 4) return false;
    *v = uint32_t(p_[0]) | uint32_t(p_[1]) << 8 | uint32_t(p_[2]) << 16 | uint32_t(p_[3]) << 24;
    p_ += 4;
    return true;
  }
  // Steps over one field of `field` number whose tag was just read. Groups
  // (wire types 3/4, from proto2 writers) are skipped as libprotobuf skips
  // unknown ones: up to the matching end tag, nested at most 100 deep.
  bool Skip(uint32_t wire_type, uint64_t field, int depth = 0) {
    uint64_t v = 0;
    std::string_view s;
    switch (wire_type) {
      case 3:
        if (depth >= 100) return false;
        while (true) {
          uint64_t tag;
          if (!Varint(&tag)) return false;
          if ((tag & 7) == 4) return (tag >> 3) == field;
          if (!Skip(tag & 7, tag >> 3, depth + 1)) return false;
        }
      case 0:
        return Varint(&v);
      case 1:
        if (end_ - p_ < 8) return false;
        p_ += 8;
        return true;
      case 2:
        return Bytes(&s);
      case 5:
        if (end_ - p_ < 4) return false;
        p_ += 4;
        return true;
      default:
        return false;
    }
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

}  // namespace

uint64_t EventDigest(const Event& event) {
  if (!event.event_id().empty()) return MurmurHash64A(event.event_id(), kEventDigestSeed);
  std::string buf;
  buf.reserve(256);
  buf.push_back(static_cast<char>(event.type()));
  AppendField(&buf, event.url());
  AppendField(&buf, event.referrer());
  AppendField(&buf, event.ip());
  AppendField(&buf, event.user_agent());
  AppendField(&buf, event.search_query());
  AppendField(&buf, event.source());
  std::vector<std::pair<std::string_view, std::string_view>> attrs(event.attributes().begin(),
                                                                   event.attributes().end());
  std::sort(attrs.begin(), attrs.end());
  for (const auto& [k, v] : attrs) {
    AppendField(&buf, k);
    AppendField(&buf, v);
  }
  return MurmurHash64A(buf, kEventDigestSeed);
}

void EncodeEventQualifier(int64_t time_ms, uint64_t digest, int32_t type, std::string* out) {
  char q[kEventQualifierSize];
  uint64_t t = static_cast<uint64_t>(time_ms);
  for (int i = 0; i < 8; ++i) q[i] = static_cast<char>(t >> (56 - 8 * i));
  for (int i = 0; i < 8; ++i) q[8 + i] = static_cast<char>(digest >> (56 - 8 * i));
  q[16] = static_cast<char>(type);
  out->append(q, sizeof(q));
}

Status DecodeEventQualifier(std::string_view qualifier, int64_t* time_ms, uint64_t* digest,
                            int32_t* type) {
  if (qualifier.size() != kEventQualifierSize) {
    return InvalidArgumentError("event qualifier must be 17 bytes, got " +
                                std::to_string(qualifier.size()));
  }
  const auto* q = reinterpret_cast<const uint8_t*>(qualifier.data());
  uint64_t t = 0, d = 0;
  for (int i = 0; i < 8; ++i) t = (t << 8) | q[i];
  for (int i = 8; i < 16; ++i) d = (d << 8) | q[i];
  *time_ms = static_cast<int64_t>(t);
  *digest = d;
  *type = q[16];
  return Status::OK();
}

bool ParseIp(std::string_view text, uint32_t* ipv4, std::string* ipv6) {
  char buf[64];
  if (text.empty() || text.size() >= sizeof(buf)) return false;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  in_addr a4;
  if (inet_pton(AF_INET, buf, &a4) == 1) {
    *ipv4 = ntohl(a4.s_addr);
    ipv6->clear();
    return true;
  }
  in6_addr a6;
  if (inet_pton(AF_INET6, buf, &a6) == 1) {
    *ipv4 = 0;
    ipv6->assign(reinterpret_cast<const char*>(a6.s6_addr), 16);
    return true;
  }
  return false;
}

Status EncodeEventValue(const Event& event, std::string* out) {
  StoredEvent stored;
  stored.set_type(event.type());
  stored.set_url(event.url());
  stored.set_referrer(event.referrer());
  if (!event.ip().empty()) {
    uint32_t v4 = 0;
    std::string v6;
    if (!ParseIp(event.ip(), &v4, &v6)) {
      return InvalidArgumentError("ip '" + event.ip() + "' is neither IPv4 nor IPv6");
    }
    stored.set_ipv4(v4);
    if (!v6.empty()) stored.set_ipv6(v6);
  }
  stored.set_user_agent(event.user_agent());
  stored.set_search_query(event.search_query());
  for (const auto& [k, v] : event.attributes()) (*stored.mutable_attributes())[k] = v;
  stored.set_event_id(event.event_id());
  stored.set_source(event.source());
  out->clear();
  if (!stored.SerializeToString(out)) return InternalError("StoredEvent serialization failed");
  return Status::OK();
}

Status DecodeEventCell(std::string_view qualifier, std::string_view value, EventView* view) {
  uint64_t digest;
  int32_t qualifier_type;
  SEG_RETURN_IF_ERROR(DecodeEventQualifier(qualifier, &view->time_ms, &digest, &qualifier_type));
  view->type = qualifier_type;
  view->url = view->referrer = view->user_agent = view->search_query = {};
  view->event_id = view->source = {};
  view->ipv4 = 0;
  view->attributes.clear();
  WireReader reader(value);
  while (!reader.done()) {
    uint64_t tag;
    if (!reader.Varint(&tag)) return DataLossError("truncated StoredEvent tag");
    uint32_t field = static_cast<uint32_t>(tag >> 3), wire = tag & 7;
    bool ok = true;
    uint64_t v = 0;
    std::string_view s;
    if (wire == 2 && field != 8) {
      ok = reader.Bytes(&s);
      switch (field) {
        case 2:
          view->url = s;
          break;
        case 3:
          view->referrer = s;
          break;
        case 6:
          view->user_agent = s;
          break;
        case 7:
          view->search_query = s;
          break;
        case 9:
          view->event_id = s;
          break;
        case 10:
          view->source = s;
          break;
        default:
          break;  // ipv6 and unknown length-delimited fields
      }
    } else if (field == 8 && wire == 2) {
      ok = reader.Bytes(&s);
      WireReader entry(s);
      std::string_view key, val;
      while (ok && !entry.done()) {
        uint64_t etag;
        ok = entry.Varint(&etag);
        if (!ok) break;
        if ((etag >> 3) == 1 && (etag & 7) == 2) {
          ok = entry.Bytes(&key);
        } else if ((etag >> 3) == 2 && (etag & 7) == 2) {
          ok = entry.Bytes(&val);
        } else {
          ok = entry.Skip(etag & 7, etag >> 3);
        }
      }
      if (ok) view->attributes.emplace_back(key, val);
    } else if (field == 1 && wire == 0) {
      ok = reader.Varint(&v);
      view->type = static_cast<int32_t>(v);
    } else if (field == 4 && wire == 5) {
      uint32_t ip = 0;
      ok = reader.Fixed32(&ip);
      view->ipv4 = ip;
    } else {
      ok = reader.Skip(wire, tag >> 3);
    }
    if (!ok) return DataLossError("malformed StoredEvent field " + std::to_string(field));
  }
  return Status::OK();
}

namespace {

struct EventTypeTable {
  std::vector<std::string> name_of;                     // by code; "" where the proto has none
  std::vector<std::pair<std::string, int32_t>> events;  // code > 0, by code
};

const EventTypeTable& EventTypeTableFromProto() {
  static const EventTypeTable table = [] {
    // The proto style guide prefixes the zero value with the enum's name.
    constexpr std::string_view kEnumPrefix = "EVENT_TYPE_";
    EventTypeTable t;
    const google::protobuf::EnumDescriptor* d = EventType_descriptor();
    for (int i = 0; i < d->value_count(); ++i) {
      const google::protobuf::EnumValueDescriptor* v = d->value(i);
      if (v->number() < 0) continue;
      std::string_view proto_name = v->name();
      if (proto_name.starts_with(kEnumPrefix)) proto_name.remove_prefix(kEnumPrefix.size());
      std::string name(proto_name);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const auto code = static_cast<size_t>(v->number());
      if (t.name_of.size() <= code) t.name_of.resize(code + 1);
      t.name_of[code] = name;
      if (code > 0) t.events.emplace_back(std::move(name), v->number());
    }
    std::sort(t.events.begin(), t.events.end(),
              [](const auto& a, const auto& b) { return a.second < b.second; });
    return t;
  }();
  return table;
}

}  // namespace

std::string_view EventTypeName(int32_t type) {
  const EventTypeTable& t = EventTypeTableFromProto();
  if (type < 0 || static_cast<size_t>(type) >= t.name_of.size()) return {};
  return t.name_of[static_cast<size_t>(type)];
}

int32_t EventTypeFromName(std::string_view name) {
  for (const auto& [known, code] : EventTypeTableFromProto().events) {
    if (known == name) return code;
  }
  return -1;
}

const std::vector<std::pair<std::string, int32_t>>& EventTypes() {
  return EventTypeTableFromProto().events;
}

}  // namespace seg
