// seg-load FILE: the standalone entry point of `segctl load` (see
// tools/segctl/load.h for flags and exit codes).
#include "common/logging.h"
#include "tools/segctl/load.h"

int main(int argc, char** argv) {
  seg::InitLogging(argv[0]);
  return seg::tools::LoadMain(argc, argv);
}
