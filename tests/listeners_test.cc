// The deployed binaries' listeners: loopback by default, one config key per
// listener moves it. seg-stats (gRPC + /metrics) and seg-ingest (/metrics)
// run as processes; nothing they would connect to needs to be up, since
// both bind before they use Kafka, Redis or the store.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "tests/harness/poll.h"
#include "tests/harness/process.h"
#include "tests/harness/status_matchers.h"

namespace seg::testing {
namespace {

using namespace std::chrono_literals;
using Addresses = std::vector<std::string>;

// Waits until something listens on `port` and returns where; else what
// went wrong, for the caller's comparison to print.
Addresses ListeningOn(int port, ChildProcess& child) {
  Addresses a;
  bool exited = false;
  ::testing::AssertionResult listening = PollUntil(
      [&] {
        a = ListeningAddresses(port);
        if (!a.empty()) return true;
        exited = !child.running();
        return exited;
      },
      20s, "a listener on port " + std::to_string(port));
  if (exited) return {"(exited)"};
  if (!listening) return {listening.message()};
  return a;
}

// The port the child wrote to `path`; -1 when it exited first or never did.
int ReadPortFile(const std::string& path, ChildProcess& child) {
  int port = -1;
  EXPECT_TRUE(PollUntil(
      [&] {
        std::ifstream in(path);
        if (in >> port) return true;
        port = -1;
        return !child.running();
      },
      20s, "the port file " + path));
  return port;
}

std::string Log(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(ListenersTest, SegStatsBindsLoopbackByDefault) {
  TempDir dir;
  const int metrics_port = PickFreePort();
  const std::string port_file = dir.path() + "/port", log = dir.path() + "/seg-stats.log";
  auto child = ChildProcess::Start({BinaryDir() + "/stats/seg-stats", "--port", "0", "--port-file",
                                    port_file, "--metrics-port", std::to_string(metrics_port)},
                                   log);
  SEG_ASSERT_OK(child);
  int port = ReadPortFile(port_file, *child);
  ASSERT_GT(port, 0) << Log(log);
  EXPECT_EQ(ListeningOn(port, *child), Addresses{"127.0.0.1"}) << Log(log);
  EXPECT_EQ(ListeningOn(metrics_port, *child), Addresses{"127.0.0.1"}) << Log(log);
  child->Signal(SIGTERM);
  SEG_EXPECT_OK(child->Wait(10s));
}

TEST(ListenersTest, SegStatsMetricsAddressKey) {
  TempDir dir;
  const int metrics_port = PickFreePort();
  const std::string log = dir.path() + "/seg-stats.log";
  auto child = ChildProcess::Start({BinaryDir() + "/stats/seg-stats", "--port", "0", "--set",
                                    "stats.server.metrics_host=0.0.0.0", "--set",
                                    "stats.server.metrics_port=" + std::to_string(metrics_port)},
                                   log);
  SEG_ASSERT_OK(child);
  EXPECT_EQ(ListeningOn(metrics_port, *child), Addresses{"0.0.0.0"}) << Log(log);
  child->Signal(SIGTERM);
  SEG_EXPECT_OK(child->Wait(10s));
}

// seg-ingest's /metrics bound 0.0.0.0 by default before.
TEST(ListenersTest, SegIngestMetricsBindLoopbackByDefault) {
  TempDir dir;
  for (bool wide : {false, true}) {
    const int metrics_port = PickFreePort();
    const std::string log = dir.path() + "/seg-ingest" + std::to_string(wide) + ".log";
    std::vector<std::string> argv = {BinaryDir() + "/ingest/seg-ingest",
                                     "--set",
                                     "kafka.bootstrap_servers=127.0.0.1:1",
                                     "--set",
                                     "store.thrift.port=1",
                                     "--metrics-port",
                                     std::to_string(metrics_port)};
    if (wide) argv.insert(argv.end(), {"--set", "ingest.metrics_host=0.0.0.0"});
    auto child = ChildProcess::Start(argv, log);
    SEG_ASSERT_OK(child);
    EXPECT_EQ(ListeningOn(metrics_port, *child), Addresses{wide ? "0.0.0.0" : "127.0.0.1"})
        << Log(log);
    child->Signal(SIGTERM);
    SEG_EXPECT_OK(child->Wait(15s));
  }
}

}  // namespace
}  // namespace seg::testing
