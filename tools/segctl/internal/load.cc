#include "tools/segctl/load.h"

#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>

#include <glog/logging.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/config_keys.h"
#include "proto/events.pb.h"

namespace seg::tools {
namespace {

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix.data(), suffix.size()) == 0;
}

LoadFormat Detect(const std::string& path, std::FILE* f) {
  for (auto ext : {".jsonl", ".json", ".ndjson", ".jsonl.txt"}) {
    if (EndsWith(path, ext)) return LoadFormat::kJsonLines;
  }
  for (auto ext : {".pb", ".pbd", ".bin", ".delimited"}) {
    if (EndsWith(path, ext)) return LoadFormat::kProtoDelimited;
  }
  // Sniff: JSON lines start with '{' (maybe after blanks); a delimited
  // record starts with its varint length.
  int c;
  long pos = std::ftell(f);
  while ((c = std::fgetc(f)) == ' ' || c == '\t' || c == '\r' || c == '\n') {
  }
  std::fseek(f, pos, SEEK_SET);
  return c == '{' ? LoadFormat::kJsonLines : LoadFormat::kProtoDelimited;
}

class Progress {
 public:
  Progress(std::FILE* out, ProgressMode mode, int64_t interval_ms, int64_t total_bytes)
      : out_(out), total_(total_bytes), interval_ms_(interval_ms) {
    if (out_ == nullptr) mode = ProgressMode::kOff;
    if (mode == ProgressMode::kAuto) {
      mode = isatty(fileno(out_)) ? ProgressMode::kBar : ProgressMode::kLines;
    }
    mode_ = mode;
    start_ = last_ = std::chrono::steady_clock::now();
  }

  void Update(const LoadReport& r, bool final = false) {
    if (mode_ == ProgressMode::kOff) return;
    auto now = std::chrono::steady_clock::now();
    int64_t since = std::chrono::duration_cast<std::chrono::milliseconds>(now - last_).count();
    int64_t every = mode_ == ProgressMode::kBar ? 100 : interval_ms_;
    if (!final && since < every) return;
    last_ = now;
    double secs = std::chrono::duration<double>(now - start_).count();
    double rate = secs > 0 ? double(r.records) / secs : 0;
    double pct = total_ > 0 ? 100.0 * double(r.bytes) / double(total_) : 100.0;
    if (mode_ == ProgressMode::kBar) {
      constexpr int kWidth = 30;
      int filled = static_cast<int>(pct / 100.0 * kWidth);
      std::string bar(filled, '#');
      bar.resize(kWidth, ' ');
      std::fprintf(out_, "\r[%s] %5.1f%% %lld records, %lld rejected, %.0f/s   ", bar.c_str(), pct,
                   static_cast<long long>(r.records), static_cast<long long>(r.rejected), rate);
      if (final) std::fputc('\n', out_);
    } else {
      std::fprintf(out_, "seg-load: %.1f%% %lld records, %lld produced, %lld rejected, %.0f/s\n",
                   pct, static_cast<long long>(r.records), static_cast<long long>(r.produced),
                   static_cast<long long>(r.rejected), rate);
    }
    std::fflush(out_);
  }

 private:
  std::FILE* out_;
  ProgressMode mode_;
  int64_t total_;
  int64_t interval_ms_;
  std::chrono::steady_clock::time_point start_, last_;
};

class Loader {
 public:
  Loader(const LoadOptions& options, LoadReport* report)
      : options_(options), report_(report), clock_(options.clock ? options.clock : Clock::Real()) {}

  Status Init() {
    SEG_ASSIGN_OR_RETURN(producer_, kafka::Producer::Create(options_.kafka));
    if (!options_.rejects_path.empty()) {
      rejects_.open(options_.rejects_path, std::ios::binary | std::ios::trunc);
      if (!rejects_) return InvalidArgumentError("cannot write " + options_.rejects_path);
    }
    return Status::OK();
  }

  // One record; `raw` is what goes to the rejects file when rejected.
  Status Handle(std::string_view record, std::string_view raw, const std::string& where) {
    report_->records++;
    std::optional<ingest::Rejection> rejection =
        ingest::DecodeAndValidate(record, options_.validation, clock_->NowMs(), &event_);
    if (rejection) {
      Reject(rejection->reason, rejection->detail, raw, where);
      return Status::OK();
    }
    event_.SerializeToString(&value_);
    while (true) {
      Status s = producer_->Produce(options_.topic, event_.user_id(), value_);
      if (s.ok()) break;
      if (s.code() != StatusCode::kResourceExhausted) return s.WithContext(where);
      Drain(std::chrono::milliseconds(100));  // the broker is slow; wait for room
    }
    report_->produced++;
    if ((report_->produced & 1023) == 0) Drain(std::chrono::milliseconds(0));
    return Status::OK();
  }

