// Shared by every fuzz target: quiet logging. The targets feed hostile
// input on purpose, so the product's warnings about it would bury
// libFuzzer's own output; FATAL still prints (and aborts, which libFuzzer
// reports as a crash).
#include <glog/logging.h>
#include <google/protobuf/stubs/logging.h>

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  FLAGS_logtostderr = true;
  FLAGS_minloglevel = google::GLOG_FATAL;
  google::InitGoogleLogging((*argv)[0]);
  // libprotobuf logs every string field with invalid UTF-8 it is fed.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}
