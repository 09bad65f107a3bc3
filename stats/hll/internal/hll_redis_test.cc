// Property test against a real redis-server: for thousands of random
// sketches (sparse and dense, 0 to 100k elements) our decode + estimate must
// equal PFCOUNT exactly, our client-side sketch of the same elements must
// equal Redis's registers, multi-key PFCOUNT must equal EstimateUnion, PFMERGE
// must equal Merge, and Redis must accept what ToRedisDenseString writes.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/redis.h"
#include "stats/hll/hll.h"
#include "stats/hll/internal/hll_internal.h"
#include "stats/hll/internal/hll_sim.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/status_matchers.h"

namespace seg::stats {
namespace {

class HllRedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto redis = seg::testing::LocalRedis::Start();
    SEG_ASSERT_OK(redis);
    redis_ = std::move(*redis);
    RedisOptions opts;
    opts.port = redis_->port();
    opts.command_timeout_ms = 20000;
    auto conn = RedisConnection::Connect(opts);
    SEG_ASSERT_OK(conn);
    conn_ = std::move(*conn);
  }

  // Runs a pipeline and fails the test on a transport or server error.
  std::vector<RedisReply> Run(const std::vector<RedisArgv>& commands) {
    auto replies = conn_->Pipeline(commands);
    SEG_EXPECT_OK(replies);
    if (!replies.ok()) return {};
    for (const RedisReply& r : *replies) EXPECT_FALSE(r.is_error()) << r.str;
    return std::move(*replies);
  }

  std::unique_ptr<seg::testing::LocalRedis> redis_;
  std::unique_ptr<RedisConnection> conn_;
};

// Sizes: 0, 1, small (~100), around the sparse->dense switch (~1,500-3,000
// with hll-sparse-max-bytes 3000), larger dense ones and a few of 100k.
size_t SizeFor(int i, sim::SplitMix64& rng) {
  if (i < 20) return static_cast<size_t>(i % 3);  // 0, 1, 2
  switch (i % 10) {
    case 0:
    case 1:
    case 2:
      return rng.Next() % 200;
    case 3:
      return 90 + rng.Next() % 20;
    case 4:
    case 5:
    case 6:
      return 1000 + rng.Next() % 3000;
    case 7:
    case 8:
      return 4000 + rng.Next() % 6000;
    default:
      return i % 200 == 9 ? 100000 : 2000 + rng.Next() % 8000;
  }
}

