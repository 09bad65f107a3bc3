#include "common/redis.h"

#include <hiredis/hiredis.h>
#include <hiredis/sds.h>
#include <signal.h>
#include <sys/time.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>

#include <glog/logging.h>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/metrics.h"

namespace seg {
namespace {

std::string Join(std::string_view prefix, std::string_view key) {
  return prefix.empty() ? std::string(key) : std::string(prefix) + "." + std::string(key);
}

timeval ToTimeval(int ms) {
  timeval tv{};
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  return tv;
}

RedisReply Convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default:
      out.type = RedisReply::Type::kNil;
  }
  return out;
}

// hiredis 0.14 writes with write(2), so a peer that closed the socket raises
// SIGPIPE, which would kill the process. Block it on this thread while we
// talk to the server and swallow any SIGPIPE we caused; the process-wide
// disposition stays the application's business.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_set_);
    sigaddset(&pipe_set_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_set_, &old_mask_);
  }
  ~SigpipeGuard() {
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        timespec zero{0, 0};
        while (sigtimedwait(&pipe_set_, nullptr, &zero) == -1 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  }

 private:
  sigset_t pipe_set_;
  sigset_t old_mask_;
  bool was_pending_ = false;
};

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextDeleter>;

struct ReplyDeleter {
  void operator()(void* r) const { freeReplyObject(r); }
};

}  // namespace

// ---------------------------------------------------------------------------
// RedisOptions / RedisReply

Status RedisOptions::LoadFrom(Config& config, std::string_view prefix) {
  SEG_RETURN_IF_ERROR(config.Get(Join(prefix, "host"), &host));
  SEG_RETURN_IF_ERROR(config.Get(Join(prefix, "port"), &port));
  SEG_RETURN_IF_ERROR(config.Get(Join(prefix, "username"), &username));
  SEG_RETURN_IF_ERROR(config.Get(Join(prefix, "password"), &password));
  SEG_RETURN_IF_ERROR(config.Get(Join(prefix, "db"), &db));
  SEG_RETURN_IF_ERROR(config.Get(Join(prefix, "connect_timeout_ms"), &connect_timeout_ms));
  SEG_RETURN_IF_ERROR(config.Get(Join(prefix, "command_timeout_ms"), &command_timeout_ms));
  SEG_RETURN_IF_ERROR(config.Get(Join(prefix, "reconnect_initial_ms"), &reconnect_initial_ms));
  SEG_RETURN_IF_ERROR(config.Get(Join(prefix, "reconnect_max_ms"), &reconnect_max_ms));
  if (port <= 0 || port > 65535) {
    return InvalidArgumentError(Join(prefix, "port") + ": out of range: " + std::to_string(port));
  }
  if (connect_timeout_ms <= 0 || command_timeout_ms <= 0) {
    return InvalidArgumentError(std::string(prefix) + ": timeouts must be positive");
  }
  return Status::OK();
}

RedisReply RedisReply::Integer(int64_t v) {
  RedisReply r;
  r.type = Type::kInteger;
  r.integer = v;
  return r;
}
RedisReply RedisReply::String(std::string s) {
  RedisReply r;
  r.type = Type::kString;
  r.str = std::move(s);
  return r;
}
RedisReply RedisReply::Error(std::string s) {
  RedisReply r;
  r.type = Type::kError;
  r.str = std::move(s);
  return r;
}

Status RedisErrorToStatus(std::string_view error) {
  auto starts = [&](std::string_view p) { return error.substr(0, p.size()) == p; };
  std::string message = "redis: " + std::string(error);
  if (starts("WRONGPASS") || starts("NOAUTH")) return UnauthenticatedError(message);
  if (starts("NOPERM")) return PermissionDeniedError(message);
  if (starts("NOSCRIPT")) return NotFoundError(message);
  if (starts("LOADING") || starts("BUSY") || starts("MASTERDOWN") || starts("TRYAGAIN") ||
      starts("CLUSTERDOWN")) {
    return UnavailableError(message);
  }
  if (starts("MOVED") || starts("ASK")) return AbortedError(message);
  return FailedPreconditionError(message);
}

Status RedisReply::ToStatus() const { return is_error() ? RedisErrorToStatus(str) : Status::OK(); }

