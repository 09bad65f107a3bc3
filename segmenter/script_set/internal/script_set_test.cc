// ScriptSet against the embedded store (a real RocksDB directory).
#include "segmenter/script_set/script_set.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "segmenter/script_host/script_host.h"
#include "segmenter/script_set/internal/backfill.h"
#include "store/store.h"
#include "tests/harness/process.h"
#include "tests/harness/status_matchers.h"
#include "tests/served_store.h"

namespace seg::segmenter {
namespace {
namespace fs = std::filesystem;

std::string AlwaysScript(const std::string& name, const std::string& segment) {
  return "return segment_script { name = '" + name + "', version = '1', segments = {'" + segment +
         "'}, evaluate = function(user) return {'" + segment + "'} end }\n";
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

std::string HostVersion(const std::string& dir) {
  ScriptHostOptions o;
  o.scripts_dir = dir;
  o.reload_check_interval_ms = 0;
  auto host = ScriptHost::Create(o);
  SEG_EXPECT_OK(host);
  return host.ok() ? (*host)->script_set_version() : "";
}

// Forwards to a real store; can run a hook right before the first
// CheckAndMutate, to interleave a competing write deterministically.
class HookedStore : public store::Store {
 public:
  explicit HookedStore(store::Store* inner) : inner_(inner) {}
  std::function<void()> before_cas;

  Status Put(std::string_view t, const std::vector<store::RowPut>& rows) override {
    return inner_->Put(t, rows);
  }
  StatusOr<store::RowResult> Get(std::string_view t, const store::GetRequest& g) override {
    return inner_->Get(t, g);
  }
  Status MultiGet(std::string_view t, const std::vector<store::GetRequest>& g,
                  std::vector<store::RowResult>* r) override {
    return inner_->MultiGet(t, g, r);
  }
  StatusOr<bool> Exists(std::string_view t, const store::GetRequest& g) override {
    return inner_->Exists(t, g);
  }
  Status Delete(std::string_view t, const std::vector<store::RowDelete>& rows) override {
    return inner_->Delete(t, rows);
  }
  StatusOr<bool> CheckAndMutate(std::string_view t, const store::Condition& c,
                                const store::RowMutations& m) override {
    if (before_cas) {
      auto hook = std::move(before_cas);
      before_cas = nullptr;
      hook();
    }
    return inner_->CheckAndMutate(t, c, m);
  }
  StatusOr<std::unique_ptr<store::Scanner>> OpenScanner(std::string_view t,
                                                        const store::ScanRequest& s) override {
    return inner_->OpenScanner(t, s);
  }

 private:
  store::Store* inner_;
};

// Parameter: true = through the Thrift2 client to seg-store's server (the
// production path), false = the embedded engine.
class ScriptSetTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      auto served = testing::ServeStore(dir_.path() + "/store");
      SEG_ASSERT_OK(served);
      server_ = std::move(served->server);
      store_ = std::move(served->client);
    } else {
      store::StoreOptions o;
      o.embedded.data_dir = dir_.path() + "/store";
      auto s = store::OpenStore(o);
      SEG_ASSERT_OK(s);
      store_ = std::move(*s);
    }
  }

  // A scripts dir named `name` with the given files.
  std::string MakeDir(const std::string& name,
                      const std::vector<std::pair<std::string, std::string>>& files) {
    std::string d = dir_.path() + "/" + name;
    fs::create_directories(d);
    for (const auto& [f, text] : files) WriteFile(d + "/" + f, text);
    return d;
  }

  testing::TempDir dir_;
  std::unique_ptr<store::StoreServer> server_;
  std::unique_ptr<store::Store> store_;
};

