// Script hosts segtool builds besides the configured one: a host for a single
// candidate script file (shadow, preview) and a host running a script with
// the helper-call trace (explain, test failures). Each copies the script
// into a private scratch directory, removed with the host.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "segmenter/script_host/script_host.h"

namespace seg::segtool::internal {

class ScratchHost {
 public:
  ~ScratchHost();
  segmenter::ScriptHost& host() { return *host_; }
  const std::string& source() const { return source_; }  // the original text
  const std::string& script() const { return script_; }  // the script's name

 private:
  friend StatusOr<std::unique_ptr<ScratchHost>> LoadScratchHost(const std::string&,
                                                                const segmenter::ScriptHostOptions&,
                                                                bool);
  std::string dir_;
  std::string source_;
  std::string script_;
  std::unique_ptr<segmenter::ScriptHost> host_;
};

// Loads `script_file` alone. With `traced`, the copy carries the trace
// prelude (trace.h) and quarantine is off. Errors: NotFound for a missing
// file, InvalidArgument when the script does not load (with its message).
StatusOr<std::unique_ptr<ScratchHost>> LoadScratchHost(const std::string& script_file,
                                                       const segmenter::ScriptHostOptions& base,
                                                       bool traced);

// The file text, or NotFound.
StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace seg::segtool::internal
