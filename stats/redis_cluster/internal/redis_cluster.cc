#include "stats/redis_cluster/redis_cluster.h"

#include <array>
#include <charconv>
#include <chrono>
#include <map>
#include <optional>
#include <thread>

#include <glog/logging.h>

#include "common/metrics.h"

namespace seg::stats {
namespace {

std::string Join(std::string_view prefix, std::string_view key) {
  return prefix.empty() ? std::string(key) : std::string(prefix) + "." + std::string(key);
}

constexpr std::array<uint16_t, 256> MakeCrc16Table() {
  std::array<uint16_t, 256> table{};
  for (int i = 0; i < 256; ++i) {
    uint16_t crc = static_cast<uint16_t>(i << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<uint16_t>(crc << 1);
    }
    table[i] = crc;
  }
  return table;
}
constexpr std::array<uint16_t, 256> kCrc16Table = MakeCrc16Table();

// "host:port" -> parts; the port is after the last ':' (IPv6 hosts keep theirs).
bool SplitAddress(const std::string& address, std::string* host, int* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) return false;
  *host = address.substr(0, colon);
  const char* end = address.data() + address.size();
  auto [ptr, ec] = std::from_chars(address.data() + colon + 1, end, *port);
  return ec == std::errc() && ptr == end && *port > 0 && *port <= 65535;
}

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381" -> slot and address.
bool ParseRedirect(const std::string& error, std::string_view kind, int* slot,
                   std::string* address) {
  if (error.compare(0, kind.size(), kind) != 0 || error.size() <= kind.size() ||
      error[kind.size()] != ' ') {
    return false;
  }
  size_t slot_start = kind.size() + 1;
  size_t space = error.find(' ', slot_start);
  if (space == std::string::npos) return false;
  auto [ptr, ec] = std::from_chars(error.data() + slot_start, error.data() + space, *slot);
  if (ec != std::errc() || ptr != error.data() + space) return false;
  *address = error.substr(space + 1);
  return *slot >= 0 && *slot < kRedisClusterSlots && !address->empty();
}

// ---------------------------------------------------------------------------

class SingleNodeRouter : public RedisRouter {
 public:
  explicit SingleNodeRouter(std::unique_ptr<RedisConnection> conn) : conn_(std::move(conn)) {}

  StatusOr<RedisReply> Command(std::string_view key, const RedisArgv& argv) override {
    return conn_->Command(argv);
  }
  StatusOr<std::vector<RedisReply>> Pipeline(const std::vector<RoutedCommand>& commands) override {
    std::vector<const RedisArgv*> argvs;
    argvs.reserve(commands.size());
    for (const auto& c : commands) argvs.push_back(&c.argv);
    return conn_->PipelineRefs(argvs);
  }
  Status ForEachMaster(const std::function<Status(RedisConnection&)>& fn) override {
    return fn(*conn_);
  }
  StatusOr<std::vector<std::string>> Masters() override {
    return std::vector<std::string>{conn_->options().Address()};
  }
  bool is_cluster() const override { return false; }

 private:
  std::unique_ptr<RedisConnection> conn_;
};

// ---------------------------------------------------------------------------

class ClusterRouter : public RedisRouter {
 public:
  explicit ClusterRouter(RedisRouterOptions options)
      : options_(std::move(options)),
        slot_owner_(kRedisClusterSlots, -1),
        moved_(metrics::GetCounter("seg_redis_cluster_redirects_total",
                                   "Redis Cluster redirections followed", {{"kind", "moved"}})),
        ask_(metrics::GetCounter("seg_redis_cluster_redirects_total",
                                 "Redis Cluster redirections followed", {{"kind", "ask"}})),
        tryagain_(metrics::GetCounter("seg_redis_cluster_redirects_total",
                                      "Redis Cluster redirections followed",
                                      {{"kind", "tryagain"}})),
        refreshes_(metrics::GetCounter("seg_redis_cluster_slot_refreshes_total",
                                       "Redis Cluster slot map reloads")) {
    if (options_.seeds.empty()) options_.seeds.push_back(options_.node.Address());
  }

  Status Init() { return RefreshSlots(); }

