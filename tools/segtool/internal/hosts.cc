#include "tools/segtool/internal/hosts.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tools/segtool/internal/trace.h"

namespace seg::segtool::internal {

StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot read " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

ScratchHost::~ScratchHost() {
  host_.reset();
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

StatusOr<std::unique_ptr<ScratchHost>> LoadScratchHost(const std::string& script_file,
                                                       const segmenter::ScriptHostOptions& base,
                                                       bool traced) {
  auto scratch = std::unique_ptr<ScratchHost>(new ScratchHost());
  SEG_ASSIGN_OR_RETURN(scratch->source_, ReadFile(script_file));
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/segtool-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) return InternalError("mkdtemp " + pattern);
  scratch->dir_ = pattern;
  const std::string name = std::filesystem::path(script_file).filename().string();
  {
    std::ofstream out(scratch->dir_ + "/" + name, std::ios::binary);
    out << (traced ? InstrumentForTrace(scratch->source_) : scratch->source_);
    if (!out) return InternalError("cannot write " + scratch->dir_ + "/" + name);
  }
  segmenter::ScriptHostOptions options = base;
  options.scripts_dir = scratch->dir_;
  options.reload_check_interval_ms = 0;
  if (traced) options.quarantine_after_failures = 0;
  auto host = segmenter::ScriptHost::Create(options);
  if (!host.ok()) {
    return InvalidArgumentError(std::string(host.status().message()) + " (loading " + script_file +
                                ")");
  }
  scratch->host_ = std::move(*host);
  auto scripts = scratch->host_->scripts();
  if (scripts.size() != 1) return InvalidArgumentError(script_file + ": not one segment script");
  scratch->script_ = scripts[0].name;
  return scratch;
}

}  // namespace seg::segtool::internal
