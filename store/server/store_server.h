// StoreServer: the embedded engine served over THBaseService (HBase's
// Thrift2 protocol), so several processes share one store and anything that
// speaks HBase Thrift2 can use it. `seg-store` is a thin main around it.
//
//   StoreServerOptions opts;                 // 127.0.0.1:9090, buffered+binary
//   opts.store.data_dir = "/var/lib/seg/store";
//   auto server = StoreServer::Create(opts);
//   (*server)->AddObserver(bridge);          // e.g. the coprocessor-bridge
//   SEG_RETURN_IF_ERROR((*server)->Start()); // bound and serving on return
//   ... (*server)->port() ...
//   (*server)->Stop();
//
// One thread per client connection (Thrift TThreadedServer): calls block on
// RocksDB, clients are few (tens of pipeline workers) and long-lived, and it
// measured faster than a fixed pool for that mix. The threads are bounded:
// at most max_connections clients are served at once (further connections
// wait in the listen backlog until one leaves), a client silent for
// client_idle_timeout_ms between requests is closed (as HBase's gateway, 60
// s), and a request must arrive in full, and its reply be taken, within
// request_timeout_ms, so a trickling client frees its thread too.
//
// Limits per request (store/README.md "Limits"; thrift_server_wire.h): a
// value (string) over max_string_bytes is read without being stored, and a
// getMultiple/putMultiple/deleteMultiple over max_rows_per_request is not
// applied; both are answered with a TIOError naming the key and the
// connection stays usable. A request
// over max_message_bytes, or malformed, closes that client's connection;
// other clients carry on. Nothing is allocated for a claimed length before
// the bytes arrive.
//
// Thread-safety: AddObserver before Start; Start/Stop from one thread.
#pragma once

#include <memory>
#include <string>

#include "common/config.h"
#include "common/status.h"
#include "store/store.h"

namespace seg::store {

struct StoreServerOptions {
  std::string bind_address = "127.0.0.1";  // loopback unless told otherwise
  int32_t port = 9090;                     // HBase Thrift2 default; 0 = pick a free one
  ThriftTransport transport = ThriftTransport::kBuffered;
  ThriftProtocol protocol = ThriftProtocol::kBinary;
  int32_t max_connections = 1024;           // concurrent clients (one thread each)
  int32_t client_idle_timeout_ms = 60000;   // close clients silent between requests; 0 = never
  int32_t request_timeout_ms = 60000;       // a request must arrive (a reply be taken) within
  int64_t max_message_bytes = 256ll << 20;  // per request; more closes the connection
  int32_t max_string_bytes = 10 << 20;      // per value (as HBase's 10 MB cell limit)
  int32_t max_rows_per_request = 10000;     // rows per multi-row call / scanner batch
  int64_t scanner_lease_ms = 60000;         // idle scanners are closed after this (HBase: 60 s)
  EmbeddedOptions store;                    // data_dir, tables, sync policy, ...
};

// Reads `store.*` keys (store.server.* and the embedded store's; (see docs in seg_store_main.cc)
// over the defaults already in *out. InvalidArgument on bad values.
Status LoadStoreServerOptions(Config& config, StoreServerOptions* out);

class StoreServer {
 public:
  static StatusOr<std::unique_ptr<StoreServer>> Create(StoreServerOptions options);
  ~StoreServer();  // Stop()s

  // Registers an observer told about every committed put (see
  // WriteObserver in store.h). Only before Start().
  void AddObserver(std::shared_ptr<WriteObserver> observer);

  // Opens the store, binds and serves on background threads. Returns once
  // the port is bound (OK) or binding/opening failed.
  Status Start();

  // The bound port (after Start); useful with port 0.
  int port() const;

  // The served store (after Start), for in-process users of the server.
  Store* store();

  // Stops accepting, interrupts client connections, waits for serving
  // threads and closes the store. Idempotent.
  void Stop();

 private:
  StoreServer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace seg::store
