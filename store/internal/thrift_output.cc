#include "store/internal/thrift_output.h"

#include <glog/logging.h>

#include <thrift/TOutput.h>

#include <atomic>
#include <mutex>

namespace seg::store::internal {
namespace {

std::atomic<bool> g_server_in_process{false};

void ToGlog(const char* msg) {
  if (g_server_in_process.load(std::memory_order_relaxed)) {
    LOG(INFO) << "thrift: " << msg;
  } else {
    VLOG(1) << "thrift: " << msg;
  }
}

}  // namespace

void RouteThriftOutputToGlog(bool server) {
  if (server) g_server_in_process.store(true, std::memory_order_relaxed);
  static std::once_flag once;
  std::call_once(once, [] { apache::thrift::GlobalOutput.setOutputFunction(&ToGlog); });
}

}  // namespace seg::store::internal
