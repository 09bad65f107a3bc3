#include "tests/harness/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace seg::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/segtest-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) std::abort();
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

int PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

Status WaitForTcpPort(int port, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    close(fd);
    if (rc == 0) return Status::OK();
    if (std::chrono::steady_clock::now() > deadline) {
      return DeadlineExceededError("port " + std::to_string(port) + " not accepting connections");
    }
    // Polling a port that is not up yet: nothing to block on.
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

namespace {

// "0100007F" (little-endian IPv4 as /proc/net/tcp prints it) -> "127.0.0.1";
// 32 hex digits (four little-endian words) -> an IPv6 address.
std::string ProcHexAddress(const std::string& hex) {
  unsigned char bytes[16] = {};
  size_t n = hex.size() / 2;
  for (size_t i = 0; i < n && i < 16; ++i) {
    bytes[i] = static_cast<unsigned char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  }
  char out[INET6_ADDRSTRLEN] = {};
  if (n == 4) {
    unsigned char v4[4] = {bytes[3], bytes[2], bytes[1], bytes[0]};
    inet_ntop(AF_INET, v4, out, sizeof(out));
  } else {
    unsigned char v6[16];
    for (int w = 0; w < 4; ++w) {
      for (int b = 0; b < 4; ++b) v6[4 * w + b] = bytes[4 * w + 3 - b];
    }
    inet_ntop(AF_INET6, v6, out, sizeof(out));
  }
  std::string text = out;
  // An IPv4 address on an IPv6 socket (gRPC binds so): the IPv4 form.
  if (text.rfind("::ffff:", 0) == 0 && text.find('.') != std::string::npos) return text.substr(7);
  return text;
}

}  // namespace

std::vector<std::string> ListeningAddresses(int port) {
  std::vector<std::string> out;
  for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state;
      fields >> slot >> local >> remote >> state;
      size_t colon = local.find(':');
      if (state != "0A" || colon == std::string::npos) continue;  // 0A = LISTEN
      if (std::stoi(local.substr(colon + 1), nullptr, 16) != port) continue;
      out.push_back(ProcHexAddress(local.substr(0, colon)));
    }
  }
  return out;
}

double MetricValue(int port, std::string_view name) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string body;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[8192];
      ssize_t n;
      while ((n = recv(fd, buf, sizeof buf, 0)) > 0) body.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  std::istringstream lines(body);
  std::string prefix = std::string(name) + " ";
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(prefix, 0) == 0) return std::stod(line.substr(prefix.size()));
  }
  return -1;
}

StatusOr<int64_t> ProcStatusField(pid_t pid, std::string_view field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  std::string prefix = std::string(field) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) return std::stoll(line.substr(prefix.size()));
  }
  return NotFoundError("no " + prefix + " in /proc/" + std::to_string(pid) + "/status");
}

std::string BinaryDir() {
  // The environment wins so an installed test tree can be pointed elsewhere.
  const char* dir = std::getenv("SEG_BINARY_DIR");
  return dir ? dir : SEG_BINARY_DIR_DEFAULT;
}

std::string SourceDir() {
  const char* dir = std::getenv("SEG_SOURCE_DIR");
  return dir ? dir : SEG_SOURCE_DIR_DEFAULT;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && running()) {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_), exit_code_(other.exit_code_) {
  other.pid_ = -1;
}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    this->~ChildProcess();
    pid_ = other.pid_;
    exit_code_ = other.exit_code_;
    other.pid_ = -1;
  }
  return *this;
}

StatusOr<ChildProcess> ChildProcess::Start(const std::vector<std::string>& argv,
                                           const std::string& log_path,
                                           const std::vector<std::string>& env) {
  if (argv.empty()) return InvalidArgumentError("empty argv");
  pid_t pid = fork();
  if (pid < 0) return InternalError("fork failed");
  if (pid == 0) {
    // Child: die with the parent so an aborted test leaves no orphans.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (!log_path.empty()) {
      int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
      }
    }
    for (const auto& kv : env) putenv(const_cast<char*>(kv.c_str()));
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  ChildProcess child;
  child.pid_ = pid;
  return child;
}

bool ChildProcess::running() {
  if (pid_ <= 0) return false;
  if (exit_code_ >= 0) return false;
  int status = 0;
  pid_t rc = waitpid(pid_, &status, WNOHANG);
  if (rc == 0) return true;
  if (rc == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return false;
}

void ChildProcess::Signal(int signal) {
  if (pid_ > 0 && running()) kill(pid_, signal);
}

StatusOr<int> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return DeadlineExceededError("process " + std::to_string(pid_) + " still running");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return exit_code_;
}

int ChildProcess::Stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return exit_code_;
  Signal(SIGTERM);
  auto code = Wait(grace);
  if (code.ok()) return *code;
  Signal(SIGKILL);
  auto killed = Wait(std::chrono::milliseconds(5000));
  return killed.ok() ? *killed : -1;
}

}  // namespace seg::testing
