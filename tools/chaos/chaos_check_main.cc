// seg-chaos-check: after a chaos run (tools/chaos.py), waits until the
// pipeline is quiet and checks it against seg-loadgen's ground truth (its
// --messages-out file: every message the brokers acknowledged):
//   - every valid event is stored exactly once as a cell of family `e`
//     (a full scan of the table: none missing, none extra, none changed; a
//     missing one is looked up in the events topic, to tell a loss before
//     ingest from one in the pipeline);
//   - every user's final result on segmentation-results equals a direct
//     evaluation of the scripts over the user's events at the result's
//     segmented_at (tools/chaos/direct_evaluation.h, as tests/e2e_test.cc);
//   - every malformed message is dead-lettered with its reason, and no
//     valid one is;
//   - seg-stats' day sizes lie inside their 99.9% interval around the
//     distinct users the results put in each segment that day.
// Prints one JSON object (the findings, each with the times tools/chaos.py
// attributes to faults); exit 0 when it could check (whatever it found), 1
// when it could not (the pipeline never went quiet, a part unreachable).
//
//   seg-chaos-check --bootstrap K --store H:P --stats H:P --scripts DIR
//                   --messages sent.tsv [--quiet-timeout-s 180]
#include <glog/logging.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <librdkafka/rdkafka.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/logging.h"
#include "proto/events.pb.h"
#include "proto/segmentation.pb.h"
#include "proto/stats.grpc.pb.h"
#include "segmenter/script_host/script_host.h"
#include "segmenter/segmenter.h"
#include "store/store.h"
#include "tools/chaos/direct_evaluation.h"

namespace {

using SteadyClock = std::chrono::steady_clock;
using seg::Status;
using seg::StatusOr;

std::string Unhex(std::string_view hex) {
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<char>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  }
  return out;
}

// Equal StoredEvent contents (map fields serialize in no fixed order, so
// equal cells written by two processes can differ in bytes).
bool SameStoredEvent(std::string_view a, std::string_view b) {
  seg::StoredEvent x, y;
  return x.ParseFromArray(a.data(), static_cast<int>(a.size())) &&
         y.ParseFromArray(b.data(), static_cast<int>(b.size())) &&
         google::protobuf::util::MessageDifferencer::Equals(x, y);
}

std::string Hex(std::string_view bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string JoinSegments(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return "[" + out + "]";
}

// The ground truth, from seg-loadgen --messages-out.
struct Truth {
  struct User {
    std::string id;
    seg::chaos::Cells cells;
    std::map<std::string, int64_t> sent_ms;  // qualifier -> first send time
    int64_t newest_ms = 0;                   // newest event time
    int64_t last_sent_ms = 0;                // send time of its last valid message
  };
  std::map<std::string, User> users;                               // by user id
  std::map<std::pair<std::string, std::string>, int> deadletters;  // (value, reason) -> count
  std::set<std::string> valid_values;
  int64_t messages = 0, valid = 0, malformed = 0;
};

Status LoadTruth(const std::string& path, Truth* truth) {
  std::ifstream in(path);
  if (!in) return seg::NotFoundError("cannot read " + path);
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string part; std::getline(ss, part, '\t');) f.push_back(part);
    if (f.size() == 4) f.push_back("");  // an empty key is an empty field
    if (f.size() != 5) {
      return seg::InvalidArgumentError(path + ":" + std::to_string(n) + ": expected 5 fields");
    }
    const int64_t sent_ms = std::stoll(f[0]);
    const std::string reason = f[2];
    std::string value = Unhex(f[4]);
    ++truth->messages;
    if (reason != "-") {
      ++truth->malformed;
      ++truth->deadletters[{value, reason}];
      continue;
    }
    ++truth->valid;
    std::string qualifier, cell;
    int64_t time_ms = 0;
    SEG_RETURN_IF_ERROR(seg::chaos::ExpectedCell(value, &qualifier, &cell, &time_ms));
    seg::Event event;
    event.ParseFromString(value);
    Truth::User& user = truth->users[event.user_id()];
    user.id = event.user_id();
    user.cells[qualifier] = std::move(cell);
    user.sent_ms.try_emplace(qualifier, sent_ms);
    user.newest_ms = std::max(user.newest_ms, time_ms);
    user.last_sent_ms = std::max(user.last_sent_ms, sent_ms);
    truth->valid_values.insert(std::move(value));
  }
  return Status::OK();
}