TEST_P(ScriptSetTest, PushFetchMaterializeRoundTrip) {
  std::string a = MakeDir("a", {{"cats.lua", AlwaysScript("cats", "cat")},
                                {"dogs.lua", AlwaysScript("dogs", "dog")},
                                {"README.md", "not a script"}});
  ScriptSet set(store_.get());
  auto empty = set.FetchVersion();
  SEG_ASSERT_OK(empty);
  EXPECT_EQ(*empty, "");

  auto pushed = set.Push(a);
  SEG_ASSERT_OK(pushed);
  EXPECT_TRUE(pushed->changed);
  // The stored version is the one the host computes, so results carry it.
  EXPECT_EQ(pushed->version, HostVersion(a));

  auto again = set.Push(a);
  SEG_ASSERT_OK(again);
  EXPECT_FALSE(again->changed);

  auto fetched = set.Fetch();
  SEG_ASSERT_OK(fetched);
  EXPECT_EQ(fetched->version, pushed->version);
  EXPECT_GT(fetched->pushed_at_ms, 0);
  ASSERT_EQ(fetched->files.size(), 2u);
  EXPECT_EQ(fetched->files["cats.lua"], AlwaysScript("cats", "cat"));

  std::string cache = dir_.path() + "/cache";
  auto path = ScriptSet::Materialize(*fetched, cache);
  SEG_ASSERT_OK(path);
  EXPECT_EQ(*path, cache + "/" + pushed->version);
  EXPECT_EQ(fs::read_symlink(cache + "/current").string(), pushed->version);
  EXPECT_EQ(HostVersion(cache + "/current"), pushed->version);

  // A second version without dogs.lua: the removed file's cell goes.
  std::string b = MakeDir("b", {{"cats.lua", AlwaysScript("cats", "cat")}});
  auto second = set.Push(b);
  SEG_ASSERT_OK(second);
  EXPECT_TRUE(second->changed);
  auto fetched2 = set.Fetch();
  SEG_ASSERT_OK(fetched2);
  EXPECT_EQ(fetched2->version, HostVersion(b));
  EXPECT_EQ(fetched2->files.size(), 1u);
  SEG_ASSERT_OK(ScriptSet::Materialize(*fetched2, cache));
  EXPECT_EQ(fs::read_symlink(cache + "/current").string(), second->version);
  EXPECT_EQ(HostVersion(cache + "/current"), second->version);
  // No temp dirs or links left behind.
  for (const auto& e : fs::directory_iterator(cache)) {
    EXPECT_FALSE(e.path().filename().string().starts_with(".")) << e.path();
  }
}

TEST_P(ScriptSetTest, BrokenScriptIsRejectedAndStoredSetUnchanged) {
  std::string good = MakeDir("good", {{"cats.lua", AlwaysScript("cats", "cat")}});
  std::string bad = MakeDir("bad", {{"cats.lua", AlwaysScript("cats", "cat")},
                                    {"broken.lua", "return segment_script { name = "}});
  ScriptSet set(store_.get());
  auto pushed = set.Push(good);
  SEG_ASSERT_OK(pushed);
  auto rejected = set.Push(bad);
  ASSERT_FALSE(rejected.ok());
  EXPECT_EQ(rejected.status().code(), StatusCode::kInvalidArgument) << rejected.status();
  EXPECT_NE(rejected.status().message().find("broken.lua"), std::string::npos);
  auto fetched = set.Fetch();
  SEG_ASSERT_OK(fetched);
  EXPECT_EQ(fetched->version, pushed->version);
  EXPECT_EQ(fetched->files.size(), 1u);
}

TEST_P(ScriptSetTest, PushLosingTheCasWritesNothing) {
  std::string a = MakeDir("a", {{"cats.lua", AlwaysScript("cats", "cat")}});
  std::string b = MakeDir("b", {{"dogs.lua", AlwaysScript("dogs", "dog")}});
  std::string c = MakeDir("c", {{"birds.lua", AlwaysScript("birds", "bird")}});
  ScriptSet plain(store_.get());
  SEG_ASSERT_OK(plain.Push(a));

  // Push c, but let a push of b land between c's read and its write.
  HookedStore hooked(store_.get());
  std::string b_version;
  hooked.before_cas = [&] {
    auto r = plain.Push(b);
    SEG_ASSERT_OK(r);
    b_version = r->version;
  };
  ScriptSet racing(&hooked);
  auto lost = racing.Push(c);
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.status().code(), StatusCode::kAborted) << lost.status();

  auto fetched = plain.Fetch();  // DataLoss if the two had interleaved
  SEG_ASSERT_OK(fetched);
  EXPECT_EQ(fetched->version, b_version);
  EXPECT_EQ(fetched->files.size(), 1u);
  EXPECT_TRUE(fetched->files.count("dogs.lua"));
}