std::string RedisReply::DebugString() const {
  switch (type) {
    case Type::kNil:
      return "(nil)";
    case Type::kInteger:
      return "(integer) " + std::to_string(integer);
    case Type::kString:
      return "\"" + str + "\"";
    case Type::kStatus:
      return str;
    case Type::kError:
      return "(error) " + str;
    case Type::kArray: {
      std::string out = "[";
      for (size_t i = 0; i < elements.size(); ++i) {
        if (i > 0) out += ", ";
        out += elements[i].DebugString();
      }
      return out + "]";
    }
  }
  return "?";
}

// ---------------------------------------------------------------------------
// RedisConnection

struct RedisConnection::Impl {
  explicit Impl(const RedisOptions& o)
      : options(o),
        backoff(BackoffOptions{o.reconnect_initial_ms, o.reconnect_max_ms}),
        command_latency(metrics::GetHistogram("seg_redis_command_latency_seconds",
                                              "Redis round-trip latency", {{"op", "command"}})),
        pipeline_latency(metrics::GetHistogram("seg_redis_command_latency_seconds",
                                               "Redis round-trip latency", {{"op", "pipeline"}})),
        errors_unavailable(metrics::GetCounter("seg_redis_errors_total", "Redis errors",
                                               {{"kind", "unavailable"}})),
        errors_timeout(
            metrics::GetCounter("seg_redis_errors_total", "Redis errors", {{"kind", "timeout"}})),
        errors_auth(
            metrics::GetCounter("seg_redis_errors_total", "Redis errors", {{"kind", "auth"}})),
        errors_protocol(
            metrics::GetCounter("seg_redis_errors_total", "Redis errors", {{"kind", "protocol"}})),
        errors_reply(metrics::GetCounter("seg_redis_errors_total", "Redis errors",
                                         {{"kind", "error_reply"}})),
        reconnect_counter(metrics::GetCounter("seg_redis_reconnects_total",
                                              "Redis reconnects after a failure")) {}

  // Why a round trip failed, and whether resending is safe.
  struct Failure {
    Status status;
    bool resendable = false;  // connection broke before any reply arrived
  };

  std::string Where() const { return "redis " + options.Address(); }

  // Opens a socket, AUTHs and SELECTs. On failure ctx stays null.
  Status Dial() {
    ctx.reset();
    ContextPtr c(redisConnectWithTimeout(options.host.c_str(), options.port,
                                         ToTimeval(options.connect_timeout_ms)));
    if (c == nullptr) return ResourceExhaustedError(Where() + ": cannot allocate context");
    if (c->err) {
      // Refused, unreachable or connect timeout alike: the server is not available.
      errors_unavailable.Inc();
      return UnavailableError(Where() + ": connect: " + c->errstr);
    }
    if (redisSetTimeout(c.get(), ToTimeval(options.command_timeout_ms)) != REDIS_OK) {
      return InternalError(Where() + ": cannot set socket timeout");
    }
    redisEnableKeepAlive(c.get());
    ctx = std::move(c);

    std::vector<RedisArgv> setup;
    if (!options.password.empty()) {
      if (options.username.empty()) {
        setup.push_back({"AUTH", options.password});
      } else {
        setup.push_back({"AUTH", options.username, options.password});
      }
    }
    if (options.db != 0) setup.push_back({"SELECT", std::to_string(options.db)});
    if (setup.empty()) return Status::OK();
    std::vector<const RedisArgv*> commands;
    for (const auto& c : setup) commands.push_back(&c);
    Failure failure;
    auto replies = RoundTrip(commands, &failure);
    if (!replies.ok()) return replies.status().WithContext("connect");
    for (size_t i = 0; i < replies->size(); ++i) {
      const RedisReply& r = (*replies)[i];
      if (!r.is_error()) continue;
      ctx.reset();
      // Never echo the password; the server's message says what was wrong.
      if (setup[i][0] == "AUTH") {
        errors_auth.Inc();
        return UnauthenticatedError(Where() + ": AUTH" +
                                    (options.username.empty() ? "" : " as " + options.username) +
                                    " refused: " + r.str);
      }
      return RedisErrorToStatus(r.str).WithContext(Where() + ": SELECT " +
                                                   std::to_string(options.db));
    }
    return Status::OK();
  }

