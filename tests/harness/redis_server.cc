#include "tests/harness/redis_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <glog/logging.h>

#ifndef SEG_REDIS_SERVER
#define SEG_REDIS_SERVER ""
#endif

namespace seg::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

std::string RedisServerBinary() {
  std::string configured = SEG_REDIS_SERVER;
  // CMake leaves "REDIS_SERVER-NOTFOUND" when find_program failed.
  if (!configured.empty() && configured.find("NOTFOUND") == std::string::npos &&
      access(configured.c_str(), X_OK) == 0) {
    return configured;
  }
  return "redis-server";  // execvp searches PATH
}

// A blocking loopback socket with send/receive timeouts and a read buffer:
// just enough RESP to PING, AUTH and set up a cluster.
class MiniClient {
 public:
  ~MiniClient() {
    if (fd_ >= 0) close(fd_);
  }

  Status Connect(int port, milliseconds timeout) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return InternalError("socket failed");
    timeval tv{};
    tv.tv_sec = timeout.count() / 1000;
    tv.tv_usec = (timeout.count() % 1000) * 1000;
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return UnavailableError("connect 127.0.0.1:" + std::to_string(port) + " failed");
    }
    return Status::OK();
  }

  StatusOr<std::string> Call(const std::vector<std::string>& argv) {
    std::string out = "*" + std::to_string(argv.size()) + "\r\n";
    for (const auto& a : argv) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    size_t sent = 0;
    while (sent < out.size()) {
      ssize_t n = send(fd_, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return UnavailableError("send failed");
      sent += n;
    }
    return ReadReply();
  }

 private:
  StatusOr<std::string> ReadLine() {
    while (true) {
      size_t pos = buf_.find("\r\n");
      if (pos != std::string::npos) {
        std::string line = buf_.substr(0, pos);
        buf_.erase(0, pos + 2);
        return line;
      }
      SEG_RETURN_IF_ERROR(Fill());
    }
  }
  Status Fill() {
    char tmp[4096];
    ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
    if (n == 0) return UnavailableError("connection closed");
    if (n < 0) return DeadlineExceededError("recv failed or timed out");
    buf_.append(tmp, n);
    return Status::OK();
  }
  StatusOr<std::string> ReadReply() {
    SEG_ASSIGN_OR_RETURN(std::string line, ReadLine());
    if (line.empty()) return InternalError("empty RESP line");
    char type = line[0];
    std::string rest = line.substr(1);
    switch (type) {
      case '+':
      case ':':
        return rest;
      case '-':
        return FailedPreconditionError(rest);
      case '$': {
        long len = std::stol(rest);
        if (len < 0) return std::string("(nil)");
        while (buf_.size() < static_cast<size_t>(len) + 2) SEG_RETURN_IF_ERROR(Fill());
        std::string s = buf_.substr(0, len);
        buf_.erase(0, len + 2);
        return s;
      }
      case '*': {
        long n = std::stol(rest);
        if (n < 0) return std::string("(nil)");
        std::string joined;
        Status first_error;
        for (long i = 0; i < n; ++i) {
          auto element = ReadReply();
          if (!element.ok()) {
            // Keep reading the array so the stream stays in sync.
            if (element.status().code() != StatusCode::kFailedPrecondition) return element;
            if (first_error.ok()) first_error = element.status();
            continue;
          }
          if (i > 0) joined += "\n";
          joined += *element;
        }
        if (!first_error.ok()) return first_error;
        return joined;
      }
      default:
        return InternalError("unexpected RESP type '" + std::string(1, type) + "'");
    }
  }

  int fd_ = -1;
  std::string buf_;
};

}  // namespace

StatusOr<std::string> RedisCommandForTest(int port, const std::vector<std::string>& argv,
                                          const std::string& password, milliseconds timeout) {
  MiniClient client;
  SEG_RETURN_IF_ERROR(client.Connect(port, timeout));
  if (!password.empty()) {
    auto auth = client.Call({"AUTH", password});
    if (!auth.ok()) return auth.status();
  }
  return client.Call(argv);
}

LocalRedis::LocalRedis(LocalRedisOptions options) : options_(std::move(options)) {
  log_path_ = dir_.path() + "/redis.log";
}

LocalRedis::~LocalRedis() {
  Resume();  // a stopped process must be continued to see SIGTERM; SIGKILL follows anyway
  Kill();
}

