#include "common/config.h"

#include <yaml-cpp/yaml.h>

#include <set>
#include <sstream>

namespace seg {
namespace {

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    if (dot == std::string_view::npos) dot = path.size();
    parts.emplace_back(path.substr(start, dot - start));
    start = dot + 1;
  }
  return parts;
}

void CollectLeaves(const YAML::Node& node, const std::string& prefix,
                   std::vector<std::string>* out) {
  if (node.IsMap()) {
    for (const auto& kv : node) {
      std::string key = kv.first.as<std::string>();
      CollectLeaves(kv.second, prefix.empty() ? key : prefix + "." + key, out);
    }
  } else if (!prefix.empty()) {
    out->push_back(prefix);
  }
}

// A value as text, for comparing and for messages ("'x'", "[a, b]").
std::string ValueText(const YAML::Node& node) {
  if (node.IsScalar()) return "'" + node.Scalar() + "'";
  YAML::Emitter out;
  out << YAML::Flow << node;
  return out.c_str();
}

// Whether `from` and `to` set some value differently: maps are compared key
// by key (a key only one side sets is no conflict), anything else by value.
// On a conflict `rel` is its path below both (".a.b") and the values are set.
bool FindConflict(const YAML::Node& from, const YAML::Node& to, const std::string& rel,
                  std::string* out_rel, std::string* from_value, std::string* to_value) {
  if (!to.IsDefined() || to.IsNull() || !from.IsDefined() || from.IsNull()) return false;
  if (from.IsMap() && to.IsMap()) {
    for (const auto& kv : from) {
      std::string key = kv.first.as<std::string>();
      if (FindConflict(kv.second, to[key], rel + "." + key, out_rel, from_value, to_value)) {
        return true;
      }
    }
    return false;
  }
  if (ValueText(from) == ValueText(to)) return false;
  *out_rel = rel;
  *from_value = ValueText(from);
  *to_value = ValueText(to);
  return true;
}

// Adds `from`'s keys to the map `into` (FindConflict found no conflict).
void MergeInto(YAML::Node into, const YAML::Node& from) {
  for (const auto& kv : from) {
    std::string key = kv.first.as<std::string>();
    YAML::Node existing = into[key];
    if (existing.IsDefined() && existing.IsMap() && kv.second.IsMap()) {
      MergeInto(existing, kv.second);
    } else if (!existing.IsDefined() || existing.IsNull()) {
      into[key] = kv.second;
    }
  }
}

}  // namespace

struct Config::Impl {
  std::string source = "<empty>";
  YAML::Node root = YAML::Node(YAML::NodeType::Map);
  std::set<std::string> known;  // paths read, or subtree roots marked known

