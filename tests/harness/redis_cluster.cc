#include "tests/harness/redis_cluster.h"

#include <sstream>
#include <thread>

#include <glog/logging.h>

namespace seg::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr int kSlots = 16384;

// Owner node id of `slot` according to one node's CLUSTER NODES text. Lines:
// "<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot|a-b|[..]>..."
std::string OwnerInNodesText(const std::string& text, int slot) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::vector<std::string> f;
    std::string word;
    while (fields >> word) f.push_back(word);
    for (size_t i = 8; i < f.size(); ++i) {
      if (f[i].empty() || f[i][0] == '[') continue;  // migration markers
      size_t dash = f[i].find('-');
      int lo = std::stoi(f[i].substr(0, dash));
      int hi = dash == std::string::npos ? lo : std::stoi(f[i].substr(dash + 1));
      if (slot >= lo && slot <= hi) return f[0];
    }
  }
  return "";
}

}  // namespace

LocalRedisCluster::~LocalRedisCluster() {
  for (auto& node : nodes_) node->Kill();
}

StatusOr<std::string> LocalRedisCluster::Call(int node, const std::vector<std::string>& argv) {
  return RedisCommandForTest(nodes_[node]->port(), argv, options_.password);
}

std::vector<int> LocalRedisCluster::ports() const {
  std::vector<int> out;
  for (const auto& node : nodes_) out.push_back(node->port());
  return out;
}

std::string LocalRedisCluster::SeedList() const {
  std::string out;
  for (const auto& node : nodes_) {
    if (!out.empty()) out += ",";
    out += "127.0.0.1:" + std::to_string(node->port());
  }
  return out;
}

StatusOr<std::unique_ptr<LocalRedisCluster>> LocalRedisCluster::Start(
    LocalRedisClusterOptions options) {
  if (options.masters < 1 || options.masters > 100) return InvalidArgumentError("masters");
  std::unique_ptr<LocalRedisCluster> cluster(new LocalRedisCluster(options));
  const int n = options.masters;
  for (int i = 0; i < n; ++i) {
    LocalRedisOptions node_options;
    node_options.password = options.password;
    node_options.cluster = true;
    SEG_ASSIGN_OR_RETURN(auto node, LocalRedis::Start(node_options));
    cluster->nodes_.push_back(std::move(node));
  }
  for (int i = 0; i < n; ++i) {
    SEG_ASSIGN_OR_RETURN(std::string id, cluster->Call(i, {"CLUSTER", "MYID"}));
    cluster->ids_.push_back(id);
    // Distinct config epochs up front (as redis-cli does) so no epoch
    // collision resolution is needed before the slot map settles.
    SEG_RETURN_IF_ERROR(
        cluster->Call(i, {"CLUSTER", "SET-CONFIG-EPOCH", std::to_string(i + 1)}).status());
    int lo = kSlots * i / n;
    int hi = kSlots * (i + 1) / n - 1;
    SEG_RETURN_IF_ERROR(
        cluster->Call(i, {"CLUSTER", "ADDSLOTSRANGE", std::to_string(lo), std::to_string(hi)})
            .status()
            .WithContext("ADDSLOTSRANGE on node " + std::to_string(i)));
  }
  for (int i = 1; i < n; ++i) {
    SEG_RETURN_IF_ERROR(
        cluster
            ->Call(0, {"CLUSTER", "MEET", "127.0.0.1", std::to_string(cluster->nodes_[i]->port()),
                       std::to_string(cluster->nodes_[i]->cluster_bus_port())})
            .status()
            .WithContext("CLUSTER MEET"));
  }
  SEG_RETURN_IF_ERROR(cluster->WaitUntilOk(options.start_timeout));
  return cluster;
}

