#include "common/cli.h"

#include <glog/logging.h>
#include <pthread.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>

namespace seg::cli {

int Fail(std::string_view binary, const Status& status, int code) {
  LOG(ERROR) << binary << ": " << status;
  // glog may log to files only; the operator must see why it stopped.
  if (!FLAGS_logtostderr && !FLAGS_alsologtostderr) std::cerr << binary << ": " << status << "\n";
  return code;
}

int ConfigChecked(std::string_view binary, const Status& status) {
  if (!status.ok()) {
    std::cerr << binary << ": config: " << status << "\n";
    return kExitConfig;
  }
  std::cout << binary << ": config OK\n";
  return kExitOk;
}

Status SplitHostPort(std::string_view text, std::string_view flag, std::string* host,
                     int32_t* port) {
  auto bad = [&] {
    return InvalidArgumentError(std::string(flag) + " expects HOST:PORT, got '" +
                                std::string(text) + "'");
  };
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) return bad();
  std::string_view h = text.substr(0, colon);
  if (h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  int64_t p = 0;
  for (char c : text.substr(colon + 1)) {
    if (c < '0' || c > '9' || p > 65535) return bad();
    p = p * 10 + (c - '0');
  }
  if (h.empty() || p < 1 || p > 65535) return bad();
  *host = std::string(h);
  *port = static_cast<int32_t>(p);
  return Status::OK();
}

Status WritePortFile(const std::string& path, int port) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << "\n";
    if (!out) return InternalError("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return InternalError("cannot rename " + tmp);
  return Status::OK();
}

StopSignals::StopSignals(bool with_sighup) {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  if (with_sighup) sigaddset(&set_, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
}

int StopSignals::Wait() {
  int sig = 0;
  while (sigwait(&set_, &sig) != 0) {
  }
  return sig;
}

int StopSignals::Poll() {
  timespec zero{0, 0};
  int sig = sigtimedwait(&set_, nullptr, &zero);
  return sig > 0 ? sig : 0;
}

void StopSignals::Raise() { kill(getpid(), SIGTERM); }

}  // namespace seg::cli