  // Returns an undefined node when any part is missing.
  YAML::Node Find(std::string_view path) const {
    YAML::Node node = YAML::Clone(root);
    for (const auto& part : SplitPath(path)) {
      if (!node.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
      YAML::Node next = node[part];
      if (!next.IsDefined()) return YAML::Node(YAML::NodeType::Undefined);
      node = next;
    }
    return node;
  }

  Status TypeError(std::string_view path, std::string_view expected, const YAML::Node& node) const {
    std::ostringstream os;
    os << source << ": " << path << ": expected " << expected << ", got ";
    if (node.IsScalar()) {
      os << "'" << node.Scalar() << "'";
    } else if (node.IsMap()) {
      os << "a map";
    } else if (node.IsSequence()) {
      os << "a list";
    } else {
      os << "null";
    }
    return InvalidArgumentError(os.str());
  }

  template <typename T>
  Status GetScalar(std::string_view path, T* out, std::string_view expected) {
    known.insert(std::string(path));
    YAML::Node node = Find(path);
    if (!node.IsDefined() || node.IsNull()) return Status::OK();
    if (!node.IsScalar()) return TypeError(path, expected, node);
    try {
      *out = node.as<T>();
    } catch (const YAML::Exception&) {
      return TypeError(path, expected, node);
    }
    return Status::OK();
  }
};

Config::Config() : impl_(std::make_unique<Impl>()) {}
Config::~Config() = default;
Config::Config(Config&&) noexcept = default;
Config& Config::operator=(Config&&) noexcept = default;

StatusOr<Config> Config::LoadFile(const std::string& path) {
  Config config;
  if (path.empty()) return config;
  try {
    config.impl_->root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return NotFoundError("config file " + path + ": cannot be opened");
  } catch (const YAML::Exception& e) {
    return InvalidArgumentError(path + ": " + e.what());
  }
  config.impl_->source = path;
  if (config.impl_->root.IsNull()) config.impl_->root = YAML::Node(YAML::NodeType::Map);
  if (!config.impl_->root.IsMap()) return InvalidArgumentError(path + ": top level must be a map");
  return config;
}

StatusOr<Config> Config::FromString(std::string_view yaml, std::string_view source) {
  Config config;
  config.impl_->source = std::string(source);
  try {
    config.impl_->root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return InvalidArgumentError(std::string(source) + ": " + e.what());
  }
  if (config.impl_->root.IsNull()) config.impl_->root = YAML::Node(YAML::NodeType::Map);
  if (!config.impl_->root.IsMap()) {
    return InvalidArgumentError(std::string(source) + ": top level must be a map");
  }
  return config;
}

StatusOr<Config> Config::Load(const std::string& path, const std::vector<std::string>& overrides) {
  SEG_ASSIGN_OR_RETURN(Config config, LoadFile(path));
  for (const auto& assignment : overrides) {
    SEG_RETURN_IF_ERROR(config.ApplyOverride(assignment).WithContext("--set " + assignment));
  }
  return config;
}

Status Config::ApplyOverride(std::string_view assignment) {
  size_t eq = assignment.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return InvalidArgumentError("override '" + std::string(assignment) +
                                "': expected key.path=value");
  }
  std::string_view path = assignment.substr(0, eq);
  std::string value(assignment.substr(eq + 1));
  YAML::Node parsed;
  try {
    parsed = YAML::Load(value);
  } catch (const YAML::Exception&) {
    parsed = YAML::Node(value);
  }
  if (!parsed.IsDefined() || parsed.IsNull()) parsed = YAML::Node(value);
  std::vector<std::string> parts = SplitPath(path);
  // yaml-cpp nodes are handles: walking with operator[] mutates the root.
  std::vector<YAML::Node> chain{impl_->root};
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node next = chain.back()[parts[i]];
    if (!next.IsDefined() || !next.IsMap()) {
      chain.back()[parts[i]] = YAML::Node(YAML::NodeType::Map);
      next = chain.back()[parts[i]];
    }
    chain.push_back(next);
  }
  chain.back()[parts.back()] = parsed;
  return Status::OK();
}

bool Config::Has(std::string_view path) const { return impl_->Find(path).IsDefined(); }

Status Config::Get(std::string_view path, std::string* out) {
  return impl_->GetScalar(path, out, "a string");
}
Status Config::Get(std::string_view path, int64_t* out) {
  return impl_->GetScalar(path, out, "an integer");
}
Status Config::Get(std::string_view path, int32_t* out) {
  return impl_->GetScalar(path, out, "an integer");
}
Status Config::Get(std::string_view path, double* out) {
  return impl_->GetScalar(path, out, "a number");
}
Status Config::Get(std::string_view path, bool* out) {
  return impl_->GetScalar(path, out, "true or false");
}

Status Config::Get(std::string_view path, std::vector<std::string>* out) {
  impl_->known.insert(std::string(path));
  YAML::Node node = impl_->Find(path);
  if (!node.IsDefined() || node.IsNull()) return Status::OK();
  if (node.IsScalar()) {
    *out = {node.Scalar()};
    return Status::OK();
  }
  if (!node.IsSequence()) return impl_->TypeError(path, "a list of strings", node);
  out->clear();
  for (const auto& item : node) {
    if (!item.IsScalar()) return impl_->TypeError(path, "a list of strings", node);
    out->push_back(item.Scalar());
  }
  return Status::OK();
}

Status Config::Get(std::string_view path, std::map<std::string, std::string>* out) {
  impl_->known.insert(std::string(path));
  YAML::Node node = impl_->Find(path);
  if (!node.IsDefined() || node.IsNull()) return Status::OK();
  if (!node.IsMap()) return impl_->TypeError(path, "a map of strings", node);
  // Walks the nodes themselves: a key may hold dots ("client.rack: x", the
  // usual spelling of a librdkafka property), which a path lookup would split.
  std::vector<std::pair<std::string, YAML::Node>> pending = {{"", node}};
  while (!pending.empty()) {
    auto [prefix, map] = pending.back();
    pending.pop_back();
    for (const auto& kv : map) {
      std::string key =
          prefix.empty() ? kv.first.as<std::string>() : prefix + "." + kv.first.as<std::string>();
      if (kv.second.IsMap()) {
        pending.emplace_back(key, kv.second);
      } else if (kv.second.IsScalar()) {
        (*out)[key] = kv.second.Scalar();
      } else {
        return impl_->TypeError(std::string(path) + "." + key, "a scalar", kv.second);
      }
    }
  }
  return Status::OK();
}

