#include "common/cli.h"
#include "tests/harness/status_matchers.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace seg::cli {
namespace {

TEST(CliTest, SplitHostPortAcceptsHostsAndRejectsBadPorts) {
  std::string host;
  int32_t port = 0;
  SEG_ASSERT_OK(SplitHostPort("127.0.0.1:9090", "--store", &host, &port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 9090);
  SEG_ASSERT_OK(SplitHostPort("[::1]:6379", "--redis", &host, &port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 6379);
  for (const char* bad : {"localhost", "localhost:", ":80", "h:0", "h:65536", "h:12x", "h:-1"}) {
    Status s = SplitHostPort(bad, "--store", &host, &port);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("--store expects HOST:PORT"), std::string::npos) << s;
  }
}

TEST(CliTest, WritePortFileWritesThePortAndLeavesNoTempFile) {
  std::string path = ::testing::TempDir() + "/cli_test_port";
  SEG_ASSERT_OK(WritePortFile(path, 4321));
  std::ifstream in(path);
  int port = 0;
  in >> port;
  EXPECT_EQ(port, 4321);
  EXPECT_FALSE(std::ifstream(path + ".tmp").good());
  std::remove(path.c_str());
  EXPECT_FALSE(WritePortFile("/nonexistent-dir/port", 1).ok());
}

TEST(CliTest, StopSignalsPollSeesARaisedSignal) {
  StopSignals signals;
  EXPECT_EQ(signals.Poll(), 0);
  StopSignals::Raise();
  EXPECT_EQ(signals.Wait(), SIGTERM);
  EXPECT_EQ(signals.Poll(), 0);
}

TEST(CliTest, ConfigCheckedMapsToTheExitCodes) {
  EXPECT_EQ(ConfigChecked("t", Status::OK()), kExitOk);
  EXPECT_EQ(ConfigChecked("t", InvalidArgumentError("x")), kExitConfig);
}

}  // namespace
}  // namespace seg::cli
