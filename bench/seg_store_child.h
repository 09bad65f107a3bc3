// seg-store as a child process of a benchmark: started on a free port with
// its log in the run directory, stopped (SIGTERM, reaped) when it goes out of
// scope; and the CPU another process has used, for CPU-per-unit figures.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace seg::bench {

// build/bench/<bench> -> build/store/seg-store.
inline std::string DefaultSegStore(const char* argv0) {
  std::filesystem::path self = std::filesystem::absolute(argv0);
  return (self.parent_path().parent_path() / "store" / "seg-store").string();
}

// utime + stime of `pid` in seconds (0 for pid <= 0 or a process gone).
inline double ProcessCpuSeconds(pid_t pid) {
  if (pid <= 0) return 0;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close_paren + 2));
  std::string f;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && (fields >> f); ++i) {
    if (i == 14) utime = std::atof(f.c_str());
    if (i == 15) stime = std::atof(f.c_str());
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

class SegStoreChild {
 public:
  SegStoreChild() = default;
  SegStoreChild(const SegStoreChild&) = delete;
  SegStoreChild& operator=(const SegStoreChild&) = delete;
  ~SegStoreChild() { Stop(); }

  // Runs `binary --data-dir DIR/served --port 0 --port-file ... [extra]` with
  // stdout and stderr in DIR/seg-store.log and waits up to 30 s for its
  // port. False (after printing why) if it did not start.
  bool Start(const std::string& binary, const std::string& dir,
             const std::vector<std::string>& extra = {}) {
    const std::string port_file = dir + "/port";
    log_ = dir + "/seg-store.log";
    std::vector<std::string> args = {binary, "--data-dir",  dir + "/served", "--port",
                                     "0",    "--port-file", port_file};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> cargs;
    for (auto& s : args) cargs.push_back(s.data());
    cargs.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    const int rc = posix_spawn(&pid_, binary.c_str(), &fa, nullptr, cargs.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      pid_ = -1;
      std::fprintf(stderr, "cannot start %s\n", binary.c_str());
      return false;
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!(std::ifstream(port_file) >> port_)) {
      if (std::chrono::steady_clock::now() > deadline) {
        std::fprintf(stderr, "seg-store did not start; see %s\n", log_.c_str());
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling its port file
    }
    return true;
  }

  void Stop() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

  pid_t pid() const { return pid_; }
  int port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_;
};

}  // namespace seg::bench
