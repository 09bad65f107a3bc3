// The server side of seg-store's wire: a transport and protocols that decode
// THBaseService requests under limits, so that a client can make the server
// allocate only in proportion to the bytes it has actually sent.
//
// Thrift's own TBinaryProtocol/TCompactProtocol size a string from its
// claimed length before the bytes arrive (a 4-byte claim of 256 MB allocated
// and zero-filled 256 MB), and the generated code resizes a list to its
// claimed element count before reading any element. Here:
//   - a string is read in chunks as its bytes arrive (at most about twice
//     what arrived is allocated); one longer than max_string_bytes is read
//     and dropped without being stored, and the request is answered with an
//     error naming store.server.max_string_bytes;
//   - a list, set or map of more than 256 elements is first walked element
//     by element (skipped, with every byte kept in the read buffer) and
//     only then handed to the generated code, which sizes its vector: the
//     vector is allocated for elements that have arrived, never for a
//     claimed count. Rows per request (store.server.max_rows_per_request) are
//     checked by the handler once the request is decoded, so an oversized
//     request gets an error and the connection stays in step;
//   - a request larger than max_message_bytes closes the connection (an
//     unframed stream cannot be resynchronised); a frame header claiming
//     more is refused before anything is read or allocated;
//   - a request must arrive in full within request_timeout_ms of its first
//     byte, and a reply must be taken by the client within that time; a
//     connection silent for idle_timeout_ms between requests is closed.
// The violation of a per-request limit is recorded for the thread decoding
// the request (one thread per connection) and read by the handler:
// RequestLimitError().
#pragma once

#include <thrift/TConfiguration.h>
#include <thrift/protocol/TProtocol.h>
#include <thrift/transport/TServerSocket.h>
#include <thrift/transport/TSocket.h>
#include <thrift/transport/TVirtualTransport.h>
#include <functional>  // before Thrift's TServerSocket.h users: it needs std::function

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace seg::store::internal {

struct WireLimits {
  int64_t max_message_bytes = 256ll << 20;  // store.server.max_message_bytes
  int32_t max_string_bytes = 10 << 20;      // store.server.max_string_bytes
  int32_t idle_timeout_ms = 60000;          // store.server.client_idle_timeout_ms; 0 = none
  int32_t request_timeout_ms = 60000;       // store.server.request_timeout_ms; 0 = none
  bool framed = false;
};

// The per-request limit the request being decoded on this thread broke
// ("" when none). Cleared when a request starts; the first violation wins.
const std::string& RequestLimitError();
void SetRequestLimitError(std::string message);
void ClearRequestLimitError();

// Buffered or framed transport over an accepted TSocket, with the limits
// above. One object per direction per connection (Thrift's server asks the
// factory for an input and an output transport); used from the connection's
// thread only.
class ServerTransport : public apache::thrift::transport::TVirtualTransport<ServerTransport> {
 public:
  ServerTransport(std::shared_ptr<apache::thrift::transport::TSocket> socket,
                  const WireLimits& limits, std::shared_ptr<apache::thrift::TConfiguration> config);
  ~ServerTransport() override;

  bool isOpen() const override { return socket_->isOpen(); }
  bool peek() override { return rend_ > rpos_ || socket_->peek(); }
  void open() override { socket_->open(); }
  void close() override { socket_->close(); }
  const std::string getOrigin() const override { return socket_->getOrigin(); }

  uint32_t read(uint8_t* buf, uint32_t len);
  uint32_t readAll(uint8_t* buf, uint32_t len);
  const uint8_t* borrow(uint8_t* buf, uint32_t* len);
  void consume(uint32_t len);
  uint32_t readEnd() override;

  void write(const uint8_t* buf, uint32_t len);
  uint32_t writeEnd() override { return 0; }
  void flush() override;

  // Waits until `n` more bytes of the current request have arrived (they
  // stay buffered for the next reads). Throws when the request cannot be
  // that long (max_message_bytes).
  void Require(int64_t n);
  // Require(n), then steps over those n bytes (they stay buffered while a
  // mark is set).
  void Skip(int64_t n);
  // Remembers the read position; bytes read after it stay buffered until
  // Rewind() returns to it (they are read again) or Unmark(). One at a time.
  void Mark();
  void Rewind();
  void Unmark() { marked_ = false; }
  // Reads `size` bytes into *out as they arrive (chunks, no up-front
  // allocation of `size`).
  void ReadInto(std::string* out, int64_t size);
  // Reads and drops `n` bytes.
  void Discard(int64_t n);

  const WireLimits& limits() const { return limits_; }

 private:
  size_t Available() const { return rend_ - rpos_; }
  std::string Peer() const;
  void Begin();
  void Count(uint64_t n);
  void CheckFits(int64_t n);
  // Reads from the socket until at least `n` bytes are buffered.
  void Fill(size_t n);
  // Frees space after rend_ (compacts or grows the buffer).
  void MakeRoom();
  // One socket read into buf (at most len, within the current frame).
  uint32_t SocketRead(uint8_t* buf, uint32_t len);
  // One socket read under the idle/request timeouts; EOF throws.
  uint32_t RawRead(uint8_t* buf, uint32_t len);
  int NextReadTimeout();
  void ReadFrameHeader();
  void SetRecvTimeout(int ms);
  void SendAll(const uint8_t* data, size_t len);

  std::shared_ptr<apache::thrift::transport::TSocket> socket_;
  WireLimits limits_;
  std::unique_ptr<uint8_t[]> rbuf_;
  size_t rcap_ = 0, rpos_ = 0, rend_ = 0;
  bool marked_ = false;
  size_t mark_ = 0;             // while marked_: buffer offset of the mark (<= rpos_)
  int64_t frame_left_ = 0;      // framed: bytes of the current frame not yet read
  bool in_request_ = false;     // a request's first byte was consumed
  uint64_t request_bytes_ = 0;  // consumed since then
  std::chrono::steady_clock::time_point deadline_;
  int recv_timeout_ms_ = -1;  // as last set on the socket
  int send_timeout_ms_ = -1;
  bool sending_ = false;  // a reply is being written (its deadline is set)
  std::chrono::steady_clock::time_point send_deadline_;
  std::string wbuf_;
};

// Makes a ServerTransport for each accepted socket.
class ServerTransportFactory : public apache::thrift::transport::TTransportFactory {
 public:
  ServerTransportFactory(const WireLimits& limits,
                         std::shared_ptr<apache::thrift::TConfiguration> config)
      : limits_(limits), config_(std::move(config)) {}
  std::shared_ptr<apache::thrift::transport::TTransport> getTransport(
      std::shared_ptr<apache::thrift::transport::TTransport> client) override;

 private:
  WireLimits limits_;
  std::shared_ptr<apache::thrift::TConfiguration> config_;
};

// Binary (non-strict reads, strict writes, as HBase's gateway) or compact
// protocol over a ServerTransport, with the string and container limits.
class ServerProtocolFactory : public apache::thrift::protocol::TProtocolFactory {
 public:
  explicit ServerProtocolFactory(bool binary) : binary_(binary) {}
  std::shared_ptr<apache::thrift::protocol::TProtocol> getProtocol(
      std::shared_ptr<apache::thrift::transport::TTransport> transport) override;

 private:
  bool binary_;
};

}  // namespace seg::store::internal
