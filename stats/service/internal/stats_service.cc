// The gRPC adapter of seg-stats: SegmentStats handlers over QueryEngine,
// bearer-token check, Status -> grpc::Status, health checking, reflection,
// optional TLS.
#include "stats/service/stats_service.h"

#include <glog/logging.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "common/clock.h"
#include "common/metrics.h"
#include "proto/stats.grpc.pb.h"
#include "stats/service/internal/stats_service_query.h"
#include "stats/writer/stats_writer.h"

namespace seg::stats {
namespace {

namespace v1 = ::seg::stats::v1;
using internal::CancelCheck;
using internal::QueryEngine;

grpc::Status ToGrpc(const Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(static_cast<int>(s.code())),
                      std::string(s.message()));
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

bool IsLoopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host == "[::1]" ||
         host.starts_with("127.");
}

StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgumentError("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class StatsServiceImpl final : public v1::SegmentStats::Service {
 public:
  StatsServiceImpl(const StatsQueryOptions& options, std::shared_ptr<UserStateLookup> users,
                   std::string bearer_token, int max_request_bytes)
      : engine_(options),
        users_(std::move(users)),
        token_(std::move(bearer_token)),
        max_request_bytes_(max_request_bytes) {}

  grpc::Status SegmentSize(grpc::ServerContext* ctx, const v1::SegmentSizeRequest* req,
                           v1::Estimate* reply) override {
    return Handle("SegmentSize", ctx, req, [&](const CancelCheck& c) -> Status {
      SEG_ASSIGN_OR_RETURN(*reply, engine_.SegmentSize(*req, c));
      return Status::OK();
    });
  }
  grpc::Status Union(grpc::ServerContext* ctx, const v1::SegmentSetRequest* req,
                     v1::Estimate* reply) override {
    return Handle("Union", ctx, req, [&](const CancelCheck& c) -> Status {
      SEG_ASSIGN_OR_RETURN(*reply, engine_.Union(*req, c));
      return Status::OK();
    });
  }
  grpc::Status Intersection(grpc::ServerContext* ctx, const v1::SegmentSetRequest* req,
                            v1::Estimate* reply) override {
    return Handle("Intersection", ctx, req, [&](const CancelCheck& c) -> Status {
      SEG_ASSIGN_OR_RETURN(*reply, engine_.Intersection(*req, c));
      return Status::OK();
    });
  }
  grpc::Status SizeSeries(grpc::ServerContext* ctx, const v1::SegmentSizeRequest* req,
                          v1::SizeSeriesReply* reply) override {
    return Handle("SizeSeries", ctx, req, [&](const CancelCheck& c) -> Status {
      SEG_ASSIGN_OR_RETURN(*reply, engine_.SizeSeries(*req, c));
      return Status::OK();
    });
  }
  grpc::Status ListSegments(grpc::ServerContext* ctx, const v1::ListSegmentsRequest* req,
                            v1::ListSegmentsReply* reply) override {
    return Handle("ListSegments", ctx, req, [&](const CancelCheck& c) -> Status {
      Day today = DayFromUnixMs(Clock::Real()->NowMs());
      SEG_ASSIGN_OR_RETURN(*reply, engine_.ListSegments(today, c));
      return Status::OK();
    });
  }
  grpc::Status UserSegments(grpc::ServerContext* ctx, const v1::UserSegmentsRequest* req,
                            v1::UserSegmentsReply* reply) override {
    return Handle("UserSegments", ctx, req, [&](const CancelCheck& c) -> Status {
      if (!users_) return UnimplementedError("this seg-stats has no store configured");
      if (req->user_id().empty()) return InvalidArgumentError("user_id is required");
      SEG_ASSIGN_OR_RETURN(SegmentState state, users_->Lookup(req->user_id()));
      if (c()) return DeadlineExceededError("deadline exceeded or call cancelled");
      reply->set_user_id(req->user_id());
      for (const auto& s : state.segments()) reply->add_segments(s);
      reply->set_script_set_version(state.script_set_version());
      reply->set_segmented_at_ms(state.segmented_at_ms());
      reply->set_data_watermark_ms(state.data_watermark_ms());
      return Status::OK();
    });
  }

 private:
  template <typename Fn>
  grpc::Status Handle(const char* method, grpc::ServerContext* ctx,
                      const google::protobuf::MessageLite* request, Fn&& fn) {
    int64_t start_us = Clock::Real()->MonotonicUs();
    Status s = Authenticate(ctx);
    if (s.ok() && request->ByteSizeLong() > static_cast<size_t>(max_request_bytes_)) {
      s = InvalidArgumentError("request of " + std::to_string(request->ByteSizeLong()) +
                               " bytes exceeds stats.server.max_request_bytes (" +
                               std::to_string(max_request_bytes_) + ")");
    } else if (s.ok()) {
      auto deadline = ctx->deadline();
      CancelCheck cancelled = [ctx, deadline] {
        return ctx->IsCancelled() || std::chrono::system_clock::now() > deadline;
      };
      if (cancelled()) {
        s = DeadlineExceededError("deadline exceeded before the call started");
      } else {
        s = fn(cancelled);
      }
    }
    metrics::Labels labels = {{"method", method}, {"code", std::string(StatusCodeName(s.code()))}};
    metrics::GetCounter("seg_stats_service_calls_total", "seg-stats calls by method and code",
                        labels)
        .Inc();
    metrics::GetHistogram("seg_stats_service_latency_seconds", "seg-stats call latency",
                          {{"method", method}})
        .Observe((Clock::Real()->MonotonicUs() - start_us) / 1e6);
    if (!s.ok() && s.code() != StatusCode::kNotFound && s.code() != StatusCode::kInvalidArgument) {
      LOG(WARNING) << "seg-stats " << method << ": " << s;
    }
    return ToGrpc(s);
  }

  Status Authenticate(grpc::ServerContext* ctx) const {
    if (token_.empty()) return Status::OK();
    const auto& md = ctx->client_metadata();
    auto it = md.find("authorization");
    if (it == md.end()) return UnauthenticatedError("missing authorization: Bearer <token>");
    std::string_view value(it->second.data(), it->second.size());
    constexpr std::string_view kPrefix = "Bearer ";
    if (!value.starts_with(kPrefix) || !ConstantTimeEquals(value.substr(kPrefix.size()), token_)) {
      return UnauthenticatedError("invalid bearer token");
    }
    return Status::OK();
  }

  QueryEngine engine_;
  std::shared_ptr<UserStateLookup> users_;
  std::string token_;
  int max_request_bytes_;
};

class StatsServerImpl final : public StatsServer {
 public:
  StatsServerImpl(std::unique_ptr<grpc::Service> service, std::unique_ptr<grpc::Server> server,
                  int port)
      : service_(std::move(service)), server_(std::move(server)), port_(port) {}
  ~StatsServerImpl() override { Shutdown(0); }

