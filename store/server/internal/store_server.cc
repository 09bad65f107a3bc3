#include "store/server/store_server.h"

#include <glog/logging.h>

#include <thrift/TConfiguration.h>
#include <thrift/server/TThreadedServer.h>
#include <thrift/transport/TServerSocket.h>
#include <functional>  // before Thrift: TServerSocket.h uses std::function unincluded

#include <climits>
#include <condition_variable>
#include <thread>

#include "common/metrics.h"
#include "store/internal/embedded_store.h"
#include "store/internal/thrift_output.h"
#include "store/server/internal/thrift_handler.h"
#include "store/server/internal/thrift_server_wire.h"
#include "store/store_options.h"

namespace seg::store {
namespace {

namespace at = apache::thrift;

// Tells Start() that serve() has bound the socket, and counts the clients
// being served (one thread each).
class ReadyHandler : public at::server::TServerEventHandler {
 public:
  ReadyHandler()
      : connections_(metrics::GetGauge("seg_store_server_connections",
                                       "Client connections being served, one thread each (at most "
                                       "store.server.max_connections)")) {}
  void preServe() override {
    std::lock_guard<std::mutex> lock(mutex);
    ready = true;
    cv.notify_all();
  }
  void* createContext(std::shared_ptr<at::protocol::TProtocol>,
                      std::shared_ptr<at::protocol::TProtocol>) override {
    connections_.Inc();
    return nullptr;
  }
  void deleteContext(void*, std::shared_ptr<at::protocol::TProtocol>,
                     std::shared_ptr<at::protocol::TProtocol>) override {
    connections_.Dec();
  }
  std::mutex mutex;
  std::condition_variable cv;
  bool ready = false;
  bool failed = false;
  std::string error;

 private:
  metrics::Gauge connections_;
};

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
  if (options.max_message_bytes < 1024 || options.max_string_bytes < 1 ||
      options.max_rows_per_request < 1 || options.client_idle_timeout_ms < 0 ||
      options.request_timeout_ms < 0) {
    return InvalidArgumentError(
        "server: max_message_bytes must be >= 1024, max_string_bytes and max_rows_per_request "
        ">= 1, client_idle_timeout_ms and request_timeout_ms >= 0");
  }
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
  // The configuration bounds nesting depth (64) and, through Thrift's own
  // checks, container claims; the limits proper are in WireLimits.
  auto config =
      std::make_shared<at::TConfiguration>(static_cast<int>(max_msg), static_cast<int>(max_msg));
  internal::WireLimits limits;
  limits.max_message_bytes = max_msg;
  limits.max_string_bytes = d.options.max_string_bytes;
  limits.idle_timeout_ms = d.options.client_idle_timeout_ms;
  limits.request_timeout_ms = d.options.request_timeout_ms;
  limits.framed = d.options.transport == ThriftTransport::kFramed;
  auto handler = std::make_shared<internal::StoreHandler>(d.store.get(), d.options.scanner_lease_ms,
                                                          d.options.max_rows_per_request);
  auto processor = std::make_shared<internal::StoreProcessor>(
      handler, d.options.protocol == ThriftProtocol::kBinary);
  auto tf = std::make_shared<internal::ServerTransportFactory>(limits, config);
  auto pf = std::make_shared<internal::ServerProtocolFactory>(d.options.protocol ==
                                                              ThriftProtocol::kBinary);
  try {
    d.socket =
        std::make_shared<at::transport::TServerSocket>(d.options.bind_address, d.options.port);
    // Accepted sockets start with the idle timeout; ServerTransport
    // shortens it to what is left of request_timeout_ms within a request.
    if (d.options.client_idle_timeout_ms > 0) {
      d.socket->setRecvTimeout(d.options.client_idle_timeout_ms);
    }
    if (d.options.request_timeout_ms > 0) d.socket->setSendTimeout(d.options.request_timeout_ms);
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
  SEG_RETURN_IF_ERROR(config.Get("store.server.bind_address", &out->bind_address));
  SEG_RETURN_IF_ERROR(config.Get("store.server.port", &out->port));
  std::string s;
  if (config.Has("store.server.transport")) {
    SEG_RETURN_IF_ERROR(config.Get("store.server.transport", &s));
    SEG_RETURN_IF_ERROR(ParseThriftTransport(s, &out->transport));
  }
  if (config.Has("store.server.protocol")) {
    SEG_RETURN_IF_ERROR(config.Get("store.server.protocol", &s));
    SEG_RETURN_IF_ERROR(ParseThriftProtocol(s, &out->protocol));
  }
  SEG_RETURN_IF_ERROR(config.Get("store.server.max_connections", &out->max_connections));
  SEG_RETURN_IF_ERROR(
      config.Get("store.server.client_idle_timeout_ms", &out->client_idle_timeout_ms));
  SEG_RETURN_IF_ERROR(config.Get("store.server.request_timeout_ms", &out->request_timeout_ms));
  SEG_RETURN_IF_ERROR(config.Get("store.server.max_message_bytes", &out->max_message_bytes));
  SEG_RETURN_IF_ERROR(config.Get("store.server.max_string_bytes", &out->max_string_bytes));
  SEG_RETURN_IF_ERROR(config.Get("store.server.max_rows_per_request", &out->max_rows_per_request));
  SEG_RETURN_IF_ERROR(config.Get("store.server.scanner_lease_ms", &out->scanner_lease_ms));

  return LoadEmbeddedOptions(config, "store", &out->store);
}

}  // namespace seg::store
