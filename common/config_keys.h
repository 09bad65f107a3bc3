// The one list of every binary's config keys, so that all binaries can share
// one file: a key that another binary reads is ignored, a key that no binary
// reads is an error naming the nearest known key. config/seg.example.yaml
// documents every key with its default (config_keys_test keeps the two in step).
//
//   auto config = LoadBinaryConfig(path, overrides);  // + renamed keys, warned
//   ... options.LoadFrom(*config, "prefix") ...
//   SEG_RETURN_IF_ERROR(CheckConfigKeys(*config));
//
// Patterns are dotted keys; "*" matches one part (a table or family name),
// a final "**" any subtree (librdkafka properties).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/status.h"

namespace seg {

const std::vector<std::string_view>& AllConfigKeys();

// True if `key` matches `pattern` ("a.*.c", "a.b.**").
bool ConfigKeyMatches(std::string_view pattern, std::string_view key);

// True if `key` (a leaf, or a path a getter asks for) matches the list.
bool IsKnownConfigKey(std::string_view key);

// The listed key closest to `key` by edit distance (a pattern's "*" parts
// take the key's own parts), for "did you mean" messages.
std::string NearestConfigKey(std::string_view key);

// A renamed key: the old name still loads for one release, with a WARNING.
struct RenamedConfigKey {
  std::string_view old_name;
  std::string_view new_name;
};
const std::vector<RenamedConfigKey>& RenamedConfigKeys();

// `key` under its new name if it is (or lies under) a renamed key, setting
// `old_name` to the renamed key; else `key` itself.
std::string CurrentConfigKey(std::string_view key, std::string_view* old_name);

// Moves every old-named key to its new name, logging a WARNING that names
// the new key. InvalidArgument if two names of one setting (the new and an
// old one, or two old ones) are set to different values.
Status ApplyRenamedKeys(Config& config);

// Config::LoadFile + ApplyRenamedKeys, then each "key=value" override
// (renamed the same way; an override wins over the file): what every
// binary's --config/--set do.
StatusOr<Config> LoadBinaryConfig(const std::string& path,
                                  const std::vector<std::string>& overrides);

// After the binary's loaders ran: InvalidArgument for every leaf that this
// binary did not read and that is not on the list ("unknown key 'x.y' (did
// you mean 'x.z'?)"). A key the binary read that is missing from the list
// is an Internal error: the list must stay complete.
Status CheckConfigKeys(const Config& config);

}  // namespace seg