std::vector<std::string> Config::Keys(std::string_view path) const {
  std::vector<std::string> keys;
  YAML::Node node = path.empty() ? impl_->root : impl_->Find(path);
  if (node.IsMap()) {
    for (const auto& kv : node) keys.push_back(kv.first.as<std::string>());
  }
  return keys;
}

std::vector<std::string> Config::Leaves() const {
  std::vector<std::string> leaves;
  CollectLeaves(impl_->root, "", &leaves);
  return leaves;
}

bool Config::WasRead(std::string_view path) const {
  // Read if the path itself or any ancestor subtree was read.
  std::string prefix(path);
  while (true) {
    if (impl_->known.count(prefix)) return true;
    size_t dot = prefix.rfind('.');
    if (dot == std::string::npos) return false;
    prefix.resize(dot);
  }
}

std::vector<std::string> Config::ReadPaths() const {
  return {impl_->known.begin(), impl_->known.end()};
}

Status Config::Rename(std::string_view from, std::string_view to, std::string_view to_origin) {
  YAML::Node node = impl_->Find(from);
  if (!node.IsDefined()) return Status::OK();
  std::string rel, from_value, to_value;
  if (FindConflict(node, impl_->Find(to), "", &rel, &from_value, &to_value)) {
    std::string to_name = std::string(to) + rel;
    if (!to_origin.empty()) to_name += " (set as " + std::string(to_origin) + rel + ")";
    return InvalidArgumentError(impl_->source + ": " + std::string(from) + rel + " is " +
                                from_value + " but " + to_name + " is " + to_value + "; " +
                                std::string(from) + " is an old name of " + std::string(to) +
                                ": keep only " + std::string(to));
  }
  // Detach from the old parent, then attach under the new path.
  std::vector<std::string> parts = SplitPath(from);
  std::vector<YAML::Node> chain{impl_->root};
  for (size_t i = 0; i + 1 < parts.size(); ++i) chain.push_back(chain.back()[parts[i]]);
  YAML::Node moved = YAML::Clone(node);
  chain.back().remove(parts.back());
  // Drop parents the move left empty, so they do not linger as null leaves.
  for (size_t i = chain.size() - 1; i > 0 && chain[i].IsMap() && chain[i].size() == 0; --i) {
    chain[i - 1].remove(parts[i - 1]);
  }
  std::vector<std::string> dest = SplitPath(to);
  std::vector<YAML::Node> out{impl_->root};
  for (size_t i = 0; i + 1 < dest.size(); ++i) {
    YAML::Node next = out.back()[dest[i]];
    if (!next.IsDefined() || !next.IsMap()) {
      out.back()[dest[i]] = YAML::Node(YAML::NodeType::Map);
      next = out.back()[dest[i]];
    }
    out.push_back(next);
  }
  YAML::Node existing = out.back()[dest.back()];
  if (existing.IsDefined() && existing.IsMap() && moved.IsMap()) {
    MergeInto(existing, moved);
  } else if (!existing.IsDefined() || existing.IsNull()) {
    out.back()[dest.back()] = moved;
  }  // else: equal values, nothing to move
  return Status::OK();
}

Status Config::CheckNoUnknownKeys() const {
  std::vector<std::string> unknown;
  for (const auto& leaf : Leaves()) {
    if (!WasRead(leaf)) unknown.push_back(leaf);
  }
  if (unknown.empty()) return Status::OK();
  std::string msg = impl_->source + ": unknown key";
  msg += unknown.size() > 1 ? "s " : " ";
  for (size_t i = 0; i < unknown.size(); ++i) {
    if (i) msg += ", ";
    msg += "'" + unknown[i] + "'";
  }
  return InvalidArgumentError(msg);
}

const std::string& Config::source() const { return impl_->source; }

}  // namespace seg
