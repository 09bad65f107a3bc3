// ScriptSet: the cluster-wide segment-script set, kept as data in the store
// so every segmenter runs the same scripts and reports the same version
// (docs ARCHITECTURE.md "Membership over time": definitions).
//
// Layout: table `segmeta`, family `m`, one row (`scripts`):
//   version       12-hex script-set version, the same hash ScriptHost
//                 computes over the files (FNV-1a 64 over name, bytes in
//                 file-name order), so results carry the stored version
//   pushed_at     epoch ms of the push
//   file:<name>   one cell per `*.lua` file, value = its source
//   backfill:*    the re-evaluation job of that version (see backfill.h);
//                 a push resets it in the same mutation, so a version never
//                 exists without its job.
// One row because a row is the unit of atomicity: a push replaces files,
// version and job with one CheckAndMutate conditioned on the version it
// read, so two concurrent pushes cannot interleave (one fails).
//
// Thread-safety: a ScriptSet is thread-safe (it holds only the Store).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/status.h"

namespace seg::store {
class Store;
}

namespace seg::segmenter {

struct ScriptSetOptions {
  std::string table = "segmeta";
  std::string family = "m";
  std::string row = "scripts";
  // Limits of the throwaway ScriptHost that validates a push.
  int64_t cpu_budget_ms = 50;
  int64_t memory_limit_mb = 128;
  Clock* clock = nullptr;  // pushed_at; nullptr = Clock::Real()
};

// A stored (or local) set of scripts.
struct ScriptFiles {
  std::string version;                       // "" = no set stored
  int64_t pushed_at_ms = 0;                  // 0 for a local directory
  std::map<std::string, std::string> files;  // "cats.lua" -> source
};

struct PushResult {
  std::string version;
  bool changed = false;  // false: the store already had exactly this set
};

class ScriptSet {
 public:
  // `store` must outlive the ScriptSet.
  ScriptSet(store::Store* store, ScriptSetOptions options = {});

  // Reads the `*.lua` files of `dir` (as ScriptHost does: not recursive,
  // no dot files) and their version. NotFound for a missing directory.
  static StatusOr<ScriptFiles> ReadDir(const std::string& dir);
  // The version ScriptHost would report for these files.
  static std::string VersionOf(const std::map<std::string, std::string>& files);

  // Validates `dir` (it must load into a fresh ScriptHost: InvalidArgument
  // with the load errors otherwise, and nothing is written), then replaces
  // the stored set with it and starts its backfill, unless the store
  // already holds this version. Aborted when another push changed the set
  // between this one's read and write (nothing is written).
  StatusOr<PushResult> Push(const std::string& dir);
  // Like Push, but only when the store has no set yet (first node up).
  // Returns the stored version, whoever wrote it.
  StatusOr<PushResult> Bootstrap(const std::string& dir);

  // The stored version only ("" when none): one small read, for polling.
  StatusOr<std::string> FetchVersion();
  // The stored set with its files.
  StatusOr<ScriptFiles> Fetch();

  // Writes `files` into <cache_dir>/<version>/ (via a temp dir renamed into
  // place, so a reader never sees half a set; an existing one is kept) and
  // points <cache_dir>/current at it (a symlink swapped with rename(), so a
  // ScriptHost whose scripts_dir is <cache_dir>/current sees one set or the
  // other). Returns <cache_dir>/<version>.
  static StatusOr<std::string> Materialize(const ScriptFiles& files, const std::string& cache_dir);

 private:
  StatusOr<PushResult> Write(const ScriptFiles& local, bool only_if_absent);

  store::Store* store_;
  ScriptSetOptions options_;
  Clock* clock_;
};

}  // namespace seg::segmenter
