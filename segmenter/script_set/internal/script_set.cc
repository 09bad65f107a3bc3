#include "segmenter/script_set/script_set.h"

#include <glog/logging.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "segmenter/script_host/script_host.h"
#include "segmenter/script_set/internal/backfill.h"
#include "store/store.h"

namespace seg::segmenter {
namespace fs = std::filesystem;
using internal::kFilePrefix;
using internal::kPushedAtQualifier;
using internal::kVersionQualifier;

namespace {

Status WriteWholeFile(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return InternalError("writing " + path.string() + " failed");
  return Status::OK();
}

std::string RandomSuffix() {
  std::random_device rd;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%d.%08x", static_cast<int>(getpid()), rd());
  return buf;
}

}  // namespace

ScriptSet::ScriptSet(store::Store* store, ScriptSetOptions options)
    : store_(store),
      options_(std::move(options)),
      clock_(options_.clock ? options_.clock : Clock::Real()) {}

std::string ScriptSet::VersionOf(const std::map<std::string, std::string>& files) {
  // Must stay equal to ScriptHost's hash (script_host.cc LoadSet): FNV-1a 64
  // over (name, 0, bytes, 0) per file in name order, first 12 hex digits.
  // std::map orders names bytewise, as the host's sort does.
  uint64_t hash = 14695981039346656037ull;
  auto mix = [&hash](std::string_view bytes) {
    for (unsigned char c : bytes) {
      hash ^= c;
      hash *= 1099511628211ull;
    }
    hash *= 1099511628211ull;  // the 0 separator (x ^ 0 == x)
  };
  for (const auto& [name, source] : files) {
    mix(name);
    mix(source);
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(hash));
  return std::string(buf, 12);
}

StatusOr<ScriptFiles> ScriptSet::ReadDir(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return NotFoundError("scripts dir " + dir + " is not a directory");
  ScriptFiles out;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    // The same filter as ScriptHost's ScanDirectory.
    if (p.extension() != ".lua" || !it->is_regular_file(ec)) continue;
    if (p.filename().string().starts_with(".")) continue;
    std::ifstream in(p, std::ios::binary);
    std::stringstream buf;
    buf << in.rdbuf();
    if (!in.good() && !in.eof()) return UnavailableError("cannot read " + p.string());
    out.files[p.filename().string()] = buf.str();
  }
  if (ec) return UnavailableError("listing " + dir + ": " + ec.message());
  out.version = VersionOf(out.files);
  return out;
}

StatusOr<PushResult> ScriptSet::Push(const std::string& dir) {
  SEG_ASSIGN_OR_RETURN(ScriptFiles local, ReadDir(dir));
  if (local.files.empty()) return InvalidArgumentError("no *.lua scripts in " + dir);
  // Validate by loading into a throwaway host; its version must be ours
  // (a file changed between the two reads otherwise: push again).
  ScriptHostOptions host_options;
  host_options.scripts_dir = dir;
  host_options.cpu_budget_ms = options_.cpu_budget_ms;
  host_options.memory_limit_mb = options_.memory_limit_mb;
  host_options.reload_check_interval_ms = 0;
  SEG_ASSIGN_OR_RETURN(auto host, ScriptHost::Create(host_options));
  if (host->script_set_version() != local.version) {
    return AbortedError("scripts in " + dir + " changed while being pushed; push again");
  }
  return Write(local, /*only_if_absent=*/false);
}

StatusOr<PushResult> ScriptSet::Bootstrap(const std::string& dir) {
  SEG_ASSIGN_OR_RETURN(std::string stored, FetchVersion());
  if (!stored.empty()) return PushResult{stored, false};
  SEG_ASSIGN_OR_RETURN(ScriptFiles local, ReadDir(dir));
  if (local.files.empty()) return InvalidArgumentError("no *.lua scripts in " + dir);
  ScriptHostOptions host_options;
  host_options.scripts_dir = dir;
  host_options.cpu_budget_ms = options_.cpu_budget_ms;
  host_options.memory_limit_mb = options_.memory_limit_mb;
  host_options.reload_check_interval_ms = 0;
  SEG_ASSIGN_OR_RETURN(auto host, ScriptHost::Create(host_options));
  auto written = Write(local, /*only_if_absent=*/true);
  if (written.ok() || written.status().code() != StatusCode::kAborted) return written;
  // Another node bootstrapped first: adopt its set.
  SEG_ASSIGN_OR_RETURN(stored, FetchVersion());
  return PushResult{stored, false};
}