// A librdkafka consumer assigned to every partition of one topic from the
// beginning (no group: nothing to join, nothing committed).
class TopicReader {
 public:
  static StatusOr<std::unique_ptr<TopicReader>> Open(const std::string& bootstrap,
                                                     const std::string& topic) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", "seg-chaos-check", err, sizeof err);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (rk == nullptr) return seg::InternalError(std::string("rd_kafka_new: ") + err);
    auto reader = std::unique_ptr<TopicReader>(new TopicReader(rk, topic));
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 20000);
    rd_kafka_topic_destroy(t);
    if (e) return seg::UnavailableError("metadata of " + topic + ": " + rd_kafka_err2str(e));
    int partitions = md->topic_cnt == 1 ? md->topics[0].partition_cnt : 0;
    rd_kafka_metadata_destroy(md);
    if (partitions == 0) return seg::NotFoundError("no partitions in " + topic);
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p) {
      rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    e = rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e) return seg::InternalError("assign " + topic + ": " + rd_kafka_err2str(e));
    reader->next_.assign(partitions, 0);
    return reader;
  }
  ~TopicReader() {
    rd_kafka_consumer_close(rk_);
    rd_kafka_destroy(rk_);
  }

  // Hands what arrives within `wait_ms` to fn(partition, offset, key, value).
  template <typename Fn>
  void Poll(int wait_ms, Fn fn) {
    auto until = SteadyClock::now() + std::chrono::milliseconds(wait_ms);
    while (SteadyClock::now() < until) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, 50);
      if (m == nullptr) continue;
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        fn(m->partition, m->offset, std::string_view(static_cast<const char*>(m->key), m->key_len),
           std::string_view(static_cast<const char*>(m->payload), m->len));
        next_[m->partition] = std::max(next_[m->partition], m->offset + 1);
      }
      rd_kafka_message_destroy(m);
    }
  }

  // Reads until every partition is read to its current end.
  template <typename Fn>
  Status ReadToEnd(SteadyClock::time_point deadline, Fn fn) {
    std::vector<int64_t> ends(next_.size());
    for (size_t p = 0; p < ends.size(); ++p) {
      int64_t low = 0;
      rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
          rk_, topic_.c_str(), static_cast<int32_t>(p), &low, &ends[p], 10000);
      if (e) return seg::UnavailableError("watermarks of " + topic_ + ": " + rd_kafka_err2str(e));
    }
    while (true) {
      bool done = true;
      for (size_t p = 0; p < ends.size(); ++p) done = done && next_[p] >= ends[p];
      if (done) return Status::OK();
      if (SteadyClock::now() > deadline) {
        return seg::DeadlineExceededError(topic_ + " not read to its end");
      }
      Poll(200, fn);
    }
  }

  // Messages of `topic` behind the committed offsets of `group` (-1: unknown).
  int64_t GroupLag(const std::string& group, const std::string& topic) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap_.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", group.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (rk == nullptr) return -1;
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 10000);
    rd_kafka_topic_destroy(t);
    int64_t lag = -1;
    if (!e && md->topic_cnt == 1) {
      const int partitions = md->topics[0].partition_cnt;
      rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
      for (int p = 0; p < partitions; ++p)
        rd_kafka_topic_partition_list_add(list, topic.c_str(), p);
      e = rd_kafka_committed(rk, list, 10000);
      lag = 0;
      for (int i = 0; !e && i < list->cnt; ++i) {
        int64_t low = 0, high = 0;
        e = rd_kafka_query_watermark_offsets(rk, topic.c_str(), list->elems[i].partition, &low,
                                             &high, 10000);
        const int64_t committed = list->elems[i].offset;
        lag += high - (committed >= 0 ? committed : low);
      }
      if (e) lag = -1;
      rd_kafka_topic_partition_list_destroy(list);
    }
    if (md != nullptr) rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return lag;
  }

  void set_bootstrap(const std::string& b) { bootstrap_ = b; }

 private:
  TopicReader(rd_kafka_t* rk, std::string topic) : rk_(rk), topic_(std::move(topic)) {}
  rd_kafka_t* rk_;
  std::string topic_;
  std::string bootstrap_;
  std::vector<int64_t> next_;
};

