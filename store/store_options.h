// The store settings every binary reads from its config, under one prefix
// ("store"): the backend, the Thrift2 client, and the embedded store (also
// what seg-store serves). config/seg.example.yaml lists the keys.
//
//   store::StoreOptions options;
//   options.backend = store::StoreOptions::Backend::kThrift;  // this binary's default
//   SEG_RETURN_IF_ERROR(store::LoadStoreOptions(config, "store", &options));
#pragma once

#include <string>
#include <string_view>

#include "common/config.h"
#include "common/status.h"
#include "store/store.h"

namespace seg::store {

// <prefix>.backend (thrift|embedded; absent keeps out->backend),
// <prefix>.thrift.*, and the embedded keys below. Backend embedded needs
// <prefix>.data_dir.
Status LoadStoreOptions(Config& config, std::string_view prefix, StoreOptions* out);

// <prefix>.{host, port, transport, protocol, max_connections,
// connect_timeout_ms, call_timeout_ms, max_attempts, backoff_initial_ms,
// backoff_max_ms, max_message_bytes}.
Status LoadThriftClientOptions(Config& config, std::string_view prefix, ThriftClientOptions* out);

// <prefix>.{data_dir, sync, block_cache_mb, write_buffer_mb,
// background_jobs, tables.<table>.<family>.{max_versions, ttl_seconds,
// packed_prefix_bytes}}; without tables the defaults stay.
Status LoadEmbeddedOptions(Config& config, std::string_view prefix, EmbeddedOptions* out);

// "buffered"|"framed", "binary"|"compact".
Status ParseThriftTransport(const std::string& text, ThriftTransport* out);
Status ParseThriftProtocol(const std::string& text, ThriftProtocol* out);

}  // namespace seg::store
