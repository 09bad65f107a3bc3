// Shared by every fuzz target: quiet logging and Require(). The targets feed
// hostile input on purpose, so the product's warnings about it would bury
// libFuzzer's own output; FATAL still prints (and aborts, which libFuzzer
// reports as a crash).
#include "fuzz/fuzz_support.h"

#include <glog/logging.h>
#include <google/protobuf/stubs/logging.h>

#include <cstdio>
#include <cstdlib>

namespace seg::fuzz {

void Require(bool ok, std::string_view what, std::string_view detail) {
  if (ok) return;
  fprintf(stderr, "fuzz: property failed: %.*s%s%.*s\n", static_cast<int>(what.size()), what.data(),
          detail.empty() ? "" : ": ", static_cast<int>(detail.size()), detail.data());
  abort();
}

}  // namespace seg::fuzz

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  FLAGS_logtostderr = true;
  FLAGS_minloglevel = google::GLOG_FATAL;
  google::InitGoogleLogging((*argv)[0]);
  // libprotobuf logs every string field with invalid UTF-8 it is fed.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}
