#include "common/event_codec.h"

#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "common/hash.h"
#include "proto/events.pb.h"
#include "tests/harness/status_matchers.h"

namespace seg {
namespace {

Event SampleEvent() {
  Event e;
  e.set_user_id("u1");
  e.set_event_time_ms(1700000000123);
  e.set_type(PAGE_VIEW);
  e.set_url("https://cats.example/kittens?x=1");
  e.set_referrer("https://search.example/");
  e.set_ip("10.1.2.3");
  e.set_user_agent("Mozilla/5.0");
  e.set_search_query("");
  (*e.mutable_attributes())["gender"] = "f";
  (*e.mutable_attributes())["city"] = "novosibirsk";
  e.set_source("web");
  return e;
}

TEST(EventCodecTest, QualifierSortsByTimeAndRoundTrips) {
  std::string a, b;
  EncodeEventQualifier(1000, 0xFFFFFFFFFFFFFFFFull, 1, &a);
  EncodeEventQualifier(1001, 0, 1, &b);
  ASSERT_EQ(a.size(), kEventQualifierSize);
  EXPECT_LT(a, b);  // bytewise order follows time, whatever the digest
  int64_t t;
  uint64_t d;
  int32_t type;
  SEG_ASSERT_OK(DecodeEventQualifier(a, &t, &d, &type));
  EXPECT_EQ(t, 1000);
  EXPECT_EQ(d, 0xFFFFFFFFFFFFFFFFull);
  EXPECT_EQ(type, 1);
  EXPECT_FALSE(DecodeEventQualifier("short", &t, &d, &type).ok());
}

TEST(EventCodecTest, DigestUsesIdWhenPresentElseContent) {
  Event a = SampleEvent(), b = SampleEvent();
  EXPECT_EQ(EventDigest(a), EventDigest(b));  // same content, no id: same cell
  b.set_url("https://cats.example/other");
  EXPECT_NE(EventDigest(a), EventDigest(b));
  a.set_event_id("ev-42");
  b.set_event_id("ev-42");
  EXPECT_EQ(EventDigest(a), EventDigest(b));  // same id wins over content
  EXPECT_EQ(EventDigest(a), MurmurHash64A("ev-42", kEventDigestSeed));
}

TEST(EventCodecTest, CellDecodesToViewsIntoValue) {
  Event e = SampleEvent();
  std::string qualifier, value;
  EncodeEventQualifier(e.event_time_ms(), EventDigest(e), e.type(), &qualifier);
  SEG_ASSERT_OK(EncodeEventValue(e, &value));
  EventView view;
  SEG_ASSERT_OK(DecodeEventCell(qualifier, value, &view));
  EXPECT_EQ(view.time_ms, 1700000000123);
  EXPECT_EQ(view.type, PAGE_VIEW);
  EXPECT_EQ(view.url, e.url());
  EXPECT_EQ(view.referrer, e.referrer());
  EXPECT_EQ(view.user_agent, e.user_agent());
  EXPECT_EQ(view.source, "web");
  EXPECT_EQ(view.ipv4, (10u << 24) | (1u << 16) | (2u << 8) | 3u);
  ASSERT_EQ(view.attributes.size(), 2u);
  EXPECT_GE(view.url.data(), value.data());
  EXPECT_LT(view.url.data(), value.data() + value.size());
}

TEST(EventCodecTest, BadIpAndCorruptValueAreErrors) {
  Event e = SampleEvent();
  e.set_ip("not-an-ip");
  std::string value;
  EXPECT_EQ(EncodeEventValue(e, &value).code(), StatusCode::kInvalidArgument);
  e.set_ip("2001:db8::1");
  SEG_ASSERT_OK(EncodeEventValue(e, &value));
  std::string qualifier;
  EncodeEventQualifier(1, 2, 1, &qualifier);
  EventView view;
  SEG_EXPECT_OK(DecodeEventCell(qualifier, value, &view));
  EXPECT_EQ(view.ipv4, 0u);
  EXPECT_EQ(DecodeEventCell(qualifier, "\x12\xff\xff\xff\xff\x0f", &view).code(),
            StatusCode::kDataLoss);
}

// Found by fuzz/event_cell_fuzz: libprotobuf skips an unknown group (wire
// types 3/4, which a proto2 writer may add), the hand-written reader
// rejected the cell as DataLoss.
TEST(EventCodecTest, UnknownGroupsAreSkippedAsByLibprotobuf) {
  std::string qualifier;
  EncodeEventQualifier(1, 2, 1, &qualifier);
  // url "u"; group 15 { varint 1: 5, group 16 { } }; search_query "q".
  const std::string value("\x12\x01u\x7b\x08\x05\x83\x01\x84\x01\x7c\x3a\x01q", 14);
  StoredEvent parsed;
  ASSERT_TRUE(parsed.ParseFromString(value));
  EventView view;
  SEG_ASSERT_OK(DecodeEventCell(qualifier, value, &view));
  EXPECT_EQ(view.url, parsed.url());
  EXPECT_EQ(view.search_query, "q");
  // An unterminated group, or one closed by another field's end tag, is not
  // a valid value for either.
  for (std::string bad :
       {std::string("\x12\x01u\x7b\x08\x05", 6), std::string("\x12\x01u\x7b\x84\x01", 6)}) {
    EXPECT_FALSE(parsed.ParseFromString(bad));
    EXPECT_EQ(DecodeEventCell(qualifier, bad, &view).code(), StatusCode::kDataLoss);
  }
}

// The names come from proto/events.proto's descriptor: every value, in
// code order, lower-cased, the zero value as "unspecified".
TEST(EventTypeNamesTest, ComeFromTheProtoEnum) {
  EXPECT_EQ(EventTypeName(EVENT_TYPE_UNSPECIFIED), "unspecified");
  EXPECT_EQ(EventTypeName(PAGE_VIEW), "page_view");
  EXPECT_EQ(EventTypeName(PARTNER_SIGNAL), "partner_signal");
  EXPECT_EQ(EventTypeName(FORM_SUBMIT), "form_submit");
  EXPECT_EQ(EventTypeName(EventType_MAX + 1), "");
  EXPECT_EQ(EventTypeName(-1), "");

  const google::protobuf::EnumDescriptor* d = EventType_descriptor();
  ASSERT_EQ(EventTypes().size(), static_cast<size_t>(d->value_count() - 1));  // all but 0
  int32_t previous = 0;
  for (const auto& [name, code] : EventTypes()) {
    EXPECT_GT(code, previous) << name;  // by code
    previous = code;
    std::string upper = name;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(EventType_Name(static_cast<EventType>(code)), upper);
    EXPECT_EQ(EventTypeName(code), name);
    EXPECT_EQ(EventTypeFromName(name), code);
  }
}

TEST(EventTypeNamesTest, UnknownNamesAndUnspecifiedAreNotTypes) {
  EXPECT_EQ(EventTypeFromName("search"), SEARCH);
  EXPECT_EQ(EventTypeFromName("unspecified"), -1);  // no event has it
  EXPECT_EQ(EventTypeFromName(""), -1);
  EXPECT_EQ(EventTypeFromName("PAGE_VIEW"), -1);  // scripts spell them lower-case
  EXPECT_EQ(EventTypeFromName("page-view"), -1);
}

// docs/sdk/README.md lists the names for script authors (the filter key
// `type`); it has to say what the proto says.
TEST(EventTypeNamesTest, SdkDocListsExactlyTheProtoTypes) {
  const char* source_dir = std::getenv("SEG_SOURCE_DIR");
  if (source_dir == nullptr) source_dir = SEG_SOURCE_DIR_DEFAULT;
  const std::string path = std::string(source_dir) + "/docs/sdk/README.md";
  std::ifstream in(path);
  ASSERT_TRUE(in) << "cannot read " << path;
  std::string line, row;
  while (std::getline(in, line)) {
    if (line.rfind("| `type` |", 0) == 0) row = line.substr(10);
  }
  ASSERT_FALSE(row.empty()) << path << " has no \"| `type` |\" row in its filter table";
  std::vector<std::string> documented;
  static const std::regex kName("`([a-z_0-9]+)`");
  for (std::sregex_iterator it(row.begin(), row.end(), kName), end; it != end; ++it) {
    documented.push_back((*it)[1]);
  }
  std::vector<std::string> proto;
  for (const auto& [name, code] : EventTypes()) proto.push_back(name);
  EXPECT_EQ(documented, proto) << path << ": the `type` row differs from proto/events.proto";
}

}  // namespace
}  // namespace seg
