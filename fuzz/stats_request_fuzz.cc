// seg-stats request validation: a request message as gRPC would hand it to
// the service (protobuf bytes), into the query engine. Byte 0 picks the
// method (SegmentSize, Union, Intersection, SizeSeries); the rest is the
// request. Redis is a port that refuses connections, so a request that
// passes validation ends as UNAVAILABLE at its first round trip; anything
// else must be INVALID_ARGUMENT with a message, never a crash, an OK or an
// INTERNAL error, and a limit that is exceeded is named.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "fuzz/fuzz_support.h"
#include "stats/service/internal/stats_service_query.h"

namespace {

using seg::fuzz::Require;

namespace v1 = seg::stats::v1;
using seg::StatusCode;

// A loopback port bound but never listened on: connects are refused at
// once, and no other process can take the port while we hold it.
int RefusingPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    perror("stats_request_fuzz: bind");
    abort();
  }
  return ntohs(addr.sin_port);  // fd stays open for the life of the process
}

seg::stats::internal::QueryEngine* Engine() {
  static auto* engine = [] {
    seg::stats::StatsQueryOptions options;
    options.redis.node.port = RefusingPort();
    options.redis.node.connect_timeout_ms = 200;
    options.past_day_cache_ms = 0;
    return new seg::stats::internal::QueryEngine(options);
  }();
  return engine;
}

void Check(const seg::Status& s) {
  Require(!s.ok(), "a call without Redis succeeded", s.ToString());
  Require(s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kUnavailable,
          "unexpected code", s.ToString());
  Require(!s.message().empty(), "error without a message", s.ToString());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  auto* engine = Engine();
  const auto& opts = engine->options();
  const seg::stats::internal::CancelCheck not_cancelled = [] { return false; };
  const uint8_t method = data[0] % 4;
  const uint8_t* body = data + 1;
  const int body_size = static_cast<int>(size - 1);
  if (method == 0 || method == 3) {
    v1::SegmentSizeRequest req;
    if (!req.ParseFromArray(body, body_size)) return 0;
    seg::Status s = method == 0 ? engine->SegmentSize(req, not_cancelled).status()
                                : engine->SizeSeries(req, not_cancelled).status();
    Check(s);
  } else {
    v1::SegmentSetRequest req;
    if (!req.ParseFromArray(body, body_size)) return 0;
    seg::Status s = method == 1 ? engine->Union(req, not_cancelled).status()
                                : engine->Intersection(req, not_cancelled).status();
    Check(s);
    if (method == 1 && req.segments_size() > opts.max_union_segments) {
      Require(s.message().find("stats.max_union_segments") != std::string_view::npos,
              "an oversized union does not name its limit", s.ToString());
    }
  }
  return 0;
}