std::string FormatDay(int32_t yyyymmdd) {
  char text[16];
  std::snprintf(text, sizeof text, "%04d-%02d-%02d", yyyymmdd / 10000, yyyymmdd / 100 % 100,
                yyyymmdd % 100);
  return text;
}

int Fail(const Status& s) {
  std::cerr << "seg-chaos-check: " << s << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  CLI::App app{"seg-chaos-check: the chaos run's checks against seg-loadgen's ground truth"};
  std::string bootstrap, store_addr, stats_target, scripts_dir, messages_path;
  double quiet_timeout_s = 180, z = 3.29;
  int32_t history_days = 60, max_events = 2000;
  app.add_option("--bootstrap", bootstrap, "Kafka bootstrap servers")->required();
  app.add_option("--store", store_addr, "Thrift2 store HOST:PORT")->required();
  app.add_option("--stats", stats_target, "seg-stats gRPC HOST:PORT (empty: no size check)");
  app.add_option("--scripts", scripts_dir, "The segmenters' scripts directory")->required();
  app.add_option("--messages", messages_path, "seg-loadgen --messages-out file")->required();
  app.add_option("--quiet-timeout-s", quiet_timeout_s, "How long to wait for a quiet pipeline");
  app.add_option("--z", z, "Size interval in standard errors (3.29: 99.9%)");
  app.add_option("--history-days", history_days, "segmenter.history_days");
  app.add_option("--max-events-per-user", max_events, "segmenter.max_events_per_user");
  CLI11_PARSE(app, argc, argv);

  Truth truth;
  if (Status s = LoadTruth(messages_path, &truth); !s.ok()) return Fail(s);

  seg::segmenter::ScriptHostOptions host_options;
  host_options.scripts_dir = scripts_dir;
  host_options.reload_check_interval_ms = 0;
  auto host = seg::segmenter::ScriptHost::Create(host_options);
  if (!host.ok()) return Fail(host.status());
  const seg::chaos::ReadWindow window{history_days, static_cast<size_t>(max_events)};

  // 1. Wait for a quiet pipeline: both groups caught up and every user's
  //    latest result covering its newest event (or flagging it a bot).
  auto results = TopicReader::Open(bootstrap, "segmentation-results");
  if (!results.ok()) return Fail(results.status());
  (*results)->set_bootstrap(bootstrap);
  std::map<std::string, seg::SegmentationResult> final_results;
  std::map<std::pair<std::string, int32_t>, std::set<std::string>> day_members;
  std::set<std::string> unknown_result_users;
  int64_t result_messages = 0;
  auto on_result = [&](int32_t, int64_t, std::string_view, std::string_view value) {
    ++result_messages;
    seg::SegmentationResult r;
    if (!r.ParseFromArray(value.data(), static_cast<int>(value.size()))) return;
    if (!truth.users.count(r.user_id())) unknown_result_users.insert(r.user_id());
    if (!r.bot()) {
      for (const auto& s : r.segments()) {
        day_members[{s, seg::segmenter::DayOf(r.segmented_at_ms())}].insert(r.user_id());
      }
    }
    final_results[r.user_id()] = std::move(r);
  };
  auto uncovered = [&] {
    int n = 0;
    for (const auto& [id, user] : truth.users) {
      auto it = final_results.find(id);
      n += it != final_results.end() &&
                   (it->second.bot() || it->second.data_watermark_ms() >= user.newest_ms)
               ? 0
               : 1;
    }
    return n;
  };
  const auto started = SteadyClock::now();
  const auto deadline = started + std::chrono::milliseconds(int64_t(quiet_timeout_s * 1000));
  int64_t ingest_lag = -1, segmenter_lag = -1;
  int missing = -1;
  while (true) {
    (*results)->Poll(500, on_result);
    missing = uncovered();
    if (missing == 0) {
      ingest_lag = (*results)->GroupLag("seg-ingest", "events");
      segmenter_lag = (*results)->GroupLag("segmenter", "user-changes");
      if (ingest_lag == 0 && segmenter_lag == 0) break;
    }
    if (SteadyClock::now() > deadline) break;
  }
  const double quiet_s = std::chrono::duration<double>(SteadyClock::now() - started).count();
  const bool quiet = missing == 0 && ingest_lag == 0 && segmenter_lag == 0;
  if (Status s = (*results)->ReadToEnd(SteadyClock::now() + std::chrono::seconds(60), on_result);
      !s.ok()) {
    return Fail(s);
  }

  // 2. The store: a full scan of family e.
  seg::store::StoreOptions store_options;
  store_options.backend = seg::store::StoreOptions::Backend::kThrift;
  const size_t colon = store_addr.rfind(':');
  store_options.thrift.host = store_addr.substr(0, colon);
  store_options.thrift.port = std::atoi(store_addr.c_str() + colon + 1);
  auto store = seg::store::OpenStore(store_options);
  if (!store.ok()) return Fail(store.status());
  std::map<std::string, seg::chaos::Cells> stored;
  {
    seg::store::ScanRequest scan;
    scan.families = {"e"};
    scan.batch_rows = 200;
    auto scanner = (*store)->OpenScanner("users", scan);
    if (!scanner.ok()) return Fail(scanner.status());
    std::vector<seg::store::RowResult> rows;
    while (true) {
      if (Status s = (*scanner)->NextBatch(&rows); !s.ok()) return Fail(s);
      if (rows.empty()) break;
      for (const auto& row : rows) {
        auto& cells = stored[row.row()];
        for (size_t i = 0; i < row.size(); ++i) {
          seg::store::CellView c = row.cell(i);
          cells[std::string(c.qualifier)] = std::string(c.value);
        }
      }
    }
    (*scanner)->Close().IgnoreError();
  }
  std::vector<int64_t> lost_sent_ms;
  std::set<std::pair<std::string, std::string>> lost_keys;  // (user, qualifier)
  int64_t expected_cells = 0, extra_cells = 0, changed_cells = 0, unknown_rows = 0;
  for (const auto& [id, user] : truth.users) {
    expected_cells += static_cast<int64_t>(user.cells.size());
    const seg::chaos::Cells& have = stored[id];
    for (const auto& [q, value] : user.cells) {
      auto it = have.find(q);
      if (it == have.end()) {
        lost_sent_ms.push_back(user.sent_ms.at(q));
        lost_keys.insert({id, q});
      } else if (it->second != value && !SameStoredEvent(it->second, value)) {
        if (changed_cells++ < 3) {
          LOG(WARNING) << "changed cell of " << id << ": stored " << Hex(it->second)
                       << ", expected " << Hex(value);
        }
      }
    }
    for (const auto& [q, value] : have) extra_cells += user.cells.count(q) ? 0 : 1;
  }
  for (const auto& [row, cells] : stored) {
    if (!cells.empty() && !truth.users.count(row)) {
      ++unknown_rows;
      extra_cells += static_cast<int64_t>(cells.size());
    }
  }

  // A lost event the brokers acknowledged but the events topic lacks was
  // lost before ingest (the brokers or the producer), not by the pipeline.
  int64_t lost_not_in_topic = 0;
  if (!lost_keys.empty()) {
    auto events = TopicReader::Open(bootstrap, "events");
    if (!events.ok()) return Fail(events.status());
    std::set<std::pair<std::string, std::string>> in_topic;
    Status s = (*events)->ReadToEnd(
        SteadyClock::now() + std::chrono::seconds(120),
        [&](int32_t, int64_t, std::string_view, std::string_view value) {
          std::string q, cell;
          int64_t t = 0;
          seg::Event event;
          if (!event.ParseFromArray(value.data(), static_cast<int>(value.size()))) return;
          if (!seg::chaos::ExpectedCell(value, &q, &cell, &t).ok()) return;
          if (lost_keys.count({event.user_id(), q})) in_topic.insert({event.user_id(), q});
        });
    if (!s.ok()) return Fail(s);
    for (const auto& key : lost_keys) {
      if (!in_topic.count(key)) {
        ++lost_not_in_topic;
        LOG(WARNING) << "lost before ingest: " << key.first << " " << Hex(key.second);
      } else {
        LOG(WARNING) << "lost by the pipeline: " << key.first << " " << Hex(key.second);
      }
    }
  }

  // 3. Final results against a direct evaluation at their segmented_at.
  struct Wrong {
    std::string user, why;
    int64_t at_ms;
  };
  std::vector<Wrong> wrong;
  std::vector<int64_t> missing_sent_ms;
  int64_t compared = 0;
  std::vector<std::string> flagged_users;
  for (const auto& [id, user] : truth.users) {
    auto it = final_results.find(id);
    if (it == final_results.end()) {
      missing_sent_ms.push_back(user.last_sent_ms);
      continue;
    }
    const seg::SegmentationResult& r = it->second;
    if (r.bot()) {
      flagged_users.push_back(id);
      continue;
    }
    ++compared;
    seg::segmenter::EvaluationResult direct;
    int64_t watermark = 0;
    Status s = seg::chaos::DirectEvaluate(host->get(), id, user.cells, r.segmented_at_ms(), window,
                                          &direct, &watermark);
    std::vector<std::string> got(r.segments().begin(), r.segments().end());
    if (!s.ok()) {
      wrong.push_back({id, "direct evaluation failed: " + s.ToString(), r.segmented_at_ms()});
    } else if (r.data_watermark_ms() != watermark) {
      wrong.push_back({id,
                       "watermark " + std::to_string(r.data_watermark_ms()) + ", newest event " +
                           std::to_string(watermark),
                       r.segmented_at_ms()});
    } else if (got != direct.segments) {
      wrong.push_back(
          {id, "segments " + JoinSegments(got) + ", direct " + JoinSegments(direct.segments),
           r.segmented_at_ms()});
    } else if (!r.failed_scripts().empty()) {
      wrong.push_back({id, "failed script " + r.failed_scripts(0), r.segmented_at_ms()});
    }
  }

  // 4. Dead letters: exactly the malformed messages, each with its reason.
  std::map<std::pair<std::string, std::string>, int> deadlettered;
  int64_t valid_deadlettered = 0;
  {
    auto letters = TopicReader::Open(bootstrap, "events-deadletter");
    if (!letters.ok()) return Fail(letters.status());
    Status s = (*letters)->ReadToEnd(
        SteadyClock::now() + std::chrono::seconds(60),
        [&](int32_t, int64_t, std::string_view, std::string_view value) {
          seg::DeadLetter d;
          if (!d.ParseFromArray(value.data(), static_cast<int>(value.size()))) return;
          ++deadlettered[{d.original(), d.reason()}];
          valid_deadlettered += truth.valid_values.count(d.original()) ? 1 : 0;
        });
    if (!s.ok()) return Fail(s);
  }
  int64_t deadletters_missing = 0, deadletters_unexpected = 0, deadletters_repeated = 0;
  for (const auto& [key, n] : truth.deadletters) {
    auto it = deadlettered.find(key);
    const int got = it == deadlettered.end() ? 0 : it->second;
    deadletters_missing += std::max(0, n - got);
    deadletters_repeated += std::max(0, got - n);  // at-least-once re-reads
  }
  for (const auto& [key, n] : deadlettered) {
    deadletters_unexpected += truth.deadletters.count(key) ? 0 : n;
  }

  // 5. Day sizes from seg-stats against the users the results counted.
  struct Size {
    std::string segment;
    int32_t day;
    double estimate, truth, bound;
  };
  std::vector<Size> sizes_outside;
  int64_t sizes_checked = 0;
  std::string size_error;
  if (!stats_target.empty()) {
    auto stub = seg::stats::v1::SegmentStats::NewStub(
        grpc::CreateChannel(stats_target, grpc::InsecureChannelCredentials()));
    std::set<int32_t> days;
    for (const auto& [key, users] : day_members) days.insert(key.second);
    for (int32_t day : days) {
      for (const auto& script : (*host)->scripts()) {
        for (const auto& segment : script.segments) {
          seg::stats::v1::SegmentSizeRequest request;
          request.set_segment(segment);
          request.mutable_days()->set_from(FormatDay(day));
          request.mutable_days()->set_to(FormatDay(day));
          seg::stats::v1::Estimate estimate;
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
          grpc::Status status = stub->SegmentSize(&context, request, &estimate);
          if (!status.ok()) {
            size_error = segment + " on " + FormatDay(day) + ": " + status.error_message();
            continue;
          }
          ++sizes_checked;
          const double t = static_cast<double>(day_members[{segment, day}].size());
          // z standard errors (the reported one, at least 1.04/sqrt(m), m =
          // 2^14 registers), plus one user for rounding.
          const double bound = z * std::max(estimate.std_error(), t * 1.04 / 128.0) + 1;
          if (std::abs(estimate.value() - t) > bound) {
            sizes_outside.push_back({segment, day, estimate.value(), t, bound});
          }
        }
      }
    }
  }

  // The findings, one JSON object.
  std::ostringstream o;
  auto times = [&](const std::vector<int64_t>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + std::to_string(v[i]);
    return out + "]";
  };
  o << "{\"quiet\":" << (quiet ? "true" : "false") << ",\"quiet_after_s\":" << quiet_s
    << ",\"uncovered_users\":" << missing << ",\"ingest_lag\":" << ingest_lag
    << ",\"segmenter_lag\":" << segmenter_lag << ",\"messages\":" << truth.messages
    << ",\"valid_messages\":" << truth.valid << ",\"malformed_messages\":" << truth.malformed
    << ",\"users\":" << truth.users.size() << ",\"expected_cells\":" << expected_cells
    << ",\"lost_cells\":" << times(lost_sent_ms) << ",\"lost_not_in_topic\":" << lost_not_in_topic
    << ",\"extra_cells\":" << extra_cells << ",\"changed_cells\":" << changed_cells
    << ",\"unknown_rows\":" << unknown_rows << ",\"result_messages\":" << result_messages
    << ",\"compared\":" << compared << ",\"bot_flagged\":[";
  for (size_t i = 0; i < flagged_users.size(); ++i) {
    o << (i ? "," : "") << JsonString(flagged_users[i]);
  }
  o << "]"
    << ",\"missing_results\":" << times(missing_sent_ms)
    << ",\"unknown_result_users\":" << unknown_result_users.size() << ",\"wrong_results\":[";
  for (size_t i = 0; i < wrong.size(); ++i) {
    o << (i ? "," : "") << "{\"user\":" << JsonString(wrong[i].user)
      << ",\"at_ms\":" << wrong[i].at_ms << ",\"why\":" << JsonString(wrong[i].why) << "}";
  }
  o << "],\"deadletters_expected\":" << truth.malformed
    << ",\"deadletters_missing\":" << deadletters_missing
    << ",\"deadletters_unexpected\":" << deadletters_unexpected
    << ",\"deadletters_repeated\":" << deadletters_repeated
    << ",\"valid_deadlettered\":" << valid_deadlettered << ",\"sizes_checked\":" << sizes_checked
    << ",\"size_error\":" << JsonString(size_error) << ",\"sizes_outside\":[";
  for (size_t i = 0; i < sizes_outside.size(); ++i) {
    const Size& s = sizes_outside[i];
    o << (i ? "," : "") << "{\"segment\":" << JsonString(s.segment) << ",\"day\":" << s.day
      << ",\"estimate\":" << s.estimate << ",\"truth\":" << s.truth << ",\"bound\":" << s.bound
      << "}";
  }
  o << "]}";
  std::cout << o.str() << std::endl;
  return 0;
}
