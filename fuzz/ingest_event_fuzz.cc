// The ingest decoder: bytes as consumed from `events` (protobuf seg.Event,
// or JSON when the first non-blank byte is '{') -> DecodeAndValidate. An
// event it accepts must encode to a cell (EncodeEventCell) that the
// segmenter's decoder (DecodeEventCell) reads back field for field.
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include "common/event_codec.h"
#include "fuzz/fuzz_support.h"
#include "ingest/ingest.h"
#include "proto/events.pb.h"

namespace {

using seg::fuzz::Require;

// Fixed "now": replaying a file decides the same way every time.
constexpr int64_t kNowMs = 1'750'000'000'000;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  seg::ingest::ValidationOptions options;
  // Exercise both settings of the JSON unknown-field switch (last byte).
  options.json_ignore_unknown_fields = size > 0 && (data[size - 1] & 1);
  seg::Event event;
  auto rejection = seg::ingest::DecodeAndValidate(bytes, options, kNowMs, &event);
  if (rejection) {
    Require(!rejection->reason.empty(), "rejection without a reason");
    return 0;
  }
  seg::store::Cell cell;
  seg::Status s = seg::ingest::EncodeEventCell(event, "e", &cell);
  Require(s.ok(), "a validated event does not encode");
  Require(cell.qualifier.size() == seg::kEventQualifierSize, "qualifier size");
  Require(cell.timestamp == event.event_time_ms(), "cell timestamp");

  seg::EventView view;
  s = seg::DecodeEventCell(cell.qualifier, cell.value, &view);
  Require(s.ok(), "the encoded cell does not decode");
  Require(view.time_ms == event.event_time_ms(), "time");
  Require(view.type == event.type(), "type");
  Require(view.url == event.url(), "url");
  Require(view.referrer == event.referrer(), "referrer");
  Require(view.user_agent == event.user_agent(), "user_agent");
  Require(view.search_query == event.search_query(), "search_query");
  Require(view.event_id == event.event_id(), "event_id");
  Require(view.source == event.source(), "source");
  std::map<std::string_view, std::string_view> attributes(view.attributes.begin(),
                                                          view.attributes.end());
  Require(attributes.size() == static_cast<size_t>(event.attributes_size()), "attribute count");
  for (const auto& [k, v] : event.attributes()) {
    auto it = attributes.find(k);
    Require(it != attributes.end() && it->second == v, "attribute");
  }
  uint32_t ipv4 = 0;
  std::string ipv6;
  if (!event.ip().empty()) Require(seg::ParseIp(event.ip(), &ipv4, &ipv6), "ip");
  Require(view.ipv4 == ipv4, "ipv4");
  return 0;
}
