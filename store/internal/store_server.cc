#include "store/store_server.h"

#include <glog/logging.h>

#include <thrift/TConfiguration.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/server/TThreadedServer.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TServerSocket.h>
#include <functional>  // before Thrift: TServerSocket.h uses std::function unincluded

#include <climits>
#include <condition_variable>
#include <thread>

#include "store/internal/embedded_store.h"
#include "store/internal/thrift_handler.h"
#include "store/internal/thrift_output.h"

namespace seg::store {
namespace {

namespace at = apache::thrift;

// Transport factories that carry our message/frame limits (Thrift's
// defaults cap frames at 16 MB, smaller than a big putMultiple).
class BufferedFactory : public at::transport::TTransportFactory {
 public:
  explicit BufferedFactory(std::shared_ptr<at::TConfiguration> c) : config_(std::move(c)) {}
  std::shared_ptr<at::transport::TTransport> getTransport(
      std::shared_ptr<at::transport::TTransport> t) override {
    return std::make_shared<at::transport::TBufferedTransport>(t, 64 * 1024, 64 * 1024, config_);
  }

 private:
  std::shared_ptr<at::TConfiguration> config_;
};

class FramedFactory : public at::transport::TTransportFactory {
 public:
  explicit FramedFactory(std::shared_ptr<at::TConfiguration> c) : config_(std::move(c)) {}
  std::shared_ptr<at::transport::TTransport> getTransport(
      std::shared_ptr<at::transport::TTransport> t) override {
    return std::make_shared<at::transport::TFramedTransport>(t, config_);
  }

