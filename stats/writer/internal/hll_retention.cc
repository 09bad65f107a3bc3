// HLL key retention: the expiry time of a (segment, day) key and the
// one-time sweep that gives keys written before retention existed theirs.
// The writer's Lua (lua/stats_functions.lua) sets the same time on new keys.
#include <glog/logging.h>

#include <string>
#include <vector>

#include "stats/writer/stats_writer.h"

namespace seg::stats {

int64_t HllExpireAtUnixS(Day day, int32_t retention_days) {
  return (DayToEpochDays(day) + 1 + retention_days) * 86400;
}

namespace {

// The yyyymmdd that ends the key, if it is a real day.
std::optional<Day> DayOfKey(std::string_view key) {
  if (key.size() < 9 || key[key.size() - 9] != ':') return std::nullopt;
  StatusOr<Day> day = ParseDay(key.substr(key.size() - 8));
  if (!day.ok()) return std::nullopt;
  return *day;
}

// One master: SCAN the prefix, TTL every key of a page in one pipeline,
// EXPIREAT those without one in a second.
Status SweepNode(RedisConnection& conn, const std::string& pattern, int32_t retention_days,
                 int64_t now_unix_s, int scan_count, ExpirySweepReport* report) {
  std::string cursor = "0";
  do {
    SEG_ASSIGN_OR_RETURN(RedisReply page, conn.Command({"SCAN", cursor, "MATCH", pattern, "COUNT",
                                                        std::to_string(scan_count)}));
    SEG_RETURN_IF_ERROR(page.ToStatus().WithContext("SCAN on " + conn.options().Address()));
    if (!page.is_array() || page.elements.size() != 2 || !page.elements[1].is_array()) {
      return InternalError("SCAN on " + conn.options().Address() + ": unexpected reply " +
                           page.DebugString());
    }
    cursor = page.elements[0].str;
    std::vector<std::string> keys;
    for (const RedisReply& k : page.elements[1].elements) keys.push_back(k.str);
    report->scanned += static_cast<int64_t>(keys.size());
    if (keys.empty()) continue;

    std::vector<RedisArgv> ttls;
    ttls.reserve(keys.size());
    for (const auto& k : keys) ttls.push_back({"TTL", k});
    SEG_ASSIGN_OR_RETURN(std::vector<RedisReply> ttl_replies, conn.Pipeline(ttls));
    std::vector<RedisArgv> expires;
    std::vector<bool> in_past;
    for (size_t i = 0; i < keys.size(); ++i) {
      const RedisReply& t = ttl_replies[i];
      SEG_RETURN_IF_ERROR(t.ToStatus().WithContext("TTL " + keys[i]));
      if (t.integer == -2) {  // expired since SCAN saw it
        ++report->vanished;
        continue;
      }
      if (t.integer >= 0) {
        ++report->had_ttl;
        continue;
      }
      std::optional<Day> day = DayOfKey(keys[i]);
      if (!day) {
        ++report->not_a_day;
        continue;
      }
      int64_t at = HllExpireAtUnixS(*day, retention_days);
      // The same absolute time as the writer's, so racing with it is harmless.
      expires.push_back({"EXPIREAT", keys[i], std::to_string(at)});
      in_past.push_back(at <= now_unix_s);
    }
    if (expires.empty()) continue;
    SEG_ASSIGN_OR_RETURN(std::vector<RedisReply> set_replies, conn.Pipeline(expires));
    for (size_t i = 0; i < expires.size(); ++i) {
      SEG_RETURN_IF_ERROR(set_replies[i].ToStatus().WithContext("EXPIREAT " + expires[i][1]));
      if (set_replies[i].integer == 0) {
        ++report->vanished;
      } else if (in_past[i]) {
        ++report->expired;
      } else {
        ++report->set;
      }
    }
  } while (cursor != "0");
  return Status::OK();
}

}  // namespace

StatusOr<ExpirySweepReport> SweepHllExpiry(RedisRouter* router, std::string_view key_prefix,
                                           int32_t retention_days, int64_t now_unix_s,
                                           int scan_count) {
  if (retention_days <= 0) {
    return InvalidArgumentError("expire sweep: retention must be > 0 days (0 = keep forever)");
  }
  if (key_prefix.empty()) return InvalidArgumentError("expire sweep: empty key prefix");
  // Glob-escape the prefix: it is a literal.
  std::string pattern;
  for (char c : key_prefix) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') pattern.push_back('\\');
    pattern.push_back(c);
  }
  pattern += ":*";
  ExpirySweepReport report;
  SEG_RETURN_IF_ERROR(router->ForEachMaster([&](RedisConnection& conn) -> Status {
    ++report.masters;
    Status s = SweepNode(conn, pattern, retention_days, now_unix_s, scan_count, &report);
    LOG(INFO) << "expire sweep: " << conn.options().Address() << " done: " << s;
    return s;
  }));
  return report;
}

}  // namespace seg::stats
