// Loading StoreOptions from a config: the one store loader every binary uses.
#include "store/store_options.h"

namespace seg::store {
namespace {

Status BadValue(const std::string& key, const std::string& got, std::string_view expected,
                const Config& config) {
  return InvalidArgumentError(config.source() + ": " + key + ": expected " + std::string(expected) +
                              ", got '" + got + "'");
}

}  // namespace

Status ParseThriftTransport(const std::string& text, ThriftTransport* out) {
  if (text == "buffered") {
    *out = ThriftTransport::kBuffered;
  } else if (text == "framed") {
    *out = ThriftTransport::kFramed;
  } else {
    return InvalidArgumentError("transport must be buffered or framed, got '" + text + "'");
  }
  return Status::OK();
}

Status ParseThriftProtocol(const std::string& text, ThriftProtocol* out) {
  if (text == "binary") {
    *out = ThriftProtocol::kBinary;
  } else if (text == "compact") {
    *out = ThriftProtocol::kCompact;
  } else {
    return InvalidArgumentError("protocol must be binary or compact, got '" + text + "'");
  }
  return Status::OK();
}

Status LoadThriftClientOptions(Config& config, std::string_view prefix, ThriftClientOptions* out) {
  const std::string p(prefix);
  SEG_RETURN_IF_ERROR(config.Get(p + ".host", &out->host));
  SEG_RETURN_IF_ERROR(config.Get(p + ".port", &out->port));
  std::string text;
  if (config.Has(p + ".transport")) {
    SEG_RETURN_IF_ERROR(config.Get(p + ".transport", &text));
    if (!ParseThriftTransport(text, &out->transport).ok()) {
      return BadValue(p + ".transport", text, "buffered or framed", config);
    }
  }
  if (config.Has(p + ".protocol")) {
    SEG_RETURN_IF_ERROR(config.Get(p + ".protocol", &text));
    if (!ParseThriftProtocol(text, &out->protocol).ok()) {
      return BadValue(p + ".protocol", text, "binary or compact", config);
    }
  }
  SEG_RETURN_IF_ERROR(config.Get(p + ".max_connections", &out->max_connections));
  SEG_RETURN_IF_ERROR(config.Get(p + ".connect_timeout_ms", &out->connect_timeout_ms));
  SEG_RETURN_IF_ERROR(config.Get(p + ".call_timeout_ms", &out->call_timeout_ms));
  SEG_RETURN_IF_ERROR(config.Get(p + ".max_attempts", &out->max_attempts));
  SEG_RETURN_IF_ERROR(config.Get(p + ".backoff_initial_ms", &out->backoff_initial_ms));
  SEG_RETURN_IF_ERROR(config.Get(p + ".backoff_max_ms", &out->backoff_max_ms));
  SEG_RETURN_IF_ERROR(config.Get(p + ".max_message_bytes", &out->max_message_bytes));
  if (out->port < 1 || out->port > 65535) {
    return InvalidArgumentError(config.source() + ": " + p + ".port must be 1..65535");
  }
  if (out->max_connections < 1 || out->call_timeout_ms < 1 || out->connect_timeout_ms < 1 ||
      out->max_attempts < 1) {
    return InvalidArgumentError(config.source() + ": " + p +
                                ".max_connections, .connect_timeout_ms, .call_timeout_ms and "
                                ".max_attempts must be positive");
  }
  return Status::OK();
}

Status LoadEmbeddedOptions(Config& config, std::string_view prefix, EmbeddedOptions* out) {
  const std::string p(prefix);
  SEG_RETURN_IF_ERROR(config.Get(p + ".data_dir", &out->data_dir));
  std::string s;
  if (config.Has(p + ".sync")) {
    SEG_RETURN_IF_ERROR(config.Get(p + ".sync", &s));
    if (s == "process_crash_safe") {
      out->sync = SyncPolicy::kProcessCrashSafe;
    } else if (s == "fsync_every_write") {
      out->sync = SyncPolicy::kFsyncEveryWrite;
    } else {
      return BadValue(p + ".sync", s, "process_crash_safe or fsync_every_write", config);
    }
  }
  int64_t mb = out->block_cache_bytes >> 20;
  SEG_RETURN_IF_ERROR(config.Get(p + ".block_cache_mb", &mb));
  out->block_cache_bytes = mb << 20;
  mb = out->write_buffer_bytes >> 20;
  SEG_RETURN_IF_ERROR(config.Get(p + ".write_buffer_mb", &mb));
  out->write_buffer_bytes = mb << 20;
  SEG_RETURN_IF_ERROR(config.Get(p + ".background_jobs", &out->background_jobs));

  // <prefix>.tables.<table>.<family>.{max_versions, ttl_seconds, packed_prefix_bytes}
  std::vector<std::string> tables = config.Keys(p + ".tables");
  if (!tables.empty()) {
    out->tables.clear();
    for (const auto& t : tables) {
      TableOptions table;
      table.name = t;
      for (const auto& f : config.Keys(p + ".tables." + t)) {
        FamilyOptions fam;
        fam.name = f;
        std::string base = p + ".tables." + t + "." + f;
        SEG_RETURN_IF_ERROR(config.Get(base + ".max_versions", &fam.max_versions));
        int64_t ttl_s = 0;
        SEG_RETURN_IF_ERROR(config.Get(base + ".ttl_seconds", &ttl_s));
        fam.ttl_ms = ttl_s * 1000;
        SEG_RETURN_IF_ERROR(config.Get(base + ".packed_prefix_bytes", &fam.packed_prefix_bytes));
        table.families.push_back(std::move(fam));
      }
      out->tables.push_back(std::move(table));
    }
  }
  return Status::OK();
}

Status LoadStoreOptions(Config& config, std::string_view prefix, StoreOptions* out) {
  const std::string p(prefix);
  if (config.Has(p + ".backend")) {
    std::string backend;
    SEG_RETURN_IF_ERROR(config.Get(p + ".backend", &backend));
    if (backend == "thrift") {
      out->backend = StoreOptions::Backend::kThrift;
    } else if (backend == "embedded") {
      out->backend = StoreOptions::Backend::kEmbedded;
    } else {
      return BadValue(p + ".backend", backend, "thrift or embedded", config);
    }
  }
  SEG_RETURN_IF_ERROR(LoadThriftClientOptions(config, p + ".thrift", &out->thrift));
  SEG_RETURN_IF_ERROR(LoadEmbeddedOptions(config, p, &out->embedded));
  if (out->backend == StoreOptions::Backend::kEmbedded && out->embedded.data_dir.empty()) {
    return InvalidArgumentError(config.source() + ": " + p +
                                ".data_dir is required for backend embedded");
  }
  return Status::OK();
}

Status StoreOptions::LoadFrom(Config& config, std::string_view prefix) {
  return LoadStoreOptions(config, prefix, this);
}

}  // namespace seg::store