  void Reject(std::string_view reason, const std::string& detail, std::string_view raw,
              const std::string& where) {
    report_->rejected++;
    report_->rejected_by_reason[std::string(reason)]++;
    if (static_cast<int32_t>(report_->examples.size()) < options_.max_examples) {
      report_->examples.push_back(where + ": " + std::string(reason) + ": " + detail);
    }
    if (rejects_.is_open()) rejects_.write(raw.data(), static_cast<std::streamsize>(raw.size()));
  }

  void Drain(std::chrono::milliseconds wait) {
    for (const kafka::DeliveryReport& r : producer_->PollDeliveries(wait)) {
      if (r.status.ok()) {
        report_->delivered++;
      } else {
        report_->delivery_failures++;
        LOG_EVERY_N(ERROR, 1000) << "seg-load: delivery failed: " << r.status;
      }
    }
  }

  Status Finish() {
    Status flush = producer_->Flush(std::chrono::milliseconds(options_.flush_timeout_ms));
    Drain(std::chrono::milliseconds(0));
    if (rejects_.is_open()) rejects_.close();
    if (report_->delivery_failures > 0) {
      return UnavailableError(std::to_string(report_->delivery_failures) +
                              " records failed to reach Kafka");
    }
    if (!flush.ok()) return flush;
    return Status::OK();
  }

 private:
  const LoadOptions& options_;
  LoadReport* report_;
  const Clock* clock_;
  std::unique_ptr<kafka::Producer> producer_;
  std::ofstream rejects_;
  Event event_;
  std::string value_;
};

// Reads a varint from f; false at a clean EOF (no byte), sets *truncated
// when the varint itself is cut off.
bool ReadVarint(std::FILE* f, uint64_t* v, int* bytes, bool* truncated) {
  uint64_t result = 0;
  *bytes = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    int c = std::fgetc(f);
    if (c == EOF) {
      *truncated = *bytes > 0;
      return false;
    }
    ++*bytes;
    result |= uint64_t(c & 0x7f) << shift;
    if (!(c & 0x80)) {
      *v = result;
      return true;
    }
  }
  *truncated = true;
  return false;
}

}  // namespace

