// Config: one YAML document plus command-line overrides, read through typed
// getters that remember which keys were asked for, so that a key nobody
// reads (a typo) is an error naming the key and the file.
//
//   auto config = Config::LoadFile("seg.yaml");            // "" = empty config
//   config->ApplyOverride("kafka.bootstrap_servers=127.0.0.1:9092");
//   SEG_RETURN_IF_ERROR(config->Get("kafka.bootstrap_servers", &opts.bootstrap));
//   SEG_RETURN_IF_ERROR(config->CheckNoUnknownKeys());
//
// Paths are dotted ("store.thrift.port"). A missing key leaves the output
// untouched (callers pre-fill defaults from their Options struct). A value of
// the wrong type is InvalidArgument: "seg.yaml: store.thrift.port: expected an
// integer, got 'abc'". Not thread-safe; read config at startup.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace seg {

class Config {
 public:
  Config();
  ~Config();
  Config(Config&&) noexcept;
  Config& operator=(Config&&) noexcept;

  // Parses a YAML file; an empty path gives an empty config.
  static StatusOr<Config> LoadFile(const std::string& path);
  // Parses YAML text; `source` names it in error messages.
  static StatusOr<Config> FromString(std::string_view yaml, std::string_view source);

  // LoadFile(path), then ApplyOverride() for each "key.path=value" in order:
  // what every binary's --config and --set flags do. An override error
  // names the override ("--set a.b: ...").
  static StatusOr<Config> Load(const std::string& path, const std::vector<std::string>& overrides);

  // "a.b.c=value": sets a scalar (parsed as YAML: numbers, true/false, lists
  // like [a, b]) creating intermediate maps as needed.
  Status ApplyOverride(std::string_view assignment);

  bool Has(std::string_view path) const;

  Status Get(std::string_view path, std::string* out);
  Status Get(std::string_view path, int64_t* out);
  Status Get(std::string_view path, int32_t* out);
  Status Get(std::string_view path, double* out);
  Status Get(std::string_view path, bool* out);
  Status Get(std::string_view path, std::vector<std::string>* out);
  // A map of scalars (e.g. librdkafka properties passed through as-is).
  // Marks the whole subtree as known.
  Status Get(std::string_view path, std::map<std::string, std::string>* out);

  // Child keys of a map node (e.g. tables under "store.tables"); empty if absent.
  std::vector<std::string> Keys(std::string_view path) const;

  // InvalidArgument listing every leaf key that no getter asked for. The
  // binaries use CheckConfigKeys() (common/config_keys.h) instead, which
  // ignores keys of other binaries.
  Status CheckNoUnknownKeys() const;

  // Every leaf key of the document ("a.b.c"), in document order.
  std::vector<std::string> Leaves() const;
  // True if a getter asked for `path` or for one of its ancestors.
  bool WasRead(std::string_view path) const;
  // Every path a getter asked for, present in the document or not.
  std::vector<std::string> ReadPaths() const;
  // Moves the subtree at `from` to `to` (a renamed key), merging maps; a
  // value set under both names must be equal, else InvalidArgument naming
  // both (and `to_origin`, the old name `to` was moved from, if any).
  // Nothing happens when `from` is absent.
  Status Rename(std::string_view from, std::string_view to, std::string_view to_origin = {});

  const std::string& source() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace seg