Status LocalRedisCluster::WaitUntilOk(milliseconds timeout) {
  auto deadline = steady_clock::now() + timeout;
  std::string known = "cluster_known_nodes:" + std::to_string(size());
  std::string last;
  while (true) {
    bool all_ok = true;
    for (int i = 0; i < size() && all_ok; ++i) {
      auto info = Call(i, {"CLUSTER", "INFO"});
      if (!info.ok()) {
        last = info.status().ToString();
        all_ok = false;
      } else if (info->find("cluster_state:ok") == std::string::npos ||
                 info->find(known) == std::string::npos ||
                 info->find("cluster_slots_ok:16384") == std::string::npos) {
        last = "node " + std::to_string(i) + ": " + info->substr(0, 300);
        all_ok = false;
      }
    }
    if (all_ok) return Status::OK();
    if (steady_clock::now() > deadline) {
      return DeadlineExceededError("redis cluster not ok: " + last);
    }
    // Gossip converges in the background; poll.
    std::this_thread::sleep_for(milliseconds(20));
  }
}

StatusOr<int> LocalRedisCluster::SlotOwner(int slot) {
  SEG_ASSIGN_OR_RETURN(std::string text, Call(0, {"CLUSTER", "NODES"}));
  std::string id = OwnerInNodesText(text, slot);
  for (int i = 0; i < size(); ++i) {
    if (ids_[i] == id) return i;
  }
  return NotFoundError("no owner for slot " + std::to_string(slot));
}

Status LocalRedisCluster::WaitSlotOwner(int slot, int owner, milliseconds timeout) {
  auto deadline = steady_clock::now() + timeout;
  while (true) {
    bool agreed = true;
    for (int i = 0; i < size() && agreed; ++i) {
      auto text = Call(i, {"CLUSTER", "NODES"});
      agreed = text.ok() && OwnerInNodesText(*text, slot) == ids_[owner];
    }
    if (agreed) return Status::OK();
    if (steady_clock::now() > deadline) {
      return DeadlineExceededError("nodes disagree on owner of slot " + std::to_string(slot));
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
}

Status LocalRedisCluster::BeginSlotMigration(int slot, int to) {
  SEG_ASSIGN_OR_RETURN(int from, SlotOwner(slot));
  if (from == to) return FailedPreconditionError("slot already on target node");
  std::string s = std::to_string(slot);
  SEG_RETURN_IF_ERROR(Call(to, {"CLUSTER", "SETSLOT", s, "IMPORTING", ids_[from]}).status());
  SEG_RETURN_IF_ERROR(Call(from, {"CLUSTER", "SETSLOT", s, "MIGRATING", ids_[to]}).status());
  return Status::OK();
}

Status LocalRedisCluster::FinishSlotMigration(int slot, int to) {
  std::string s = std::to_string(slot);
  // Target first (it bumps its epoch), then everyone else, as redis-cli does.
  SEG_RETURN_IF_ERROR(Call(to, {"CLUSTER", "SETSLOT", s, "NODE", ids_[to]}).status());
  for (int i = 0; i < size(); ++i) {
    if (i == to) continue;
    SEG_RETURN_IF_ERROR(Call(i, {"CLUSTER", "SETSLOT", s, "NODE", ids_[to]}).status());
  }
  return WaitSlotOwner(slot, to, milliseconds(10000));
}

Status LocalRedisCluster::MigrateSlot(int slot, int to) {
  SEG_ASSIGN_OR_RETURN(int from, SlotOwner(slot));
  if (from == to) return Status::OK();
  SEG_RETURN_IF_ERROR(BeginSlotMigration(slot, to));
  auto deadline = steady_clock::now() + milliseconds(10000);
  while (true) {
    SEG_ASSIGN_OR_RETURN(std::string keys,
                         Call(from, {"CLUSTER", "GETKEYSINSLOT", std::to_string(slot), "100"}));
    if (keys.empty()) break;
    std::vector<std::string> argv = {"MIGRATE", "127.0.0.1", std::to_string(nodes_[to]->port()),
                                     "",        "0",         "5000"};
    if (!options_.password.empty()) {
      argv.push_back("AUTH");
      argv.push_back(options_.password);
    }
    argv.push_back("KEYS");
    std::istringstream lines(keys);
    std::string key;
    while (std::getline(lines, key)) argv.push_back(key);
    SEG_RETURN_IF_ERROR(Call(from, argv).status().WithContext("MIGRATE"));
    if (steady_clock::now() > deadline) return DeadlineExceededError("slot migration too slow");
  }
  return FinishSlotMigration(slot, to);
}

}  // namespace seg::testing
