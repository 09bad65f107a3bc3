// seg-store's Thrift2 server: bytes, as a client would send them on one
// connection, into the server's own transport and protocols
// (thrift_server_wire.h: string, container and message limits) and
// StoreProcessor over an embedded store, exactly as TThreadedServer's
// per-connection loop drives them. No socket: an in-memory TSocket hands the
// input out in chunks and swallows the replies.
//
// Input: byte 0 picks binary/compact (bit 0), buffered/framed (bit 1) and
// the size of the reads the "socket" returns (bits 2-4: 1..128 bytes, so
// requests arrive split at every point); the rest is the byte stream.
// Limits are small (64-byte strings, 8 rows, 32 KB messages) so inputs of a
// few KB cross each of them.
//
// The loop, like TConnectedClient::run, ends the connection on a Thrift
// exception; anything else escaping the processor (std::bad_alloc,
// std::length_error, ...) would end the server's process, so it is a crash.
#include <glog/logging.h>
#include <thrift/TConfiguration.h>
#include <thrift/transport/TSocket.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "store/server/internal/thrift_handler.h"
#include "store/server/internal/thrift_server_wire.h"
#include "store/store.h"

namespace {

namespace tt = apache::thrift::transport;
using namespace seg::store;

// A connected TSocket whose peer is a byte buffer.
class MemorySocket : public tt::TSocket {
 public:
  MemorySocket(const uint8_t* data, size_t size, size_t chunk)
      : data_(data), size_(size), chunk_(chunk) {}
  bool isOpen() const override { return open_; }
  bool peek() override { return open_ && pos_ < size_; }
  void open() override {}
  void close() override { open_ = false; }
  uint32_t read(uint8_t* buf, uint32_t len) override {
    size_t n = std::min<size_t>({len, chunk_, size_ - pos_});
    if (n > 0) std::memcpy(buf, data_ + pos_, n);
    pos_ += n;
    return static_cast<uint32_t>(n);  // 0: the client closed its side
  }
  void write(const uint8_t* buf, uint32_t len) override { written_ += len; }
  uint32_t write_partial(const uint8_t* buf, uint32_t len) override {
    written_ += len;
    return len;
  }

 private:
  const uint8_t* data_;
  size_t size_, pos_ = 0, chunk_;
  bool open_ = true;
  uint64_t written_ = 0;
};

struct Server {
  std::filesystem::path dir;
  std::unique_ptr<Store> store;
  std::shared_ptr<internal::StoreHandler> handler;
  std::shared_ptr<internal::StoreProcessor> processor[2];  // compact, binary
};

Server* TheServer() {
  static Server* server = [] {
    auto* s = new Server;
    char tmpl[] = "/tmp/seg-store-fuzz-XXXXXX";
    CHECK(mkdtemp(tmpl) != nullptr);
    s->dir = tmpl;
    StoreOptions options;
    options.embedded.data_dir = s->dir.string();
    options.embedded.block_cache_bytes = 8 << 20;
    options.embedded.write_buffer_bytes = 4 << 20;
    options.embedded.background_jobs = 1;
    auto store = OpenStore(options);
    CHECK(store.ok()) << store.status();
    s->store = std::move(store).value();
    s->handler = std::make_shared<internal::StoreHandler>(s->store.get(), /*lease_ms=*/60000,
                                                          /*max_rows=*/8);
    s->processor[0] = std::make_shared<internal::StoreProcessor>(s->handler, false);
    s->processor[1] = std::make_shared<internal::StoreProcessor>(s->handler, true);
    std::atexit([] {
      Server* s = TheServer();
      s->processor[0].reset();
      s->processor[1].reset();
      s->handler.reset();
      s->store.reset();
      std::error_code ec;
      std::filesystem::remove_all(s->dir, ec);
    });
    return s;
  }();
  return server;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Server* server = TheServer();
  const bool binary = data[0] & 1;
  internal::WireLimits limits;
  limits.max_message_bytes = 32 << 10;
  limits.max_string_bytes = 64;
  limits.idle_timeout_ms = 0;
  limits.request_timeout_ms = 0;
  limits.framed = data[0] & 2;
  const size_t chunk = size_t{1} << ((data[0] >> 2) & 7);
  auto config = std::make_shared<apache::thrift::TConfiguration>(
      static_cast<int>(limits.max_message_bytes), static_cast<int>(limits.max_message_bytes));

  auto socket = std::make_shared<MemorySocket>(data + 1, size - 1, chunk);
  internal::ServerTransportFactory transports(limits, config);
  internal::ServerProtocolFactory protocols(binary);
  auto in = protocols.getProtocol(transports.getTransport(socket));
  auto out = protocols.getProtocol(transports.getTransport(socket));
  auto& processor = server->processor[binary ? 1 : 0];
  for (bool done = false; !done;) {
    try {
      if (!processor->process(in, out, nullptr)) break;
    } catch (const apache::thrift::TException&) {
      done = true;  // TTransportException included: the connection ends
    }
  }
  return 0;
}