  int port() const override { return port_; }
  void Shutdown(int grace_ms) override {
    std::call_once(shutdown_once_, [&] {
      if (auto* health = server_->GetHealthCheckService()) health->Shutdown();
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(grace_ms));
    });
  }
  void Wait() override { server_->Wait(); }

 private:
  std::unique_ptr<grpc::Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_;
  std::once_flag shutdown_once_;
};

}  // namespace

Status StatsQueryOptions::LoadFrom(Config& config, std::string_view prefix) {
  std::string p(prefix);
  SEG_RETURN_IF_ERROR(LoadStatsKeyspace(config, prefix, &shards, &key_prefix, &registry_key));
  SEG_RETURN_IF_ERROR(config.Get(p + ".require_registered", &require_registered));
  SEG_RETURN_IF_ERROR(config.Get(p + ".max_days", &max_days));
  SEG_RETURN_IF_ERROR(config.Get(p + ".max_union_segments", &max_union_segments));
  SEG_RETURN_IF_ERROR(config.Get(p + ".max_intersection_segments", &max_intersection_segments));
  SEG_RETURN_IF_ERROR(config.Get(p + ".server_side_merge", &server_side_merge));
  SEG_RETURN_IF_ERROR(config.Get(p + ".intersection_estimator", &intersection_estimator));
  SEG_RETURN_IF_ERROR(config.Get(p + ".max_idle_connections", &max_idle_connections));
  SEG_RETURN_IF_ERROR(config.Get(p + ".past_day_cache_ms", &past_day_cache_ms));
  SEG_RETURN_IF_ERROR(config.Get(p + ".past_day_cache_max_keys", &past_day_cache_max_keys));
  if (intersection_estimator != "joint-mle" && intersection_estimator != "inclusion-exclusion") {
    return InvalidArgumentError(config.source() + ": " + p +
                                ".intersection_estimator: expected joint-mle or "
                                "inclusion-exclusion");
  }
  if (past_day_cache_ms < 0 || past_day_cache_max_keys < 0) {
    return InvalidArgumentError(config.source() + ": " + p +
                                ".past_day_cache_ms and .past_day_cache_max_keys must be >= 0");
  }
  if (max_days < 1)
    return InvalidArgumentError(config.source() + ": " + p + ".max_days must be >= 1");
  if (max_intersection_segments < 2 || max_intersection_segments > 12) {
    return InvalidArgumentError(config.source() + ": " + p +
                                ".max_intersection_segments must be 2..12");
  }
  return redis.LoadFrom(config, p + ".redis");
}