  // (Re)connects unless a backoff window from earlier failures is still open.
  Status Reconnect(bool ignore_backoff) {
    int64_t now = Clock::Real()->MonotonicUs();
    if (!ignore_backoff && now < next_attempt_us) {
      errors_unavailable.Inc();
      return UnavailableError(Where() + ": down (" + std::to_string(backoff.attempts()) +
                              " failed reconnects), next attempt in " +
                              std::to_string((next_attempt_us - now) / 1000) + " ms");
    }
    Status s = Dial();
    if (!s.ok()) {
      next_attempt_us = Clock::Real()->MonotonicUs() + backoff.NextDelayMs() * 1000;
      LOG_EVERY_N(WARNING, 20) << "reconnect failed: " << s;
      return s;
    }
    backoff.Reset();
    next_attempt_us = 0;
    ++reconnects;
    reconnect_counter.Inc();
    LOG(INFO) << Where() << ": reconnected";
    return Status::OK();
  }

  static constexpr size_t kFlushEvery = 256;
  static constexpr size_t kFlushBytes = 32 * 1024;

  // Writes out everything appended so far. On failure the socket is dropped
  // and, as nothing was read yet, the pipeline may be resent.
  bool Flush(Failure* failure) {
    SigpipeGuard guard;
    int done = 0;
    while (!done) {
      if (redisBufferWrite(ctx.get(), &done) != REDIS_OK) {
        std::string errstr = ctx->errstr;
        ctx.reset();
        errors_unavailable.Inc();
        failure->resendable = true;
        failure->status = UnavailableError(Where() + ": write: " + errstr);
        return false;
      }
    }
    return true;
  }

  // RESP of one command ("*<n>\r\n" then "$<len>\r\n<arg>\r\n" per argument)
  // into `out`: what redisAppendCommandArgv would send, without its
  // printf-style formatting per argument (a fifth of a client's CPU when a
  // command carries thousands of arguments, as the stats writer's do).
  static void FormatCommand(const RedisArgv& cmd, std::string* out) {
    // Lead byte, up to 20 digits and "\r\n"; then the argument and "\r\n".
    constexpr size_t kNumber = 1 + 20 + 2;
    size_t size = kNumber;
    for (const auto& a : cmd) size += kNumber + a.size() + 2;
    out->resize(size);
    char* p = out->data();
    auto number = [&](char lead, size_t n) {
      *p++ = lead;
      p = std::to_chars(p, p + 20, n).ptr;
      *p++ = '\r';
      *p++ = '\n';
    };
    number('*', cmd.size());
    for (const auto& a : cmd) {
      number('$', a.size());
      std::memcpy(p, a.data(), a.size());
      p += a.size();
      *p++ = '\r';
      *p++ = '\n';
    }
    out->resize(static_cast<size_t>(p - out->data()));
  }