TEST_F(HllRedisTest, DecodeAndEstimateEqualPfcountAndClientHashingEqualsRedis) {
  constexpr int kSketches = 2000;
  constexpr size_t kPerPfadd = 1000;
  sim::SplitMix64 rng(20260101);
  std::vector<HyperLogLog> client(kSketches);
  std::vector<RedisArgv> batch;
  size_t batch_elements = 0;
  auto flush = [&] {
    if (!batch.empty()) Run(batch);
    batch.clear();
    batch_elements = 0;
  };
  for (int i = 0; i < kSketches; ++i) {
    const std::string key = "hll:t:" + std::to_string(i);
    const size_t n = SizeFor(i, rng);
    RedisArgv cmd = {"PFADD", key};
    for (size_t e = 0; e < n; ++e) {
      // Binary elements of 1..16 bytes exercise every MurmurHash tail length.
      const uint64_t a = rng.Next(), b = rng.Next();
      std::string element(1 + a % 16, '\0');
      for (size_t j = 0; j < element.size(); ++j) {
        element[j] = static_cast<char>((j < 8 ? b >> (8 * j) : a >> (8 * (j - 8))) & 0xff);
      }
      client[i].Add(element);
      cmd.push_back(std::move(element));
      if (cmd.size() - 2 == kPerPfadd) {
        batch.push_back(std::move(cmd));
        batch_elements += kPerPfadd;
        cmd = {"PFADD", key};
        if (batch_elements >= 50000) flush();
      }
    }
    if (cmd.size() > 2 || n == 0) {
      batch_elements += cmd.size() - 2;
      batch.push_back(std::move(cmd));  // PFADD key (no elements) creates an empty HLL
    }
    if (batch.size() >= 200) flush();
  }
  flush();

  int sparse = 0, dense = 0, mismatches = 0;
  for (int start = 0; start < kSketches; start += 200) {
    std::vector<RedisArgv> reads;
    const int end = std::min(kSketches, start + 200);
    for (int i = start; i < end; ++i) {
      const std::string key = "hll:t:" + std::to_string(i);
      reads.push_back({"GET", key});
      reads.push_back({"PFCOUNT", key});
    }
    const std::vector<RedisReply> replies = Run(reads);
    ASSERT_EQ(replies.size(), reads.size());
    for (int i = start; i < end; ++i) {
      const RedisReply& raw = replies[2 * (i - start)];
      const RedisReply& count = replies[2 * (i - start) + 1];
      ASSERT_TRUE(raw.is_string()) << raw.DebugString();
      ASSERT_TRUE(count.is_integer()) << count.DebugString();
      auto decoded = HyperLogLog::FromRedisString(raw.str);
      SEG_ASSERT_OK(decoded) << "sketch " << i;
      (raw.str[4] == 1 ? sparse : dense)++;
      if (decoded->Estimate() != static_cast<uint64_t>(count.integer) || !(*decoded == client[i])) {
        ++mismatches;
        ADD_FAILURE() << "sketch " << i << ": ours " << decoded->Estimate() << " PFCOUNT "
                      << count.integer << " registers equal: " << (*decoded == client[i]);
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_GT(sparse, 500);
  EXPECT_GT(dense, 500);
  std::printf("compared %d sketches with PFCOUNT: %d sparse, %d dense, %d mismatches\n", kSketches,
              sparse, dense, mismatches);

  // Multi-key PFCOUNT (Redis merges into raw registers) == EstimateUnion; PFMERGE == Merge.
  std::vector<RedisArgv> unions;
  std::vector<std::vector<int>> groups;
  for (int g = 0; g < 300; ++g) {
    std::vector<int> members;
    RedisArgv cmd = {"PFCOUNT"};
    const int k = 2 + static_cast<int>(rng.Next() % 4);
    for (int j = 0; j < k; ++j) {
      members.push_back(static_cast<int>(rng.Next() % kSketches));
      cmd.push_back("hll:t:" + std::to_string(members.back()));
    }
    RedisArgv merge = {"PFMERGE", "hll:m:" + std::to_string(g)};
    merge.insert(merge.end(), cmd.begin() + 1, cmd.end());
    unions.push_back(std::move(cmd));
    unions.push_back(std::move(merge));
    unions.push_back({"GET", "hll:m:" + std::to_string(g)});
    groups.push_back(std::move(members));
  }
  const std::vector<RedisReply> ur = Run(unions);
  ASSERT_EQ(ur.size(), unions.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    std::vector<const HyperLogLog*> parts;
    HyperLogLog merged;
    for (int m : groups[g]) {
      parts.push_back(&client[m]);
      merged.Merge(client[m]);
    }
    EXPECT_EQ(EstimateUnion(parts).value, static_cast<double>(ur[3 * g].integer)) << "group " << g;
    auto redis_merged = HyperLogLog::FromRedisString(ur[3 * g + 2].str);
    SEG_ASSERT_OK(redis_merged);
    EXPECT_EQ(*redis_merged, merged) << "group " << g;
  }

  // What we write, Redis reads: dense and sparse strings SET back, then PFCOUNT and PFADD.
  std::vector<RedisArgv> writes;
  std::vector<int> written;
  for (int i = 0; i < kSketches; i += 37) {
    const std::string sparse_form = internal::EncodeSparse(client[i].registers());
    writes.push_back({"SET", "hll:w:d:" + std::to_string(i), client[i].ToRedisDenseString()});
    writes.push_back({"PFCOUNT", "hll:w:d:" + std::to_string(i)});
    writes.push_back({"SET", "hll:w:s:" + std::to_string(i),
                      sparse_form.empty() ? client[i].ToRedisDenseString() : sparse_form});
    writes.push_back({"PFCOUNT", "hll:w:s:" + std::to_string(i)});
    writes.push_back({"PFADD", "hll:w:d:" + std::to_string(i), "one-more"});
    written.push_back(i);
  }
  const std::vector<RedisReply> wr = Run(writes);
  ASSERT_EQ(wr.size(), writes.size());
  for (size_t j = 0; j < written.size(); ++j) {
    const uint64_t ours = client[written[j]].Estimate();
    EXPECT_EQ(wr[5 * j + 1].integer, static_cast<int64_t>(ours)) << "dense " << written[j];
    EXPECT_EQ(wr[5 * j + 3].integer, static_cast<int64_t>(ours)) << "sparse " << written[j];
  }
}

}  // namespace
}  // namespace seg::stats
