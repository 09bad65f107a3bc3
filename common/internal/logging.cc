#include "common/logging.h"

#include <glog/logging.h>

#include <atomic>

namespace seg {

void InitLogging(const char* argv0) {
  static std::atomic<bool> done{false};
  if (done.exchange(true)) return;
  // Services log to stderr; operators redirect or collect it.
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv0);
  google::InstallFailureSignalHandler();
}

}  // namespace seg