TEST_P(ScriptSetTest, ConcurrentPushesLeaveOneWholeSet) {
  constexpr int kPushers = 4;
  std::vector<std::string> dirs;
  for (int i = 0; i < kPushers; ++i) {
    std::string n = "s" + std::to_string(i);
    dirs.push_back(MakeDir(n, {{n + ".lua", AlwaysScript(n, "x" + std::to_string(i))},
                               {"common.lua", AlwaysScript("common", "c" + std::to_string(i))}}));
  }
  ScriptSet set(store_.get());
  std::atomic<int> ok{0};
  std::vector<std::string> versions(kPushers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kPushers; ++i) {
    threads.emplace_back([&, i] {
      auto r = set.Push(dirs[i]);
      if (r.ok()) {
        ++ok;
        versions[i] = r->version;
      } else {
        EXPECT_EQ(r.status().code(), StatusCode::kAborted) << r.status();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GE(ok.load(), 1);
  auto fetched = set.Fetch();
  SEG_ASSERT_OK(fetched);  // files and version agree
  EXPECT_EQ(fetched->files.size(), 2u);
  EXPECT_NE(std::find(versions.begin(), versions.end(), fetched->version), versions.end());
}

TEST_P(ScriptSetTest, BootstrapOnlyWhenEmpty) {
  std::string a = MakeDir("a", {{"cats.lua", AlwaysScript("cats", "cat")}});
  std::string older = MakeDir("older", {{"cats.lua", AlwaysScript("cats", "kitten")}});
  ScriptSet set(store_.get());
  auto first = set.Bootstrap(a);
  SEG_ASSERT_OK(first);
  EXPECT_TRUE(first->changed);
  auto job = internal::ReadBackfillStatus(store_.get(), internal::BackfillOptions{});
  SEG_ASSERT_OK(job);
  EXPECT_TRUE(job->immediate);  // no node runs an older stored set
  // A node starting later with another local dir adopts the stored set.
  auto second = set.Bootstrap(older);
  SEG_ASSERT_OK(second);
  EXPECT_FALSE(second->changed);
  EXPECT_EQ(second->version, first->version);

  // Two racing bootstraps on an empty store: one writes, both agree.
  testing::TempDir other;
  store::StoreOptions o;
  o.embedded.data_dir = other.path() + "/store";
  auto empty_store = store::OpenStore(o);
  SEG_ASSERT_OK(empty_store);
  HookedStore hooked(empty_store->get());
  ScriptSet winner(empty_store->get());
  std::string winner_version;
  hooked.before_cas = [&] {
    auto r = winner.Bootstrap(older);
    SEG_ASSERT_OK(r);
    winner_version = r->version;
  };
  ScriptSet loser(&hooked);
  auto lost = loser.Bootstrap(a);
  SEG_ASSERT_OK(lost);
  EXPECT_FALSE(lost->changed);
  EXPECT_EQ(lost->version, winner_version);
}

TEST_P(ScriptSetTest, PushStartsAFreshBackfillJob) {
  std::string a = MakeDir("a", {{"cats.lua", AlwaysScript("cats", "cat")}});
  ScriptSet set(store_.get());
  auto pushed = set.Push(a);
  SEG_ASSERT_OK(pushed);
  auto job = internal::ReadBackfillStatus(store_.get(), internal::BackfillOptions{});
  SEG_ASSERT_OK(job);
  EXPECT_EQ(job->version, pushed->version);
  EXPECT_EQ(job->target, pushed->version);
  EXPECT_EQ(job->cursor, "");
  EXPECT_FALSE(job->done);
  EXPECT_EQ(job->lease_owner, "");
  EXPECT_FALSE(job->immediate);  // waits for the nodes to load it
}

INSTANTIATE_TEST_SUITE_P(Stores, ScriptSetTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Thrift" : "Embedded"; });

}  // namespace
}  // namespace seg::segmenter