Status StatsServerOptions::LoadFrom(Config& config, std::string_view prefix) {
  std::string p(prefix);
  SEG_RETURN_IF_ERROR(config.Get(p + ".host", &host));
  SEG_RETURN_IF_ERROR(config.Get(p + ".port", &port));
  SEG_RETURN_IF_ERROR(config.Get(p + ".tls_cert_file", &tls_cert_file));
  SEG_RETURN_IF_ERROR(config.Get(p + ".tls_key_file", &tls_key_file));
  SEG_RETURN_IF_ERROR(config.Get(p + ".bearer_token", &bearer_token));
  SEG_RETURN_IF_ERROR(config.Get(p + ".allow_insecure_remote", &allow_insecure_remote));
  SEG_RETURN_IF_ERROR(config.Get(p + ".max_message_bytes", &max_message_bytes));
  SEG_RETURN_IF_ERROR(config.Get(p + ".max_request_bytes", &max_request_bytes));
  if (max_message_bytes < 1024 || max_request_bytes < 1 || max_request_bytes > max_message_bytes) {
    return InvalidArgumentError(config.source() + ": " + p +
                                ".max_message_bytes must be >= 1024 and " + p +
                                ".max_request_bytes 1..max_message_bytes");
  }
  return Status::OK();
}

std::unique_ptr<grpc::Service> NewStatsGrpcService(const StatsQueryOptions& options,
                                                   std::shared_ptr<UserStateLookup> users) {
  return std::make_unique<StatsServiceImpl>(options, std::move(users), "",
                                            StatsServerOptions().max_request_bytes);
}

StatusOr<std::unique_ptr<StatsServer>> StartStatsServer(const StatsServerOptions& server,
                                                        const StatsQueryOptions& query,
                                                        std::shared_ptr<UserStateLookup> users) {
  if (server.port < 0 || server.port > 65535) {
    return InvalidArgumentError("stats server port must be 0..65535");
  }
  const bool tls = !server.tls_cert_file.empty() || !server.tls_key_file.empty();
  if (tls && (server.tls_cert_file.empty() || server.tls_key_file.empty())) {
    return InvalidArgumentError("TLS needs both tls_cert_file and tls_key_file");
  }
  if (!IsLoopback(server.host) && !server.allow_insecure_remote &&
      (!tls || server.bearer_token.empty())) {
    return InvalidArgumentError("refusing to serve on " + server.host +
                                " without TLS and a bearer token (set allow_insecure_remote to "
                                "override)");
  }
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (tls) {
    SEG_ASSIGN_OR_RETURN(std::string cert, ReadFile(server.tls_cert_file));
    SEG_ASSIGN_OR_RETURN(std::string key, ReadFile(server.tls_key_file));
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({key, cert});
    creds = grpc::SslServerCredentials(ssl);
  } else {
    creds = grpc::InsecureServerCredentials();
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  auto service = std::make_unique<StatsServiceImpl>(query, std::move(users), server.bearer_token,
                                                    server.max_request_bytes);
  grpc::ServerBuilder builder;
  std::string host = server.host;
  if (host.find(':') != std::string::npos && !host.starts_with("[")) host = "[" + host + "]";
  int bound_port = 0;
  builder.AddListeningPort(host + ":" + std::to_string(server.port), creds, &bound_port);
  builder.RegisterService(service.get());
  builder.SetMaxReceiveMessageSize(server.max_message_bytes);
  builder.SetMaxSendMessageSize(server.max_message_bytes);
  std::unique_ptr<grpc::Server> grpc_server = builder.BuildAndStart();
  if (!grpc_server || bound_port == 0) {
    return UnavailableError("cannot listen on " + host + ":" + std::to_string(server.port));
  }
  if (auto* health = grpc_server->GetHealthCheckService()) {
    health->SetServingStatus(true);
    health->SetServingStatus(v1::SegmentStats::service_full_name(), true);
  }
  LOG(INFO) << "seg-stats listening on " << host << ":" << bound_port << (tls ? " (TLS)" : "")
            << (server.bearer_token.empty() ? "" : " (bearer token required)");
  return std::unique_ptr<StatsServer>(
      new StatsServerImpl(std::move(service), std::move(grpc_server), bound_port));
}

}  // namespace seg::stats