Status LoadFile(const std::string& path, const LoadOptions& options, LoadReport* report,
                std::FILE* progress_out) {
  *report = LoadReport();
  auto start = std::chrono::steady_clock::now();
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return NotFoundError("cannot open " + path + ": " + std::strerror(errno));
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(f, &std::fclose);
  struct stat st {};
  int64_t total = fstat(fileno(f), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
  LoadFormat format = options.format == LoadFormat::kAuto ? Detect(path, f) : options.format;

  Loader loader(options, report);
  SEG_RETURN_IF_ERROR(loader.Init());
  Progress progress(progress_out, options.progress, options.progress_interval_ms, total);
  Status status;

  if (format == LoadFormat::kJsonLines) {
    char* line = nullptr;
    size_t cap = 0;
    ssize_t n;
    int64_t line_no = 0;
    while ((n = getline(&line, &cap, f)) != -1) {
      ++line_no;
      report->bytes += n;
      std::string_view raw(line, static_cast<size_t>(n));
      std::string_view text = raw;
      while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
      size_t first = text.find_first_not_of(" \t");
      if (first == std::string_view::npos) continue;  // blank line
      // A protobuf-looking line in a JSON file is a bad line, not protobuf.
      if (text[first] != '{') {
        report->records++;
        loader.Reject(ingest::reason::kUndecodable, "not a JSON object", raw,
                      "line " + std::to_string(line_no));
      } else {
        status = loader.Handle(text, raw, "line " + std::to_string(line_no));
        if (!status.ok()) break;
      }
      progress.Update(*report);
    }
    std::free(line);
  } else {
    int64_t record_no = 0;
    std::string buf;
    while (true) {
      uint64_t len = 0;
      int len_bytes = 0;
      bool truncated = false;
      if (!ReadVarint(f, &len, &len_bytes, &truncated)) {
        if (truncated) {
          status = InvalidArgumentError("record " + std::to_string(record_no + 1) +
                                        ": truncated length prefix at byte " +
                                        std::to_string(report->bytes));
        }
        break;
      }
      ++record_no;
      if (len > uint64_t(total) + 1) {
        status = InvalidArgumentError("record " + std::to_string(record_no) + ": length " +
                                      std::to_string(len) + " exceeds the file (not a " +
                                      "protobuf-delimited file?)");
        break;
      }
      buf.resize(len);
      if (len > 0 && std::fread(buf.data(), 1, len, f) != len) {
        status = InvalidArgumentError("record " + std::to_string(record_no) + ": truncated (" +
                                      std::to_string(len) + " bytes announced)");
        break;
      }
      report->bytes += len_bytes + static_cast<int64_t>(len);
      std::string raw;
      // The record as it was in the file, for the rejects file.
      uint64_t v = len;
      do {
        raw.push_back(static_cast<char>((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
        v >>= 7;
      } while (v);
      raw += buf;
      status = loader.Handle(buf, raw, "record " + std::to_string(record_no));
      if (!status.ok()) break;
      progress.Update(*report);
    }
  }
  Status finish = loader.Finish();
  report->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  progress.Update(*report, /*final=*/true);
  if (!status.ok()) return status.WithContext(path);
  return finish;
}

void PrintLoadReport(const LoadReport& r, std::FILE* out) {
  std::fprintf(out,
               "seg-load: %lld records read, %lld produced, %lld delivered, %lld rejected "
               "(not produced) in %.1f s\n",
               static_cast<long long>(r.records), static_cast<long long>(r.produced),
               static_cast<long long>(r.delivered), static_cast<long long>(r.rejected), r.seconds);
  for (const auto& [reason, count] : r.rejected_by_reason) {
    std::fprintf(out, "  rejected %-24s %lld\n", reason.c_str(), static_cast<long long>(count));
  }
  for (const auto& e : r.examples) std::fprintf(out, "  %s\n", e.c_str());
  if (r.rejected > static_cast<int64_t>(r.examples.size())) {
    std::fprintf(out, "  ... %lld more rejected\n",
                 static_cast<long long>(r.rejected - static_cast<int64_t>(r.examples.size())));
  }
  if (r.delivery_failures > 0) {
    std::fprintf(out, "  %lld records FAILED to reach Kafka\n",
                 static_cast<long long>(r.delivery_failures));
  }
}

int LoadMain(int argc, char** argv) {
  CLI::App app{"Load a JSON-lines or protobuf-delimited file of events into Kafka"};
  std::string file, bootstrap, topic, format = "auto", config_path, rejects, progress = "auto";
  std::vector<std::string> overrides;
  int64_t max_rejected = -1;
  app.add_option("file", file, "input file")->required();
  app.add_option("--bootstrap", bootstrap, "Kafka bootstrap servers (kafka.bootstrap_servers)");
  app.add_option("--topic", topic, "target topic (default events)");
  app.add_option("--format", format, "auto|json|proto")
      ->check(CLI::IsMember({"auto", "json", "proto"}));
  app.add_option("--config", config_path, "YAML config (kafka.*, ingest.validation.*)");
  app.add_option("--set", overrides, "key=value override (repeatable)");
  app.add_option("--rejects", rejects, "copy rejected records here verbatim");
  app.add_option("--max-rejected", max_rejected, "exit 3 when more records were rejected");
  app.add_option("--progress", progress, "auto|bar|lines|off")
      ->check(CLI::IsMember({"auto", "bar", "lines", "off"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  LoadOptions options;
  auto config = LoadBinaryConfig(config_path, overrides);
  if (!config.ok()) {
    std::fprintf(stderr, "seg-load: %s\n", config.status().ToString().c_str());
    return 2;
  }
  Status s = options.kafka.LoadFrom(*config, "kafka");
  if (s.ok()) s = options.validation.LoadFrom(*config, "ingest.validation");
  if (s.ok()) s = config->Get("topics.events", &options.topic);
  if (s.ok()) s = CheckConfigKeys(*config);
  if (!s.ok()) {
    std::fprintf(stderr, "seg-load: config: %s\n", s.ToString().c_str());
    return 2;
  }
  if (!bootstrap.empty()) options.kafka.bootstrap_servers = bootstrap;
  if (!topic.empty()) options.topic = topic;
  options.kafka.client_id = "seg-load";
  options.format = format == "json"    ? LoadFormat::kJsonLines
                   : format == "proto" ? LoadFormat::kProtoDelimited
                                       : LoadFormat::kAuto;
  options.progress = progress == "bar"     ? ProgressMode::kBar
                     : progress == "lines" ? ProgressMode::kLines
                     : progress == "off"   ? ProgressMode::kOff
                                           : ProgressMode::kAuto;
  options.rejects_path = rejects;

  LoadReport report;
  Status status = LoadFile(file, options, &report, stderr);
  PrintLoadReport(report, stderr);
  if (!status.ok()) {
    std::fprintf(stderr, "seg-load: %s\n", status.ToString().c_str());
    return 1;
  }
  if (max_rejected >= 0 && report.rejected > max_rejected) return 3;
  return 0;
}

}  // namespace seg::tools
