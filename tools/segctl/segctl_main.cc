// segctl: the analysts' command line on the seg-stats gRPC API.
//
//   segctl [--target 127.0.0.1:7710] [--json] size cats --from 2024-05-01 --to 2024-05-30
//   segctl union cats dogs --last 30
//   segctl overlap women mortgage novosibirsk --last 7
//   segctl series cats --last 30 --svg cats.svg
//   segctl segments
//   segctl user u123
//   segctl forget u123 u456 | --file ids.txt     (tools/segctl/forget.h)
//   segctl stats expire-sweep [--config seg.yaml]
//   segctl stats rebuild [--config seg.yaml] [--store HOST:PORT]   (after Redis lost data)
//   segctl scripts push DIR | status   (the script set in the store: --store HOST:PORT)
//   segctl check-config --config seg.yaml   (or --check-config: the keys segctl reads)
//
// Readable tables by default, --json for scripts (one JSON object per call).
// Exit status: 0 success, 1 the server answered an error (printed as
// "segctl: NOT_FOUND: ..."), 2 bad command line.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>

#include "proto/stats.grpc.pb.h"
#include "tools/segctl/forget.h"
#include "tools/segctl/load.h"
#include "tools/segctl/render.h"
#include "tools/segctl/scripts.h"

namespace seg::segctl {
namespace {

struct GlobalOptions {
  std::string target = "127.0.0.1:7710";
  bool json = false;
  std::string token;       // bearer token; default $SEG_STATS_TOKEN
  bool tls = false;        // TLS channel
  std::string ca_file;     // PEM roots for TLS; empty = system roots
  int timeout_ms = 10000;  // per call deadline
};

struct DayOptions {
  std::string from;
  std::string to;
  int last = 0;  // N days ending today (UTC)
};

std::string UtcDay(int days_ago) {
  time_t now = time(nullptr) - static_cast<time_t>(days_ago) * 86400;
  struct tm tm;
  gmtime_r(&now, &tm);
  char buf[16];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d", &tm);
  return buf;
}

void AddDayOptions(CLI::App* cmd, DayOptions* days) {
  cmd->add_option("--from", days->from, "first day, YYYY-MM-DD (default: today UTC)");
  cmd->add_option("--to", days->to, "last day, inclusive (default: --from)");
  cmd->add_option("--last", days->last, "the N days ending today (UTC); overrides --from/--to")
      ->check(CLI::Range(1, 100000));
}

stats::v1::DayRange ToRange(const DayOptions& d) {
  stats::v1::DayRange r;
  if (d.last > 0) {
    r.set_from(UtcDay(d.last - 1));
    r.set_to(UtcDay(0));
  } else {
    r.set_from(d.from.empty() ? UtcDay(0) : d.from);
    r.set_to(d.to);
  }
  return r;
}

std::string RangeLabel(const stats::v1::DayRange& r) {
  if (r.to().empty() || r.to() == r.from()) return r.from();
  return r.from() + ".." + r.to();
}

std::string Join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? std::string(sep) : "") + v[i];
  return out;
}

class Client {
 public:
  explicit Client(const GlobalOptions& g) : g_(g) {
    std::shared_ptr<grpc::ChannelCredentials> creds;
    if (g.tls) {
      grpc::SslCredentialsOptions ssl;
      if (!g.ca_file.empty()) {
        std::ifstream in(g.ca_file);
        std::stringstream ss;
        ss << in.rdbuf();
        ssl.pem_root_certs = ss.str();
      }
      creds = grpc::SslCredentials(ssl);
    } else {
      creds = grpc::InsecureChannelCredentials();
    }
    stub_ = stats::v1::SegmentStats::NewStub(grpc::CreateChannel(g.target, creds));
  }

  void Prepare(grpc::ClientContext* ctx) const {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(g_.timeout_ms));
    if (!g_.token.empty()) ctx->AddMetadata("authorization", "Bearer " + g_.token);
  }
  stats::v1::SegmentStats::Stub* stub() { return stub_.get(); }

 private:
  GlobalOptions g_;
  std::unique_ptr<stats::v1::SegmentStats::Stub> stub_;
};