  StatusOr<RedisReply> Command(std::string_view key, const RedisArgv& argv) override {
    SEG_ASSIGN_OR_RETURN(auto replies, Pipeline({RoutedCommand{std::string(key), argv}}));
    return std::move(replies[0]);
  }

  StatusOr<std::vector<RedisReply>> Pipeline(const std::vector<RoutedCommand>& commands) override {
    struct Pending {
      size_t index;
      std::string address;
      bool asking;
    };
    std::vector<std::optional<RedisReply>> results(commands.size());
    std::vector<Pending> pending;
    pending.reserve(commands.size());
    for (size_t i = 0; i < commands.size(); ++i) {
      SEG_ASSIGN_OR_RETURN(std::string address, AddressForKey(commands[i].key));
      pending.push_back({i, std::move(address), false});
    }
    std::vector<RedisReply> last_error(commands.size());
    bool transport_failed = false;
    for (int round = 0; !pending.empty() && round <= options_.max_redirects; ++round) {
      std::map<std::string, std::vector<const Pending*>> by_node;
      for (const auto& p : pending) by_node[p.address].push_back(&p);

      std::vector<Pending> next;
      bool refresh = false;
      bool backoff = false;
      for (auto& [address, group] : by_node) {
        static const RedisArgv kAsking = {"ASKING"};
        std::vector<const RedisArgv*> argvs;  // the commands themselves, not copies
        std::vector<int> reply_pos;           // where each command's reply is (after any ASKING)
        argvs.reserve(group.size());
        for (const Pending* p : group) {
          if (p->asking) argvs.push_back(&kAsking);
          reply_pos.push_back(static_cast<int>(argvs.size()));
          argvs.push_back(&commands[p->index].argv);
        }
        auto conn = Connection(address);
        StatusOr<std::vector<RedisReply>> replies =
            conn.ok() ? (*conn)->PipelineRefs(argvs)
                      : StatusOr<std::vector<RedisReply>>(conn.status());
        if (!replies.ok()) {
          // A node may have failed over or left: reload the map once and
          // re-route; a second transport failure in one call is final.
          if (transport_failed) return replies.status().WithContext("redis cluster");
          transport_failed = true;
          refresh = true;
          LOG(WARNING) << "redis cluster node " << address << ": " << replies.status();
          for (const Pending* p : group) next.push_back({p->index, "", false});
          continue;
        }
        for (size_t g = 0; g < group.size(); ++g) {
          const Pending* p = group[g];
          RedisReply& reply = (*replies)[reply_pos[g]];
          int slot = 0;
          std::string target;
          if (reply.is_error() && ParseRedirect(reply.str, "MOVED", &slot, &target)) {
            moved_.Inc();
            refresh = true;
            slot_owner_[slot] = InternMaster(target);  // authoritative for this slot right now
            next.push_back({p->index, target, false});
            last_error[p->index] = std::move(reply);
          } else if (reply.is_error() && ParseRedirect(reply.str, "ASK", &slot, &target)) {
            ask_.Inc();  // one-shot: the slot map itself does not change
            next.push_back({p->index, target, true});
            last_error[p->index] = std::move(reply);
          } else if (reply.is_error() && reply.str.rfind("TRYAGAIN", 0) == 0) {
            tryagain_.Inc();
            backoff = true;
            next.push_back({p->index, "", false});
            last_error[p->index] = std::move(reply);
          } else {
            results[p->index] = std::move(reply);
          }
        }
      }
      if (refresh) {
        Status s = RefreshSlots();
        if (!s.ok()) LOG(WARNING) << "redis cluster slot refresh: " << s;
      }
      // Re-route what lost its node or must retry on the (new) owner.
      for (auto& p : next) {
        if (!p.address.empty()) continue;
        SEG_ASSIGN_OR_RETURN(p.address, AddressForKey(commands[p.index].key));
      }
      if (backoff) {
        // TRYAGAIN: keys of a multi-key command are mid-migration; the
        // migration finishes on its own, so wait a little before retrying.
        std::this_thread::sleep_for(std::chrono::milliseconds(10 << std::min(round, 5)));
      }
      pending = std::move(next);
    }
    for (const auto& p : pending) {
      // Still unsent after a lost node and no error reply to hand back.
      if (!last_error[p.index].is_error()) {
        return UnavailableError("redis cluster: no node answered for key '" +
                                commands[p.index].key + "'");
      }
    }
    std::vector<RedisReply> out;
    out.reserve(commands.size());
    for (size_t i = 0; i < commands.size(); ++i) {
      out.push_back(results[i] ? std::move(*results[i]) : std::move(last_error[i]));
    }
    return out;
  }