  // Appends every command, then reads every reply. Any transport error drops
  // the socket (its state is unknown) and is described in `failure`.
  StatusOr<std::vector<RedisReply>> RoundTrip(std::span<const RedisArgv* const> commands,
                                              Failure* failure) {
    size_t appended = 0;
    for (const RedisArgv* command : commands) {
      const RedisArgv& cmd = *command;
      FormatCommand(cmd, &formatted);
      if (cmd.empty() ||
          redisAppendFormattedCommand(ctx.get(), formatted.data(), formatted.size()) != REDIS_OK) {
        ctx.reset();  // half-appended output buffer: start over on a fresh socket
        return InvalidArgumentError(Where() +
                                    (cmd.empty() ? ": empty command" : ": append failed"));
      }
      // Long pipelines go out in pieces, so the server works on the first
      // commands while the rest are formatted (it idled through that before);
      // a few large commands (batched FCALLs) go out one by one.
      if ((++appended % kFlushEvery == 0 || sdslen(ctx->obuf) >= kFlushBytes) && !Flush(failure)) {
        return failure->status;
      }
    }
    SigpipeGuard guard;
    std::vector<RedisReply> out;
    out.reserve(commands.size());
    for (size_t i = 0; i < commands.size(); ++i) {
      void* raw = nullptr;
      errno = 0;
      if (redisGetReply(ctx.get(), &raw) != REDIS_OK || raw == nullptr) {
        int saved_errno = errno;
        int err = ctx->err;
        std::string errstr = ctx->errstr;
        ctx.reset();
        failure->resendable = (i == 0) && err != REDIS_ERR_PROTOCOL;
        std::string what = Where() + ": " + (*commands[i])[0] + " (" + std::to_string(i + 1) + "/" +
                           std::to_string(commands.size()) + "): ";
        if (err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)) {
          errors_timeout.Inc();
          failure->resendable = false;  // the server may still be working on it
          failure->status = DeadlineExceededError(
              what + "no reply within " + std::to_string(options.command_timeout_ms) + " ms");
        } else if (err == REDIS_ERR_PROTOCOL || err == REDIS_ERR_OOM) {
          errors_protocol.Inc();
          failure->status = InternalError(what + errstr);
        } else {
          errors_unavailable.Inc();
          failure->status = UnavailableError(what + "connection lost: " + errstr);
        }
        return failure->status;
      }
      std::unique_ptr<void, ReplyDeleter> holder(raw);
      out.push_back(Convert(static_cast<redisReply*>(raw)));
      if (out.back().is_error()) errors_reply.Inc();
    }
    return out;
  }

  StatusOr<std::vector<RedisReply>> Execute(std::span<const RedisArgv* const> commands) {
    if (commands.empty()) return std::vector<RedisReply>{};
    for (const RedisArgv* cmd : commands) {
      if (cmd->empty()) return InvalidArgumentError(Where() + ": empty command");
    }
    bool fresh = false;
    if (!ctx) {
      SEG_RETURN_IF_ERROR(Reconnect(/*ignore_backoff=*/false));
      fresh = true;
    }
    Failure failure;
    auto replies = RoundTrip(commands, &failure);
    if (replies.ok() || !failure.resendable || fresh) return replies;
    // The connection was stale (server restarted, idle socket dropped): one
    // fresh connection and one resend, so callers do not see every restart.
    VLOG(1) << "resending after " << failure.status;
    Status reconnect = Reconnect(/*ignore_backoff=*/true);
    if (!reconnect.ok()) {
      return UnavailableError(std::string(failure.status.message()) +
                              "; reconnect failed: " + std::string(reconnect.message()));
    }
    return RoundTrip(commands, &failure);
  }

  RedisOptions options;
  ContextPtr ctx;
  std::string formatted;  // FormatCommand's buffer, reused
  Backoff backoff;
  int64_t next_attempt_us = 0;
  int64_t reconnects = 0;
  metrics::Histogram command_latency;
  metrics::Histogram pipeline_latency;
  metrics::Counter errors_unavailable;
  metrics::Counter errors_timeout;
  metrics::Counter errors_auth;
  metrics::Counter errors_protocol;
  metrics::Counter errors_reply;
  metrics::Counter reconnect_counter;
};

RedisConnection::RedisConnection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RedisConnection::~RedisConnection() = default;

StatusOr<std::unique_ptr<RedisConnection>> RedisConnection::Connect(const RedisOptions& options) {
  if (options.connect_timeout_ms <= 0 || options.command_timeout_ms <= 0) {
    return InvalidArgumentError("redis: timeouts must be positive");
  }
  auto impl = std::make_unique<Impl>(options);
  SEG_RETURN_IF_ERROR(impl->Dial());
  return std::unique_ptr<RedisConnection>(new RedisConnection(std::move(impl)));
}

StatusOr<RedisReply> RedisConnection::Command(const RedisArgv& argv) {
  int64_t start = Clock::Real()->MonotonicUs();
  const RedisArgv* command = &argv;
  auto replies = impl_->Execute({&command, 1});
  impl_->command_latency.Observe((Clock::Real()->MonotonicUs() - start) / 1e6);
  if (!replies.ok()) return replies.status();
  return std::move((*replies)[0]);
}

StatusOr<std::vector<RedisReply>> RedisConnection::Pipeline(
    const std::vector<RedisArgv>& commands) {
  std::vector<const RedisArgv*> pointers;
  pointers.reserve(commands.size());
  for (const auto& c : commands) pointers.push_back(&c);
  return PipelineRefs(pointers);
}

StatusOr<std::vector<RedisReply>> RedisConnection::PipelineRefs(
    std::span<const RedisArgv* const> commands) {
  int64_t start = Clock::Real()->MonotonicUs();
  auto replies = impl_->Execute(commands);
  impl_->pipeline_latency.Observe((Clock::Real()->MonotonicUs() - start) / 1e6);
  return replies;
}

bool RedisConnection::connected() const { return impl_->ctx != nullptr; }
void RedisConnection::Close() { impl_->ctx.reset(); }
const RedisOptions& RedisConnection::options() const { return impl_->options; }
int64_t RedisConnection::reconnects() const { return impl_->reconnects; }

}  // namespace seg