int Fail(const grpc::Status& s) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  int code = static_cast<int>(s.error_code());
  std::cerr << "segctl: " << (code >= 0 && code <= 16 ? kNames[code] : "ERROR") << ": "
            << s.error_message() << "\n";
  return 1;
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{"segctl: segment sizes, unions, overlaps and series from seg-stats"};
  app.require_subcommand(1);
  GlobalOptions g;
  if (const char* t = std::getenv("SEG_STATS_TOKEN")) g.token = t;
  app.add_option("--target", g.target, "seg-stats address host:port")->capture_default_str();
  app.add_flag("--json", g.json, "print JSON instead of a table");
  app.add_option("--token", g.token, "bearer token (default: $SEG_STATS_TOKEN)");
  app.add_flag("--tls", g.tls, "connect with TLS");
  app.add_option("--ca", g.ca_file, "PEM CA certificates for --tls");
  app.add_option("--timeout-ms", g.timeout_ms, "deadline per call")->capture_default_str();

  std::string segment;
  std::vector<std::string> segments;
  DayOptions days;
  std::string svg_file;
  std::string user_id;

  auto* size = app.add_subcommand("size", "unique users of one segment over a day range");
  size->add_option("segment", segment)->required();
  AddDayOptions(size, &days);

  auto* uni = app.add_subcommand("union", "unique users in any of the segments");
  uni->add_option("segments", segments)->required();
  AddDayOptions(uni, &days);

  auto* overlap = app.add_subcommand("overlap", "unique users in all of 2..12 segments");
  overlap->add_option("segments", segments)->required()->expected(2, 12);
  AddDayOptions(overlap, &days);

  auto* series = app.add_subcommand("series", "size per day, with a sparkline");
  series->add_option("segment", segment)->required();
  AddDayOptions(series, &days);
  series->add_option("--svg", svg_file, "also write an SVG chart with the 95% band");

  auto* list = app.add_subcommand("segments", "known segments with today's size");
  auto* user = app.add_subcommand("user", "a user's current segments");
  user->add_option("user_id", user_id)->required();

  // `segctl load FILE ...` is handed whole to LoadMain (load.h; see main()
  // below); listed here for --help only.
  app.add_subcommand("load", "load a partner file of events into Kafka (see segctl load --help)")
      ->allow_extras();
  // Handed whole to ForgetMain / StatsAdminMain (see main()); --help only.
  app.add_subcommand("forget", "delete everything about users (see segctl forget --help)")
      ->allow_extras();
  app.add_subcommand("stats",
                     "stats key maintenance: expire-sweep, rebuild (see segctl stats --help)")
      ->allow_extras();
  app.add_subcommand("topics", "create the product's Kafka topics (see segctl topics --help)")
      ->allow_extras();
  app.add_subcommand("check-config",
                     "validate --config FILE for segctl's subcommands (also --check-config)")
      ->allow_extras();
  // `segctl scripts ...` is handed to ScriptsMain (see main()); --help only.
  app.add_subcommand("scripts",
                     "push or inspect the cluster's segment scripts (see segctl "
                     "scripts --help)")
      ->allow_extras();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  Client client(g);
  grpc::ClientContext ctx;
  client.Prepare(&ctx);

  if (size->parsed() || uni->parsed() || overlap->parsed()) {
    stats::v1::Estimate reply;
    grpc::Status s;
    std::string label;
    if (size->parsed()) {
      stats::v1::SegmentSizeRequest req;
      req.set_segment(segment);
      *req.mutable_days() = ToRange(days);
      label = segment + " " + RangeLabel(req.days());
      s = client.stub()->SegmentSize(&ctx, req, &reply);
    } else {
      stats::v1::SegmentSetRequest req;
      for (const auto& x : segments) req.add_segments(x);
      *req.mutable_days() = ToRange(days);
      std::string op = uni->parsed() ? " | " : " & ";
      label = Join(segments, op) + " " + RangeLabel(req.days());
      s = uni->parsed() ? client.stub()->Union(&ctx, req, &reply)
                        : client.stub()->Intersection(&ctx, req, &reply);
    }
    if (!s.ok()) return Fail(s);
    std::cout << (g.json ? RenderJson(reply) + "\n" : RenderEstimateTable(label, reply));
    return 0;
  }
  if (series->parsed()) {
    stats::v1::SegmentSizeRequest req;
    req.set_segment(segment);
    *req.mutable_days() = ToRange(days);
    stats::v1::SizeSeriesReply reply;
    grpc::Status s = client.stub()->SizeSeries(&ctx, req, &reply);
    if (!s.ok()) return Fail(s);
    std::cout << (g.json ? RenderJson(reply) + "\n" : RenderSeriesTable(segment, reply));
    if (!svg_file.empty()) {
      Status w =
          WriteFile(svg_file, RenderSeriesSvg(segment + " " + RangeLabel(req.days()), reply));
      if (!w.ok()) {
        std::cerr << "segctl: " << w << "\n";
        return 1;
      }
      if (!g.json) std::cout << "chart written to " << svg_file << "\n";
    }
    return 0;
  }
  if (list->parsed()) {
    stats::v1::ListSegmentsReply reply;
    grpc::Status s = client.stub()->ListSegments(&ctx, stats::v1::ListSegmentsRequest(), &reply);
    if (!s.ok()) return Fail(s);
    std::cout << (g.json ? RenderJson(reply) + "\n" : RenderSegmentsTable(reply));
    return 0;
  }
  if (user->parsed()) {
    stats::v1::UserSegmentsRequest req;
    req.set_user_id(user_id);
    stats::v1::UserSegmentsReply reply;
    grpc::Status s = client.stub()->UserSegments(&ctx, req, &reply);
    if (!s.ok()) return Fail(s);
    std::cout << (g.json ? RenderJson(reply) + "\n" : RenderUserTable(reply));
    return 0;
  }
  return 2;
}

}  // namespace seg::segctl

int main(int argc, char** argv) {
  // segctl load FILE [flags]: argv[0] becomes "load" for LoadMain.
  if (argc > 1 && std::string_view(argv[1]) == "load") {
    return seg::tools::LoadMain(argc - 1, argv + 1);
  }
  if (argc > 1 && std::string_view(argv[1]) == "forget") {
    return seg::tools::ForgetMain(argc - 1, argv + 1);
  }
  if (argc > 1 && std::string_view(argv[1]) == "stats") {
    return seg::tools::StatsAdminMain(argc - 1, argv + 1);
  }
  if (argc > 1 && std::string_view(argv[1]) == "topics") {
    return seg::tools::TopicsMain(argc - 1, argv + 1);
  }
  if (argc > 1 && (std::string_view(argv[1]) == "check-config" ||
                   std::string_view(argv[1]) == "--check-config")) {
    return seg::tools::CheckConfigMain(argc - 1, argv + 1);
  }
  if (argc > 1 && std::string_view(argv[1]) == "scripts") {
    return seg::tools::ScriptsMain(argc - 1, argv + 1);
  }
  return seg::segctl::Main(argc, argv);
}