StatusOr<PushResult> ScriptSet::Write(const ScriptFiles& local, bool only_if_absent) {
  // Read the stored file names (to delete the removed ones) and version (the
  // CAS's expectation) in one row read, so they belong together.
  store::GetRequest get;
  get.row = options_.row;
  get.families = {options_.family};
  SEG_ASSIGN_OR_RETURN(store::RowResult stored, store_->Get(options_.table, get));
  std::string stored_version;
  for (store::CellView c : stored) {
    if (c.qualifier == kVersionQualifier) stored_version = std::string(c.value);
  }
  if (stored_version == local.version) return PushResult{stored_version, false};
  if (only_if_absent && !stored_version.empty()) {
    return AbortedError("a script set is already stored (" + stored_version + ")");
  }

  const int64_t now = clock_->NowMs();
  store::RowMutations m;
  m.row = options_.row;
  for (store::CellView c : stored) {
    if (!c.qualifier.starts_with(kFilePrefix)) continue;
    std::string_view name = c.qualifier.substr(kFilePrefix.size());
    if (local.files.count(std::string(name))) continue;
    m.deletes.push_back(store::DeleteColumn{options_.family, std::string(c.qualifier)});
  }
  for (const auto& [name, source] : local.files) {
    m.puts.push_back(store::Cell{options_.family, std::string(kFilePrefix) + name,
                                 store::kLatestTimestamp, source});
  }
  m.puts.push_back(store::Cell{options_.family, std::string(kVersionQualifier),
                               store::kLatestTimestamp, local.version});
  m.puts.push_back(store::Cell{options_.family, std::string(kPushedAtQualifier),
                               store::kLatestTimestamp, std::to_string(now)});
  internal::AppendNewJob(options_.family, local.version, now, /*immediate=*/only_if_absent,
                         &m.puts);

  store::Condition cond;
  cond.family = options_.family;
  cond.qualifier = std::string(kVersionQualifier);
  cond.op = store::CompareOp::kEqual;
  // Empty: holds while no version is stored (HBase semantics).
  if (!stored_version.empty()) cond.value = stored_version;
  SEG_ASSIGN_OR_RETURN(bool applied, store_->CheckAndMutate(options_.table, cond, m));
  if (!applied) {
    return AbortedError("the stored script set changed during the push (was " +
                        (stored_version.empty() ? std::string("none") : stored_version) +
                        "); fetch and push again");
  }
  LOG(INFO) << "script set pushed: " << (stored_version.empty() ? "none" : stored_version) << " -> "
            << local.version << " (" << local.files.size() << " files, " << m.deletes.size()
            << " removed); backfill started";
  return PushResult{local.version, true};
}

StatusOr<std::string> ScriptSet::FetchVersion() {
  store::GetRequest get;
  get.row = options_.row;
  get.families = {options_.family};
  get.qualifiers = {std::string(kVersionQualifier)};
  SEG_ASSIGN_OR_RETURN(store::RowResult row, store_->Get(options_.table, get));
  if (row.empty()) return std::string();
  return std::string((*row.begin()).value);
}

StatusOr<ScriptFiles> ScriptSet::Fetch() {
  // One Get of the whole row: files and version come from one atomic row
  // read, so they always match.
  store::GetRequest get;
  get.row = options_.row;
  get.families = {options_.family};
  SEG_ASSIGN_OR_RETURN(store::RowResult row, store_->Get(options_.table, get));
  ScriptFiles out;
  for (store::CellView c : row) {
    if (c.qualifier == kVersionQualifier) {
      out.version = std::string(c.value);
    } else if (c.qualifier == kPushedAtQualifier) {
      out.pushed_at_ms = std::atoll(std::string(c.value).c_str());
    } else if (c.qualifier.starts_with(kFilePrefix)) {
      out.files[std::string(c.qualifier.substr(kFilePrefix.size()))] = std::string(c.value);
    }
  }
  if (!out.version.empty() && VersionOf(out.files) != out.version) {
    return DataLossError("stored script set " + out.version + " does not hash to its version (" +
                         VersionOf(out.files) + ")");
  }
  return out;
}

StatusOr<std::string> ScriptSet::Materialize(const ScriptFiles& files,
                                             const std::string& cache_dir) {
  if (files.version.empty()) return FailedPreconditionError("no script set to materialize");
  std::error_code ec;
  fs::create_directories(cache_dir, ec);
  if (ec) return InternalError("creating " + cache_dir + ": " + ec.message());
  const fs::path final_dir = fs::path(cache_dir) / files.version;
  if (!fs::is_directory(final_dir, ec)) {
    // Versions are content hashes: an existing directory already holds
    // exactly these files (it was renamed into place complete).
    const fs::path tmp = fs::path(cache_dir) / (".tmp-" + files.version + "-" + RandomSuffix());
    fs::create_directory(tmp, ec);
    if (ec) return InternalError("creating " + tmp.string() + ": " + ec.message());
    for (const auto& [name, source] : files.files) {
      if (name.find('/') != std::string::npos || name.starts_with(".")) {
        fs::remove_all(tmp, ec);
        return DataLossError("stored script name '" + name + "' is not a plain file name");
      }
      if (Status s = WriteWholeFile(tmp / name, source); !s.ok()) {
        fs::remove_all(tmp, ec);
        return s;
      }
    }
    fs::rename(tmp, final_dir, ec);
    if (ec) {
      std::error_code ignored;
      fs::remove_all(tmp, ignored);
      // Lost a race with another materializer of the same version: fine.
      if (!fs::is_directory(final_dir, ignored)) {
        return InternalError("renaming into " + final_dir.string() + ": " + ec.message());
      }
    }
  }
  // Swap <cache_dir>/current atomically: a new symlink renamed over the old.
  const fs::path link_tmp = fs::path(cache_dir) / (".current-" + RandomSuffix());
  fs::create_directory_symlink(files.version, link_tmp, ec);  // relative: the cache can move
  if (ec) return InternalError("symlink " + link_tmp.string() + ": " + ec.message());
  fs::rename(link_tmp, fs::path(cache_dir) / "current", ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(link_tmp, ignored);
    return InternalError("replacing " + cache_dir + "/current: " + ec.message());
  }
  return final_dir.string();
}

}  // namespace seg::segmenter