 private:
  std::shared_ptr<at::TConfiguration> config_;
};

// Tells Start() that serve() has bound the socket.
class ReadyHandler : public at::server::TServerEventHandler {
 public:
  void preServe() override {
    std::lock_guard<std::mutex> lock(mutex);
    ready = true;
    cv.notify_all();
  }
  std::mutex mutex;
  std::condition_variable cv;
  bool ready = false;
  bool failed = false;
  std::string error;
};

Status ParseTransport(const std::string& s, ThriftTransport* out) {
  if (s == "buffered") {
    *out = ThriftTransport::kBuffered;
  } else if (s == "framed") {
    *out = ThriftTransport::kFramed;
  } else {
    return InvalidArgumentError("transport must be buffered or framed, got '" + s + "'");
  }
  return Status::OK();
}

Status ParseProtocol(const std::string& s, ThriftProtocol* out) {
  if (s == "binary") {
    *out = ThriftProtocol::kBinary;
  } else if (s == "compact") {
    *out = ThriftProtocol::kCompact;
  } else {
    return InvalidArgumentError("protocol must be binary or compact, got '" + s + "'");
  }
  return Status::OK();
}

}  // namespace

struct StoreServer::Impl {
  StoreServerOptions options;
  std::unique_ptr<internal::EmbeddedStore> store;
  std::shared_ptr<at::transport::TServerSocket> socket;
  std::shared_ptr<at::server::TThreadedServer> server;
  std::shared_ptr<ReadyHandler> ready;
  std::thread thread;
  int port = -1;
  bool started = false;
  bool stopped = false;
};

StoreServer::StoreServer() : impl_(std::make_unique<Impl>()) {}
StoreServer::~StoreServer() { Stop(); }

StatusOr<std::unique_ptr<StoreServer>> StoreServer::Create(StoreServerOptions options) {
  if (options.port < 0 || options.port > 65535) return InvalidArgumentError("server: bad port");
  if (options.max_connections < 1) return InvalidArgumentError("server: max_connections < 1");
  std::unique_ptr<StoreServer> s(new StoreServer());
  s->impl_->options = std::move(options);
  return s;
}

void StoreServer::AddObserver(std::shared_ptr<WriteObserver> observer) {
  CHECK(!impl_->started) << "AddObserver after Start";
  impl_->options.store.observers.push_back(std::move(observer));
}

int StoreServer::port() const { return impl_->port; }

Store* StoreServer::store() { return impl_->store.get(); }

Status StoreServer::Start() {
  Impl& d = *impl_;
  if (d.started) return FailedPreconditionError("server: already started");
  d.started = true;
  SEG_ASSIGN_OR_RETURN(d.store, internal::EmbeddedStore::Open(d.options.store));

  int64_t max_msg = std::min<int64_t>(d.options.max_message_bytes, INT_MAX);
  auto config =
      std::make_shared<at::TConfiguration>(static_cast<int>(max_msg), static_cast<int>(max_msg));
  auto handler =
      std::make_shared<internal::StoreHandler>(d.store.get(), d.options.scanner_lease_ms);
  auto processor = std::make_shared<internal::StoreProcessor>(
      handler, d.options.protocol == ThriftProtocol::kBinary);

  std::shared_ptr<at::transport::TTransportFactory> tf;
  if (d.options.transport == ThriftTransport::kFramed) {
    tf = std::make_shared<FramedFactory>(config);
  } else {
    tf = std::make_shared<BufferedFactory>(config);
  }
  // String and container limits: random or hostile bytes cannot make the
  // server allocate more than one message's worth.
  const int32_t str_limit = static_cast<int32_t>(max_msg);
  const int32_t container_limit = 16 << 20;
  std::shared_ptr<at::protocol::TProtocolFactory> pf;
  if (d.options.protocol == ThriftProtocol::kCompact) {
    pf = std::make_shared<at::protocol::TCompactProtocolFactory>(str_limit, container_limit);
  } else {
    pf = std::make_shared<at::protocol::TBinaryProtocolFactory>(str_limit, container_limit, false,
                                                                true);
  }
  try {
    d.socket =
        std::make_shared<at::transport::TServerSocket>(d.options.bind_address, d.options.port);
    if (d.options.client_idle_timeout_ms > 0) {
      d.socket->setRecvTimeout(d.options.client_idle_timeout_ms);
    }
    d.socket->setKeepAlive(true);
    d.server = std::make_shared<at::server::TThreadedServer>(processor, d.socket, tf, pf);
    d.server->setConcurrentClientLimit(d.options.max_connections);
  } catch (const at::TException& e) {
    return InternalError(std::string("server: setup: ") + e.what());
  }
  // Bad clients (garbage bytes, hang-ups) are logged per connection by
  // Thrift; keep that in glog rather than raw stderr.
  internal::RouteThriftOutputToGlog(/*server=*/true);
  d.ready = std::make_shared<ReadyHandler>();
  d.server->setServerEventHandler(d.ready);
  auto ready = d.ready;
  auto server = d.server;
  d.thread = std::thread([ready, server] {
    try {
      server->serve();
    } catch (const std::exception& e) {
      LOG(ERROR) << "store server: serve: " << e.what();
      std::lock_guard<std::mutex> lock(ready->mutex);
      ready->failed = true;
      ready->error = e.what();
      ready->cv.notify_all();
    }
  });
  {
    std::unique_lock<std::mutex> lock(d.ready->mutex);
    if (!d.ready->cv.wait_for(lock, std::chrono::seconds(30),
                              [&] { return d.ready->ready || d.ready->failed; })) {
      lock.unlock();
      Stop();
      return DeadlineExceededError("server: did not start listening in 30 s");
    }
    if (d.ready->failed) {
      std::string err = d.ready->error;
      lock.unlock();
      Stop();
      return UnavailableError("server: cannot listen on " + d.options.bind_address + ":" +
                              std::to_string(d.options.port) + ": " + err);
    }
  }
  d.port = d.socket->getPort();
  LOG(INFO) << "store server: serving THBaseService on " << d.options.bind_address << ":" << d.port
            << " (" << (d.options.transport == ThriftTransport::kFramed ? "framed" : "buffered")
            << ", " << (d.options.protocol == ThriftProtocol::kCompact ? "compact" : "binary")
            << ")";
  return Status::OK();
}

void StoreServer::Stop() {
  Impl& d = *impl_;
  if (d.stopped || !d.started) return;
  d.stopped = true;
  if (d.server) d.server->stop();
  if (d.thread.joinable()) d.thread.join();
  d.server.reset();
  d.socket.reset();
  d.store.reset();  // closes RocksDB after every client thread is gone
  LOG(INFO) << "store server: stopped";
}

Status LoadStoreServerOptions(Config& config, StoreServerOptions* out) {
  SEG_RETURN_IF_ERROR(config.Get("server.bind_address", &out->bind_address));
  SEG_RETURN_IF_ERROR(config.Get("server.port", &out->port));
  std::string s;
  if (config.Has("server.transport")) {
    SEG_RETURN_IF_ERROR(config.Get("server.transport", &s));
    SEG_RETURN_IF_ERROR(ParseTransport(s, &out->transport));
  }
  if (config.Has("server.protocol")) {
    SEG_RETURN_IF_ERROR(config.Get("server.protocol", &s));
    SEG_RETURN_IF_ERROR(ParseProtocol(s, &out->protocol));
  }
  SEG_RETURN_IF_ERROR(config.Get("server.max_connections", &out->max_connections));
  SEG_RETURN_IF_ERROR(config.Get("server.client_idle_timeout_ms", &out->client_idle_timeout_ms));
  SEG_RETURN_IF_ERROR(config.Get("server.max_message_bytes", &out->max_message_bytes));
  SEG_RETURN_IF_ERROR(config.Get("server.scanner_lease_ms", &out->scanner_lease_ms));

  EmbeddedOptions& st = out->store;
  SEG_RETURN_IF_ERROR(config.Get("store.data_dir", &st.data_dir));
  if (config.Has("store.sync")) {
    SEG_RETURN_IF_ERROR(config.Get("store.sync", &s));
    if (s == "process_crash_safe") {
      st.sync = SyncPolicy::kProcessCrashSafe;
    } else if (s == "fsync_every_write") {
      st.sync = SyncPolicy::kFsyncEveryWrite;
    } else {
      return InvalidArgumentError(config.source() +
                                  ": store.sync must be process_crash_safe or fsync_every_write");
    }
  }
  int64_t mb = st.block_cache_bytes >> 20;
  SEG_RETURN_IF_ERROR(config.Get("store.block_cache_mb", &mb));
  st.block_cache_bytes = mb << 20;
  mb = st.write_buffer_bytes >> 20;
  SEG_RETURN_IF_ERROR(config.Get("store.write_buffer_mb", &mb));
  st.write_buffer_bytes = mb << 20;
  SEG_RETURN_IF_ERROR(config.Get("store.background_jobs", &st.background_jobs));

  // store.tables.<table>.<family>.{max_versions, ttl_seconds, packed_prefix_bytes}
  std::vector<std::string> tables = config.Keys("store.tables");
  if (!tables.empty()) {
    st.tables.clear();
    for (const auto& t : tables) {
      TableOptions table;
      table.name = t;
      for (const auto& f : config.Keys("store.tables." + t)) {
        FamilyOptions fam;
        fam.name = f;
        std::string base = "store.tables." + t + "." + f;
        SEG_RETURN_IF_ERROR(config.Get(base + ".max_versions", &fam.max_versions));
        int64_t ttl_s = 0;
        SEG_RETURN_IF_ERROR(config.Get(base + ".ttl_seconds", &ttl_s));
        fam.ttl_ms = ttl_s * 1000;
        SEG_RETURN_IF_ERROR(config.Get(base + ".packed_prefix_bytes", &fam.packed_prefix_bytes));
        table.families.push_back(std::move(fam));
      }
      st.tables.push_back(std::move(table));
    }
  }
  return Status::OK();
}

}  // namespace seg::store