  Status ForEachMaster(const std::function<Status(RedisConnection&)>& fn) override {
    SEG_ASSIGN_OR_RETURN(std::vector<std::string> masters, Masters());
    for (const auto& address : masters) {
      SEG_ASSIGN_OR_RETURN(RedisConnection * conn, Connection(address));
      SEG_RETURN_IF_ERROR(fn(*conn));
    }
    return Status::OK();
  }

  StatusOr<std::vector<std::string>> Masters() override {
    SEG_RETURN_IF_ERROR(RefreshSlots());
    std::vector<bool> owns(masters_.size(), false);
    for (int owner : slot_owner_) {
      if (owner >= 0) owns[owner] = true;
    }
    std::vector<std::string> out;
    for (size_t i = 0; i < masters_.size(); ++i) {
      if (owns[i]) out.push_back(masters_[i]);
    }
    return out;
  }

  bool is_cluster() const override { return true; }

 private:
  StatusOr<std::string> AddressForKey(const std::string& key) {
    if (key.empty()) {
      for (int owner : slot_owner_) {
        if (owner >= 0) return masters_[owner];
      }
    } else {
      int slot = RedisKeySlot(key);
      if (slot_owner_[slot] >= 0) return masters_[slot_owner_[slot]];
    }
    // A hole in the map: maybe it changed since the last load.
    SEG_RETURN_IF_ERROR(RefreshSlots());
    int slot = key.empty() ? -1 : RedisKeySlot(key);
    if (slot >= 0 && slot_owner_[slot] >= 0) return masters_[slot_owner_[slot]];
    if (slot < 0 && !masters_.empty()) return masters_[0];
    return UnavailableError("redis cluster: slot " + std::to_string(slot) + " is not served");
  }

  int InternMaster(const std::string& address) {
    for (size_t i = 0; i < masters_.size(); ++i) {
      if (masters_[i] == address) return static_cast<int>(i);
    }
    masters_.push_back(address);
    return static_cast<int>(masters_.size() - 1);
  }

  StatusOr<RedisConnection*> Connection(const std::string& address) {
    auto it = conns_.find(address);
    if (it != conns_.end()) return it->second.get();
    RedisOptions node = options_.node;
    if (!SplitAddress(address, &node.host, &node.port)) {
      return InvalidArgumentError("redis cluster: bad node address '" + address + "'");
    }
    node.db = 0;  // Redis Cluster has only database 0
    SEG_ASSIGN_OR_RETURN(auto conn, RedisConnection::Connect(node));
    RedisConnection* raw = conn.get();
    conns_[address] = std::move(conn);
    return raw;
  }

  // Reloads the slot map from the first node that answers CLUSTER SLOTS:
  // known masters first (they are current), then the seeds.
  Status RefreshSlots() {
    std::vector<std::string> candidates = masters_;
    candidates.insert(candidates.end(), options_.seeds.begin(), options_.seeds.end());
    Status last = UnavailableError("redis cluster: no seed or node reachable");
    for (const auto& address : candidates) {
      auto conn = Connection(address);
      if (!conn.ok()) {
        last = conn.status();
        continue;
      }
      auto reply = (*conn)->Command({"CLUSTER", "SLOTS"});
      if (!reply.ok()) {
        last = reply.status();
        continue;
      }
      if (!reply->is_array()) {
        last = reply->is_error() ? RedisErrorToStatus(reply->str)
                                 : InternalError("CLUSTER SLOTS: unexpected reply");
        last = last.WithContext("redis cluster " + address);
        continue;
      }
      Status parsed = ApplySlots(*reply, (*conn)->options().host);
      if (parsed.ok()) {
        refreshes_.Inc();
        return Status::OK();
      }
      last = parsed.WithContext(address);
    }
    return last;
  }

