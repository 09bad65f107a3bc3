// gtest main shared by every test binary: glog to stderr, gtest flags.
#include <gtest/gtest.h>

#include "common/logging.h"

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