StatusOr<std::unique_ptr<LocalRedis>> LocalRedis::Start(LocalRedisOptions options) {
  std::unique_ptr<LocalRedis> redis(new LocalRedis(std::move(options)));
  Status last;
  // PickFreePort is racy: another test may grab the port first, so try a few.
  for (int attempt = 0; attempt < 5; ++attempt) {
    redis->port_ = PickFreePort();
    redis->bus_port_ = redis->options_.cluster ? PickFreePort() : 0;
    if (redis->port_ <= 0 || redis->bus_port_ < 0) return InternalError("no free port");
    if (redis->port_ == redis->bus_port_) continue;
    last = redis->Launch();
    if (last.ok()) return redis;
    LOG(WARNING) << "redis-server on port " << redis->port_ << " failed to start: " << last;
    redis->Kill();
  }
  return last.WithContext("LocalRedis::Start");
}

Status LocalRedis::Launch() {
  std::string conf_path = dir_.path() + "/redis.conf";
  {
    std::ofstream conf(conf_path, std::ios::trunc);
    conf << "bind 127.0.0.1\n"
         << "port " << port_ << "\n"
         << "dir " << dir_.path() << "\n"
         << "daemonize no\n"
         << "logfile \"\"\n"
         << "loglevel notice\n";
    if (options_.persistence) {
      conf << "appendonly yes\nappendfsync everysec\nsave 3600 1\n";
    } else {
      conf << "appendonly no\nsave \"\"\n";
    }
    if (!options_.password.empty()) {
      conf << "requirepass " << options_.password << "\n";
      conf << "masterauth " << options_.password << "\n";
    }
    if (options_.cluster) {
      conf << "cluster-enabled yes\n"
           << "cluster-config-file nodes.conf\n"
           << "cluster-port " << bus_port_ << "\n"
           << "cluster-node-timeout " << options_.cluster_node_timeout_ms << "\n"
           << "cluster-require-full-coverage yes\n";
    }
    for (const auto& line : options_.extra_config) conf << line << "\n";
    if (!conf) return InternalError("cannot write " + conf_path);
  }
  SEG_ASSIGN_OR_RETURN(child_, ChildProcess::Start({RedisServerBinary(), conf_path}, log_path_));
  paused_ = false;
  return WaitReady();
}

Status LocalRedis::WaitReady() {
  auto deadline = steady_clock::now() + options_.start_timeout;
  Status last = UnavailableError("not started");
  while (steady_clock::now() < deadline) {
    if (!child_.running()) {
      return UnavailableError("redis-server exited during startup; log: " + LogTail(600));
    }
    auto pong = RedisCommandForTest(port_, {"PING"}, options_.password, milliseconds(1000));
    if (pong.ok() && *pong == "PONG") return Status::OK();
    if (pong.ok()) {
      last = InternalError("PING answered '" + *pong + "'");
    } else {
      last = pong.status();
      // Wrong password etc. will not improve by waiting.
      if (last.message().find("WRONGPASS") != std::string_view::npos) return last;
    }
    // Polling a server that is still starting: nothing to block on.
    std::this_thread::sleep_for(milliseconds(10));
  }
  return DeadlineExceededError("redis-server on port " + std::to_string(port_) +
                               " not ready: " + last.ToString() + "; log: " + LogTail(600));
}

bool LocalRedis::running() { return child_.running(); }

Status LocalRedis::Stop(milliseconds timeout) {
  Resume();
  if (!child_.running()) return Status::OK();
  child_.Signal(SIGTERM);
  auto code = child_.Wait(timeout);
  if (!code.ok()) {
    Kill();
    return DeadlineExceededError("redis-server did not exit on SIGTERM; killed");
  }
  return Status::OK();
}

void LocalRedis::Kill() {
  if (child_.running()) {
    child_.Signal(SIGKILL);
    child_.Wait(milliseconds(10000)).IgnoreError();
  }
  paused_ = false;
}

Status LocalRedis::Restart() {
  SEG_RETURN_IF_ERROR(Stop());
  return Launch().WithContext("LocalRedis::Restart port " + std::to_string(port_));
}

void LocalRedis::Pause() {
  if (!paused_ && child_.running()) {
    child_.Signal(SIGSTOP);
    paused_ = true;
  }
}

void LocalRedis::Resume() {
  if (paused_) {
    // Signal() checks running(); a stopped child is still "running" for waitpid(WNOHANG).
    child_.Signal(SIGCONT);
    paused_ = false;
  }
}

std::string LocalRedis::LogTail(size_t max_bytes) const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string all = ss.str();
  if (all.size() > max_bytes) all = all.substr(all.size() - max_bytes);
  return all;
}

}  // namespace seg::testing