  // CLUSTER SLOTS: [[start, end, [host, port, id, ...], replicas...], ...].
  Status ApplySlots(const RedisReply& reply, const std::string& asked_host) {
    std::vector<int> owner(kRedisClusterSlots, -1);
    std::vector<std::string> masters;
    auto intern = [&](const std::string& address) {
      for (size_t i = 0; i < masters.size(); ++i) {
        if (masters[i] == address) return static_cast<int>(i);
      }
      masters.push_back(address);
      return static_cast<int>(masters.size() - 1);
    };
    for (const auto& range : reply.elements) {
      if (!range.is_array() || range.elements.size() < 3 || !range.elements[0].is_integer() ||
          !range.elements[1].is_integer() || !range.elements[2].is_array() ||
          range.elements[2].elements.size() < 2) {
        return InternalError("CLUSTER SLOTS: malformed entry " + range.DebugString());
      }
      const auto& master = range.elements[2].elements;
      std::string host = master[0].str;
      if (host == "?") continue;            // endpoint unknown yet
      if (host.empty()) host = asked_host;  // "same host as the node you asked"
      std::string address = host + ":" + std::to_string(master[1].integer);
      int index = intern(address);
      int64_t lo = range.elements[0].integer;
      int64_t hi = range.elements[1].integer;
      if (lo < 0 || hi >= kRedisClusterSlots || lo > hi) {
        return InternalError("CLUSTER SLOTS: bad range");
      }
      for (int64_t s = lo; s <= hi; ++s) owner[s] = index;
    }
    if (masters.empty()) return UnavailableError("CLUSTER SLOTS: no slots assigned");
    masters_ = std::move(masters);
    // Connections to nodes that left are kept: they are harmless and may come back.
    slot_owner_ = std::move(owner);
    return Status::OK();
  }

  RedisRouterOptions options_;
  std::vector<int> slot_owner_;       // slot -> index into masters_, -1 unknown
  std::vector<std::string> masters_;  // "host:port"
  std::map<std::string, std::unique_ptr<RedisConnection>> conns_;
  metrics::Counter moved_;
  metrics::Counter ask_;
  metrics::Counter tryagain_;
  metrics::Counter refreshes_;
};

}  // namespace

uint16_t RedisCrc16(std::string_view data) {
  uint16_t crc = 0;
  for (unsigned char c : data) {
    crc = static_cast<uint16_t>((crc << 8) ^ kCrc16Table[((crc >> 8) ^ c) & 0xff]);
  }
  return crc;
}

int RedisKeySlot(std::string_view key) {
  size_t open = key.find('{');
  if (open != std::string_view::npos) {
    size_t close = key.find('}', open + 1);
    // "{}" or an unclosed "{" hashes the whole key, as the server does.
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return RedisCrc16(key) & (kRedisClusterSlots - 1);
}

Status RedisRouterOptions::LoadFrom(Config& config, std::string_view prefix) {
  SEG_RETURN_IF_ERROR(config.Get(Join(prefix, "cluster"), &cluster));
  SEG_RETURN_IF_ERROR(config.Get(Join(prefix, "seeds"), &seeds));
  SEG_RETURN_IF_ERROR(config.Get(Join(prefix, "max_redirects"), &max_redirects));
  SEG_RETURN_IF_ERROR(node.LoadFrom(config, prefix));
  if (max_redirects < 0) return InvalidArgumentError(Join(prefix, "max_redirects") + " < 0");
  return Status::OK();
}

std::unique_ptr<RedisRouter> NewSingleNodeRouter(std::unique_ptr<RedisConnection> connection) {
  return std::make_unique<SingleNodeRouter>(std::move(connection));
}

StatusOr<std::unique_ptr<RedisRouter>> NewRedisRouter(const RedisRouterOptions& options) {
  if (!options.cluster) {
    SEG_ASSIGN_OR_RETURN(auto conn, RedisConnection::Connect(options.node));
    return NewSingleNodeRouter(std::move(conn));
  }
  auto router = std::make_unique<ClusterRouter>(options);
  SEG_RETURN_IF_ERROR(router->Init());
  return std::unique_ptr<RedisRouter>(std::move(router));
}

}  // namespace seg::stats
