// seg-load (the `segctl load` library and the standalone binary) against the
// librdkafka mock cluster: valid records reach `events`, rejected ones are
// counted per reason, copied to the rejects file and not produced.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "common/clock.h"
#include "common/kafka.h"
#include "proto/events.pb.h"
#include "tests/harness/consume.h"
#include "tests/harness/kafka_cluster.h"
#include "tests/harness/process.h"
#include "tests/harness/status_matchers.h"
#include "tools/segctl/load.h"

namespace seg::tools {
namespace {

using namespace std::chrono_literals;
using seg::testing::MockKafkaCluster;
using seg::testing::TempDir;

class SegLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = MockKafkaCluster::Start(1);
    SEG_ASSERT_OK(cluster);
    cluster_ = std::move(cluster).value();
    SEG_ASSERT_OK(cluster_->CreateTopic("events", 4, 1));
  }

  std::string JsonEvent(const std::string& user, int64_t time_ms, const std::string& type) {
    return R"({"userId":")" + user + R"(","eventTimeMs":")" + std::to_string(time_ms) +
           R"(","type":")" + type + R"(","url":"https://partner.example/x"})";
  }

  std::multiset<std::string> ReadEvents(size_t want) {
    kafka::KafkaOptions options = cluster_->ClientOptions("r");
    // Short session timeout for the mock; roundrobin avoids librdkafka#4312.
    options.properties["session.timeout.ms"] = "6000";
    options.properties["partition.assignment.strategy"] = "roundrobin";
    auto consumer = kafka::Consumer::Create(options, "r" + std::to_string(++n_));
    SEG_EXPECT_OK(consumer);
    std::multiset<std::string> users;
    if (!consumer.ok()) return users;
    SEG_EXPECT_OK((*consumer)->Subscribe({"events"}));
    EXPECT_TRUE(seg::testing::ConsumeUntil(
        **consumer, [&] { return users.size() >= want; }, 30s,
        std::to_string(want) + " events on events",
        [&](const kafka::Message& m) {
          Event e;
          EXPECT_TRUE(e.ParseFromArray(m.value().data(), int(m.value().size())));
          EXPECT_EQ(m.key(), e.user_id());
          users.insert(e.user_id());
        }));
    return users;
  }

  LoadOptions Options() {
    LoadOptions o;
    o.kafka = cluster_->ClientOptions("seg-load");
    o.progress = ProgressMode::kOff;
    return o;
  }

  TempDir dir_;
  std::unique_ptr<MockKafkaCluster> cluster_;
  int n_ = 0;
};

TEST_F(SegLoadTest, LoadsJsonLinesAndReportsRejectedLines) {
  int64_t now = Clock::Real()->NowMs();
  std::string path = dir_.path() + "/partner.jsonl";
  {
    std::ofstream f(path);
    for (int i = 0; i < 1000; ++i)
      f << JsonEvent("p-" + std::to_string(i), now - i, "PAGE_VIEW") << "\n";
    f << "\n";                                                        // blank: ignored
    f << "{\"userId\": \"x\", oops\n";                                // line 1002: undecodable
    f << JsonEvent("", now, "CLICK") << "\n";                         // missing_user_id
    f << JsonEvent("late", now - 100ll * 86400000, "CLICK") << "\n";  // time_too_old
    f << JsonEvent("nil", now, "EVENT_TYPE_UNSPECIFIED") << "\n";     // unknown_type
    f << "plain text\n";                                              // undecodable
  }
  LoadOptions options = Options();
  options.rejects_path = dir_.path() + "/rejects.jsonl";
  LoadReport report;
  Status s = LoadFile(path, options, &report, nullptr);
  SEG_ASSERT_OK(s);
  EXPECT_EQ(report.records, 1005);
  EXPECT_EQ(report.produced, 1000);
  EXPECT_EQ(report.delivered, 1000);
  EXPECT_EQ(report.rejected, 5);
  EXPECT_EQ(report.rejected_by_reason["undecodable"], 2);
  EXPECT_EQ(report.rejected_by_reason["missing_user_id"], 1);
  EXPECT_EQ(report.rejected_by_reason["time_too_old"], 1);
  EXPECT_EQ(report.rejected_by_reason["unknown_type"], 1);
  ASSERT_FALSE(report.examples.empty());
  EXPECT_EQ(report.examples[0].rfind("line 1002: undecodable", 0), 0u) << report.examples[0];

  std::ifstream rejects(options.rejects_path);
  int lines = 0;
  for (std::string l; std::getline(rejects, l);) ++lines;
  EXPECT_EQ(lines, 5);

  auto users = ReadEvents(1000);
  EXPECT_EQ(users.size(), 1000u);
  EXPECT_EQ(users.count("late"), 0u);
}

TEST_F(SegLoadTest, LoadsProtobufDelimitedFileThroughTheBinary) {
  int64_t now = Clock::Real()->NowMs();
  std::string path = dir_.path() + "/partner.pb";
  {
    std::ofstream f(path, std::ios::binary);
    auto write = [&](const std::string& bytes) {
      uint64_t v = bytes.size();
      do {
        char b = static_cast<char>((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        f.write(&b, 1);
        v >>= 7;
      } while (v);
      f << bytes;
    };
    for (int i = 0; i < 300; ++i) {
      Event e;
      e.set_user_id("pb-" + std::to_string(i));
      e.set_event_time_ms(now - 1000);
      e.set_type(PURCHASE);
      e.set_url(std::string(200, 'u'));  // 2-byte length prefixes
      write(e.SerializeAsString());
    }
    Event bad;
    bad.set_user_id("bad-ip");
    bad.set_event_time_ms(now);
    bad.set_type(CLICK);
    bad.set_ip("not-an-ip");
    write(bad.SerializeAsString());
  }
  std::string bin;
  for (const char* sub : {"/tools/seg-load", "/tests/seg-load"}) {
    if (std::filesystem::exists(seg::testing::BinaryDir() + sub)) {
      bin = seg::testing::BinaryDir() + sub;
    }
  }
  ASSERT_FALSE(bin.empty()) << "seg-load not built";
  std::string log = dir_.path() + "/seg-load.log";
  auto child =
      seg::testing::ChildProcess::Start({bin, path, "--bootstrap", cluster_->bootstrap_servers(),
                                         "--progress", "lines", "--max-rejected", "0"},
                                        log);
  SEG_ASSERT_OK(child);
  auto code = child->Wait(60s);
  SEG_ASSERT_OK(code);
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(*code, 3) << text;  // one record rejected > --max-rejected 0
  EXPECT_NE(text.find("301 records read, 300 produced, 300 delivered, 1 rejected"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("bad_ip"), std::string::npos) << text;
  EXPECT_NE(text.find("record 301: bad_ip"), std::string::npos) << text;
  EXPECT_EQ(ReadEvents(300).size(), 300u);
}

TEST_F(SegLoadTest, TruncatedDelimitedFileIsAnError) {
  std::string path = dir_.path() + "/broken.pb";
  {
    std::ofstream f(path, std::ios::binary);
    f << '\x20' << "short";  // announces 32 bytes, has 5
  }
  LoadReport report;
  Status s = LoadFile(path, Options(), &report, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s;
}

}  // namespace
}  // namespace seg::tools
