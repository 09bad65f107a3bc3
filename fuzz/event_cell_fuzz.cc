// The segmenter's cell decoder (DecodeEventCell: a hand-written reader of
// the StoredEvent protobuf wire format) against libprotobuf on the same
// bytes. Input: 17 qualifier bytes, then the value. Whatever libprotobuf
// parses, the hand-written reader must accept with the same fields; it may
// accept more (it does not check UTF-8, nor reject field number 0).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include "common/event_codec.h"
#include "fuzz/fuzz_support.h"
#include "proto/events.pb.h"

namespace {

using seg::fuzz::Require;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  seg::EventView view;
  if (size < seg::kEventQualifierSize) {
    Require(!seg::DecodeEventCell(bytes, {}, &view).ok(), "short qualifier accepted");
    return 0;
  }
  std::string_view qualifier = bytes.substr(0, seg::kEventQualifierSize);
  std::string_view value = bytes.substr(seg::kEventQualifierSize);
  seg::Status s = seg::DecodeEventCell(qualifier, value, &view);

  // The qualifier round-trips.
  int64_t time_ms;
  uint64_t digest;
  int32_t type;
  Require(seg::DecodeEventQualifier(qualifier, &time_ms, &digest, &type).ok(), "qualifier");
  std::string again;
  seg::EncodeEventQualifier(time_ms, digest, type, &again);
  Require(again == qualifier, "qualifier round trip");

  seg::StoredEvent stored;
  if (!stored.ParseFromArray(value.data(), static_cast<int>(value.size()))) return 0;
  Require(s.ok(), "libprotobuf parses a value DecodeEventCell rejects");
  Require(view.time_ms == time_ms, "time");
  Require(view.url == stored.url(), "url");
  Require(view.referrer == stored.referrer(), "referrer");
  Require(view.user_agent == stored.user_agent(), "user_agent");
  Require(view.search_query == stored.search_query(), "search_query");
  Require(view.event_id == stored.event_id(), "event_id");
  Require(view.source == stored.source(), "source");
  Require(view.ipv4 == stored.ipv4(), "ipv4");
  // Map entries: the last one of a key wins, as in libprotobuf.
  std::map<std::string_view, std::string_view> attributes;
  for (const auto& [k, v] : view.attributes) attributes[k] = v;
  Require(attributes.size() == stored.attributes().size(), "attribute count");
  for (const auto& [k, v] : stored.attributes()) {
    auto it = attributes.find(k);
    Require(it != attributes.end() && it->second == v, "attribute");
  }
  return 0;
}
