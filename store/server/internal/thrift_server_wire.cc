#include "store/server/internal/thrift_server_wire.h"

#include <glog/logging.h>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TCompactProtocol.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "common/metrics.h"

namespace seg::store::internal {
namespace {

namespace at = apache::thrift;
namespace tp = apache::thrift::protocol;
namespace tt = apache::thrift::transport;
using Clock = std::chrono::steady_clock;

thread_local std::string tl_limit_error;

constexpr size_t kChunk = 64 * 1024;           // socket reads, string growth steps
constexpr size_t kMinRead = 4096;              // less room than this: make room first
constexpr int32_t kMaxMethodNameBytes = 1024;  // THBaseService's longest is 17

// Why the server closed a connection it could not serve.
metrics::Counter ClosedCounter(const char* reason) {
  return metrics::GetCounter("seg_store_server_connections_closed_total",
                             "Client connections the store server closed, by reason",
                             {{"reason", reason}});
}

// Milliseconds left until `deadline`, rounded up; <= 0 once it passed.
int64_t MsLeft(Clock::time_point deadline) {
  auto left = deadline - Clock::now();
  return std::chrono::ceil<std::chrono::milliseconds>(left).count();
}

}  // namespace

const std::string& RequestLimitError() { return tl_limit_error; }

void SetRequestLimitError(std::string message) {
  if (tl_limit_error.empty()) tl_limit_error = std::move(message);
}

void ClearRequestLimitError() { tl_limit_error.clear(); }

ServerTransport::ServerTransport(std::shared_ptr<tt::TSocket> socket, const WireLimits& limits,
                                 std::shared_ptr<at::TConfiguration> config)
    : tt::TVirtualTransport<ServerTransport>(config), socket_(std::move(socket)), limits_(limits) {}

ServerTransport::~ServerTransport() = default;

std::string ServerTransport::Peer() const {
  // Numeric: no name lookup on the way to closing a bad client.
  return socket_->getPeerAddress() + ":" + std::to_string(socket_->getPeerPort());
}

void ServerTransport::Begin() {
  in_request_ = true;
  request_bytes_ = 0;
  if (limits_.request_timeout_ms > 0) {
    deadline_ = Clock::now() + std::chrono::milliseconds(limits_.request_timeout_ms);
  }
}

void ServerTransport::Count(uint64_t n) {
  if (!in_request_) Begin();
  request_bytes_ += n;
  if (request_bytes_ > static_cast<uint64_t>(limits_.max_message_bytes)) {
    static metrics::Counter too_large = ClosedCounter("request_too_large");
    too_large.Inc();
    throw tt::TTransportException(tt::TTransportException::CORRUPTED_DATA,
                                  "request larger than store.server.max_message_bytes (" +
                                      std::to_string(limits_.max_message_bytes) + "); closing " +
                                      Peer());
  }
}

void ServerTransport::CheckFits(int64_t n) {
  if (!in_request_) Begin();
  if (n > limits_.max_message_bytes - static_cast<int64_t>(request_bytes_)) {
    static metrics::Counter too_large = ClosedCounter("request_too_large");
    too_large.Inc();
    throw tt::TTransportException(tt::TTransportException::CORRUPTED_DATA,
                                  "a length of " + std::to_string(n) +
                                      " bytes does not fit in store.server.max_message_bytes (" +
                                      std::to_string(limits_.max_message_bytes) + "); closing " +
                                      Peer());
  }
}

void ServerTransport::SetRecvTimeout(int ms) {
  if (ms == recv_timeout_ms_) return;
  socket_->setRecvTimeout(ms);
  recv_timeout_ms_ = ms;
}

int ServerTransport::NextReadTimeout() {
  // Between requests: the idle timeout (0 = none). Within one, also no more
  // than what is left of request_timeout_ms; a timeout already set that is
  // at most 100 ms longer is kept, so a request read in many pieces costs
  // few setsockopt calls.
  int want = limits_.idle_timeout_ms;
  if (in_request_ && limits_.request_timeout_ms > 0) {
    int64_t left = MsLeft(deadline_);
    if (left <= 0) {
      static metrics::Counter slow = ClosedCounter("slow_request");
      slow.Inc();
      LOG_EVERY_N(WARNING, 100) << "store server: closing " << Peer()
                                << ": request not received in full within "
                                   "store.server.request_timeout_ms ("
                                << limits_.request_timeout_ms << " ms)";
      throw tt::TTransportException(tt::TTransportException::TIMED_OUT,
                                    "request not received within store.server.request_timeout_ms");
    }
    if (want <= 0 || left < want) want = static_cast<int>(left);
    if (recv_timeout_ms_ > 0 && want <= recv_timeout_ms_ && recv_timeout_ms_ <= want + 100) {
      want = recv_timeout_ms_;
    }
  }
  return want;
}

uint32_t ServerTransport::RawRead(uint8_t* buf, uint32_t len) {
  SetRecvTimeout(NextReadTimeout());
  uint32_t got = 0;
  try {
    got = socket_->read(buf, len);
  } catch (const tt::TTransportException& e) {
    if (e.getType() == tt::TTransportException::TIMED_OUT) {
      static metrics::Counter idle = ClosedCounter("idle");
      static metrics::Counter slow = ClosedCounter("slow_request");
      (in_request_ ? slow : idle).Inc();
      VLOG(1) << "store server: closing " << Peer() << ": "
              << (in_request_ ? "request stalled" : "idle");
    }
    throw;
  }
  if (got == 0) {
    throw tt::TTransportException(tt::TTransportException::END_OF_FILE, "client closed");
  }
  if (!in_request_) Begin();  // the first byte of a request starts its clock
  return got;
}

uint32_t ServerTransport::SocketRead(uint8_t* buf, uint32_t len) {
  if (limits_.framed) {
    while (frame_left_ == 0) ReadFrameHeader();
    len = static_cast<uint32_t>(std::min<int64_t>(len, frame_left_));
  }
  uint32_t got = RawRead(buf, len);
  if (limits_.framed) frame_left_ -= got;
  return got;
}

void ServerTransport::ReadFrameHeader() {
  uint8_t header[4];
  uint32_t have = 0;
  while (have < 4) have += RawRead(header + have, 4 - have);
  int32_t size = static_cast<int32_t>((uint32_t{header[0]} << 24) | (uint32_t{header[1]} << 16) |
                                      (uint32_t{header[2]} << 8) | uint32_t{header[3]});
  if (size < 0 || size > limits_.max_message_bytes) {
    static metrics::Counter too_large = ClosedCounter("request_too_large");
    too_large.Inc();
    throw tt::TTransportException(
        tt::TTransportException::CORRUPTED_DATA,
        "frame of " + std::to_string(size) + " bytes: more than store.server.max_message_bytes (" +
            std::to_string(limits_.max_message_bytes) + "); closing " + Peer());
  }
  frame_left_ = size;
}

void ServerTransport::Fill(size_t n) {
  while (Available() < n) {
    if (rcap_ - rend_ < kMinRead) MakeRoom();
    rend_ += SocketRead(rbuf_.get() + rend_, static_cast<uint32_t>(rcap_ - rend_));
  }
}

void ServerTransport::MakeRoom() {
  // Bytes before the first one kept (the mark, else the read position) are
  // done with. When they are at least half the buffer, moving the rest to
  // the front makes room; otherwise the buffer doubles. So it grows only
  // when mostly full of bytes that arrived and are still needed, however
  // much a length field claims.
  size_t keep = marked_ ? mark_ : rpos_;
  size_t kept = rend_ - keep;
  if (rcap_ > 0 && keep >= rcap_ / 2) {
    std::memmove(rbuf_.get(), rbuf_.get() + keep, kept);
  } else {
    size_t cap = std::max(kChunk, 2 * rcap_);
    std::unique_ptr<uint8_t[]> grown(new uint8_t[cap]);  // not zeroed: filled by reads
    if (kept > 0) std::memcpy(grown.get(), rbuf_.get() + keep, kept);
    rbuf_ = std::move(grown);
    rcap_ = cap;
  }
  rpos_ -= keep;
  rend_ -= keep;
  if (marked_) mark_ -= keep;
}

uint32_t ServerTransport::read(uint8_t* buf, uint32_t len) {
  if (len == 0) return 0;
  if (Available() == 0) {
    if (len >= kChunk && !marked_) {  // a large read goes straight to the caller's buffer
      uint32_t got = SocketRead(buf, len);
      Count(got);
      return got;
    }
    Fill(1);
  }
  uint32_t n = static_cast<uint32_t>(std::min<size_t>(len, Available()));
  std::memcpy(buf, rbuf_.get() + rpos_, n);
  rpos_ += n;
  Count(n);
  return n;
}

uint32_t ServerTransport::readAll(uint8_t* buf, uint32_t len) {
  if (Available() >= len) {
    std::memcpy(buf, rbuf_.get() + rpos_, len);
    rpos_ += len;
    Count(len);
    return len;
  }
  uint32_t have = 0;
  while (have < len) have += read(buf + have, len - have);
  return len;
}

const uint8_t* ServerTransport::borrow(uint8_t* /*buf*/, uint32_t* len) {
  if (Available() < *len) return nullptr;
  *len = static_cast<uint32_t>(Available());
  return rbuf_.get() + rpos_;
}

void ServerTransport::consume(uint32_t len) {
  if (len > Available()) {
    throw tt::TTransportException(tt::TTransportException::BAD_ARGS, "consume beyond the buffer");
  }
  rpos_ += len;
  Count(len);
}

uint32_t ServerTransport::readEnd() {
  uint32_t bytes = static_cast<uint32_t>(std::min<uint64_t>(request_bytes_, UINT32_MAX));
  in_request_ = false;
  request_bytes_ = 0;
  if (Available() == 0) rpos_ = rend_ = 0;
  // A large request grew the buffer: give the memory back between requests.
  if (rcap_ > 4 * kChunk && Available() <= kChunk) {
    std::unique_ptr<uint8_t[]> small(new uint8_t[kChunk]);
    if (Available() > 0) std::memcpy(small.get(), rbuf_.get() + rpos_, Available());
    rend_ = Available();
    rpos_ = 0;
    rbuf_ = std::move(small);
    rcap_ = kChunk;
  }
  return bytes;
}

void ServerTransport::Require(int64_t n) {
  if (n <= 0 || Available() >= static_cast<uint64_t>(n)) return;
  CheckFits(n);
  Fill(static_cast<size_t>(n));
}

void ServerTransport::Skip(int64_t n) {
  Require(n);
  if (n <= 0) return;
  rpos_ += static_cast<size_t>(n);
  Count(static_cast<uint64_t>(n));
}

void ServerTransport::Mark() {
  marked_ = true;
  mark_ = rpos_;
}

void ServerTransport::Rewind() {
  request_bytes_ -= rpos_ - mark_;
  rpos_ = mark_;
  marked_ = false;
}

void ServerTransport::ReadInto(std::string* out, int64_t size) {
  out->clear();
  if (size <= 0) return;
  if (Available() >= static_cast<uint64_t>(size)) {
    out->assign(reinterpret_cast<const char*>(rbuf_.get() + rpos_), static_cast<size_t>(size));
    rpos_ += static_cast<size_t>(size);
    Count(static_cast<uint64_t>(size));
    return;
  }
  CheckFits(size);
  // Grow with what arrived: each step at most doubles the string.
  size_t done = 0, total = static_cast<size_t>(size);
  while (done < total) {
    size_t chunk = std::min(total - done, std::max(kChunk, done));
    out->resize(done + chunk);
    readAll(reinterpret_cast<uint8_t*>(out->data() + done), static_cast<uint32_t>(chunk));
    done += chunk;
  }
}

void ServerTransport::Discard(int64_t n) {
  if (marked_) return Skip(n);  // must be read again after Rewind()
  CheckFits(n);
  while (n > 0) {
    if (Available() == 0) Fill(1);
    size_t take = std::min<size_t>(Available(), static_cast<size_t>(n));
    rpos_ += take;
    Count(take);
    n -= static_cast<int64_t>(take);
  }
}

void ServerTransport::write(const uint8_t* buf, uint32_t len) {
  if (limits_.framed) {
    if (wbuf_.empty()) wbuf_.assign(4, '\0');  // the frame size, filled in by flush()
    wbuf_.append(reinterpret_cast<const char*>(buf), len);
    return;
  }
  if (wbuf_.size() + len > kChunk) {
    if (!wbuf_.empty()) {
      SendAll(reinterpret_cast<const uint8_t*>(wbuf_.data()), wbuf_.size());
      wbuf_.clear();
    }
    if (len >= kChunk) {
      SendAll(buf, len);
      return;
    }
  }
  wbuf_.append(reinterpret_cast<const char*>(buf), len);
}

void ServerTransport::flush() {
  if (!wbuf_.empty()) {
    if (limits_.framed) {
      uint32_t size = static_cast<uint32_t>(wbuf_.size() - 4);
      for (int i = 0; i < 4; ++i) wbuf_[i] = static_cast<char>(size >> (24 - 8 * i));
    }
    SendAll(reinterpret_cast<const uint8_t*>(wbuf_.data()), wbuf_.size());
    wbuf_.clear();
    if (wbuf_.capacity() > 4 * kChunk) std::string().swap(wbuf_);  // do not pin a big reply
  }
  sending_ = false;
}

void ServerTransport::SendAll(const uint8_t* data, size_t len) {
  // One deadline per reply (from its first write to flush()).
  if (!sending_) {
    sending_ = true;
    if (limits_.request_timeout_ms > 0) {
      send_deadline_ = Clock::now() + std::chrono::milliseconds(limits_.request_timeout_ms);
      if (send_timeout_ms_ != limits_.request_timeout_ms) {
        socket_->setSendTimeout(limits_.request_timeout_ms);
        send_timeout_ms_ = limits_.request_timeout_ms;
      }
    }
  }
  size_t sent = 0;
  while (sent < len) {
    if (limits_.request_timeout_ms > 0) {
      int64_t left = MsLeft(send_deadline_);
      if (left <= 0) {
        static metrics::Counter slow = ClosedCounter("slow_reader");
        slow.Inc();
        LOG_EVERY_N(WARNING, 100) << "store server: closing " << Peer()
                                  << ": reply not taken within store.server.request_timeout_ms ("
                                  << limits_.request_timeout_ms << " ms)";
        throw tt::TTransportException(tt::TTransportException::TIMED_OUT,
                                      "reply not taken within store.server.request_timeout_ms");
      }
      if (left + 100 < send_timeout_ms_) {  // re-armed only when clearly shorter
        socket_->setSendTimeout(static_cast<int>(left));
        send_timeout_ms_ = static_cast<int>(left);
      }
    }
    // 0 = the send timeout expired; the deadline check above ends the reply.
    sent += socket_->write_partial(data + sent,
                                   static_cast<uint32_t>(std::min<size_t>(len - sent, INT_MAX)));
  }
}

std::shared_ptr<tt::TTransport> ServerTransportFactory::getTransport(
    std::shared_ptr<tt::TTransport> client) {
  auto socket = std::dynamic_pointer_cast<tt::TSocket>(client);
  CHECK(socket != nullptr) << "store server: accepted a transport that is not a TSocket";
  return std::make_shared<ServerTransport>(std::move(socket), limits_, config_);
}

namespace {

// Lists longer than this are walked before the generated code sizes a
// vector for them: up to this many elements (<= 336 bytes each in
// THBaseService requests, ~86 KB) may be allocated before they arrive.
constexpr uint32_t kWalkListsAbove = 256;

// A protocol whose strings and containers obey the WireLimits of its
// ServerTransport (see the header). Base: TBinaryProtocolT or
// TCompactProtocolT over ServerTransport; only the *_virt entry points the
// generated code and TDispatchProcessor use are replaced, so the base's own
// string reads serve the method name alone (capped at kMaxMethodNameBytes).
template <class Base>
class LimitedProtocol final : public Base {
 public:
  template <class... Args>
  explicit LimitedProtocol(std::shared_ptr<ServerTransport> wire, Args... args)
      : Base(wire, args...), wire_(wire.get()), limits_(wire->limits()) {}

  uint32_t readMessageBegin_virt(std::string& name, tp::TMessageType& type,
                                 int32_t& seqid) override {
    ClearRequestLimitError();
    uint32_t n = Base::readMessageBegin(name, type, seqid);
    // The non-strict binary read stores any byte of the client's in the
    // enum; TDispatchProcessor would then load an out-of-range enum value
    // (undefined behaviour, found by fuzz/store_wire_fuzz). Checked as raw
    // bytes, before anything reads it as an enum.
    std::underlying_type_t<tp::TMessageType> raw;
    static_assert(sizeof(raw) == sizeof(type));
    std::memcpy(&raw, &type, sizeof(raw));
    if (raw < tp::T_CALL || raw > tp::T_ONEWAY) {
      throw tp::TProtocolException(tp::TProtocolException::INVALID_DATA,
                                   "invalid message type " + std::to_string(raw));
    }
    return n;
  }
  uint32_t readString_virt(std::string& str) override { return ReadBytes(str); }
  uint32_t readBinary_virt(std::string& str) override { return ReadBytes(str); }

  // The binary protocol stores the client's type bytes in TType enums
  // unchecked, and then compares them: an out-of-range enum load
  // (undefined behaviour, found by fuzz/store_wire_fuzz). Its field and
  // container headers are read here instead, every type byte checked first.
  uint32_t readFieldBegin_virt(std::string& name, tp::TType& type, int16_t& id) override {
    if constexpr (!kBinary) {
      return Base::readFieldBegin(name, type, id);
    } else {
      uint32_t n = ReadType(&type);
      if (type == tp::T_STOP) {
        id = 0;
        return n;
      }
      return n + this->readI16(id);
    }
  }
  uint32_t readListBegin_virt(tp::TType& elem, uint32_t& size) override {
    uint32_t n = 0;
    if constexpr (kBinary) {
      n = ReadType(&elem) + ReadSize(&size);
      tp::TList list(elem, size);
      this->checkReadBytesAvailable(list);
    } else {
      n = Base::readListBegin(elem, size);
    }
    WaitForElements(size, elem, tp::T_STOP);
    return n;
  }
  uint32_t readSetBegin_virt(tp::TType& elem, uint32_t& size) override {
    uint32_t n = 0;
    if constexpr (kBinary) {
      n = ReadType(&elem) + ReadSize(&size);
      tp::TSet set(elem, size);
      this->checkReadBytesAvailable(set);
    } else {
      n = Base::readSetBegin(elem, size);
    }
    WaitForElements(size, elem, tp::T_STOP);
    return n;
  }
  uint32_t readMapBegin_virt(tp::TType& key, tp::TType& value, uint32_t& size) override {
    uint32_t n = 0;
    if constexpr (kBinary) {
      n = ReadType(&key) + ReadType(&value) + ReadSize(&size);
      tp::TMap map(key, value, size);
      this->checkReadBytesAvailable(map);
    } else {
      n = Base::readMapBegin(key, value, size);
    }
    WaitForElements(size, key, value);
    return n;
  }

  // Thrift checks a container's claimed element count against the bytes
  // left by multiplying it by the element's least size in an int, which
  // overflows for large claims (undefined behaviour, found by
  // fuzz/store_wire_fuzz). A claim that cannot fit in max_message_bytes
  // ends the request here (and the connection, as any oversized request);
  // smaller ones cannot overflow the base's multiplication.
  void checkReadBytesAvailable(tp::TSet& set) override {
    CheckClaim(set.size_, this->getMinSerializedSize(set.elemType_));
    Base::checkReadBytesAvailable(set);
  }
  void checkReadBytesAvailable(tp::TList& list) override {
    CheckClaim(list.size_, this->getMinSerializedSize(list.elemType_));
    Base::checkReadBytesAvailable(list);
  }
  void checkReadBytesAvailable(tp::TMap& map) override {
    CheckClaim(map.size_, int64_t{this->getMinSerializedSize(map.keyType_)} +
                              this->getMinSerializedSize(map.valueType_));
    Base::checkReadBytesAvailable(map);
  }

  // Thrift's skip() template calls the base's non-virtual reads; skipping
  // through the virtual ones keeps the limits on skipped data too.
  uint32_t skip_virt(tp::TType type) override {
    return tp::skip(static_cast<tp::TProtocol&>(*this), type);
  }

 private:
  static constexpr bool kBinary = std::is_same_v<Base, tp::TBinaryProtocolT<ServerTransport>>;

  void CheckClaim(int64_t count, int64_t min_element_bytes) {
    if (count * min_element_bytes > limits_.max_message_bytes) {
      throw tp::TProtocolException(
          tp::TProtocolException::SIZE_LIMIT,
          "a container of " + std::to_string(count) +
              " elements does not fit in store.server.max_message_bytes (" +
              std::to_string(limits_.max_message_bytes) + ")");
    }
  }

  // One type byte of the binary protocol; INVALID_DATA unless it is a TType.
  uint32_t ReadType(tp::TType* type) {
    int8_t raw = 0;
    uint32_t n = this->readByte(raw);
    switch (raw) {
      case tp::T_STOP:
      case tp::T_VOID:
      case tp::T_BOOL:
      case tp::T_BYTE:
      case tp::T_DOUBLE:
      case tp::T_I16:
      case tp::T_I32:
      case tp::T_I64:
      case tp::T_STRING:
      case tp::T_STRUCT:
      case tp::T_MAP:
      case tp::T_SET:
      case tp::T_LIST:
      case tp::T_UTF8:
      case tp::T_UTF16:
        *type = static_cast<tp::TType>(raw);
        return n;
      default:
        throw tp::TProtocolException(tp::TProtocolException::INVALID_DATA,
                                     "invalid type " + std::to_string(raw));
    }
  }
  // A container's element count (binary protocol).
  uint32_t ReadSize(uint32_t* size) {
    int32_t claimed = 0;
    uint32_t n = this->readI32(claimed);
    if (claimed < 0) throw tp::TProtocolException(tp::TProtocolException::NEGATIVE_SIZE);
    *size = static_cast<uint32_t>(claimed);
    return n;
  }

  uint32_t ReadBytes(std::string& str) {
    int32_t size = 0;
    uint32_t n = 0;
    if constexpr (kBinary) {
      n = Base::readI32(size);
    } else {
      n = this->readVarint32(size);
    }
    if (size < 0) throw tp::TProtocolException(tp::TProtocolException::NEGATIVE_SIZE);
    if (walking_) {
      wire_->Skip(size);  // kept in the buffer for the real read
    } else if (size > limits_.max_string_bytes) {
      // Read and dropped, never stored: the request gets an error and the
      // connection stays in step.
      wire_->Discard(size);
      SetRequestLimitError("a value of " + std::to_string(size) +
                           " bytes exceeds store.server.max_string_bytes (" +
                           std::to_string(limits_.max_string_bytes) + ")");
      str.clear();
    } else {
      wire_->ReadInto(&str, size);
    }
    return n + static_cast<uint32_t>(size);
  }

  // Before a container of `size` elements (a key, or a key and a value
  // each) is handed to the generated code: when it is long, its elements
  // are skipped once with the transport marked, which waits for all of
  // their bytes, then the transport rewinds to read them for real.
  void WaitForElements(uint32_t size, tp::TType key, tp::TType value) {
    if (size <= kWalkListsAbove || walking_) return;  // an outer walk covers nested ones
    walking_ = true;
    wire_->Mark();
    try {
      for (uint32_t i = 0; i < size; ++i) {
        skip_virt(key);
        if (value != tp::T_STOP) skip_virt(value);
      }
    } catch (...) {
      walking_ = false;
      wire_->Unmark();
      throw;
    }
    walking_ = false;
    wire_->Rewind();
  }

  ServerTransport* wire_;
  const WireLimits& limits_;
  bool walking_ = false;
};

}  // namespace

std::shared_ptr<tp::TProtocol> ServerProtocolFactory::getProtocol(
    std::shared_ptr<tt::TTransport> transport) {
  auto wire = std::dynamic_pointer_cast<ServerTransport>(transport);
  CHECK(wire != nullptr) << "store server: protocol over a transport that is not ServerTransport";
  if (binary_) {
    // Non-strict reads (old clients without a version word), strict writes:
    // as HBase's gateway. Containers are handled by LimitedProtocol.
    return std::make_shared<LimitedProtocol<tp::TBinaryProtocolT<ServerTransport>>>(
        wire, kMaxMethodNameBytes, 0, false, true);
  }
  return std::make_shared<LimitedProtocol<tp::TCompactProtocolT<ServerTransport>>>(
      wire, kMaxMethodNameBytes, 0);
}

}  // namespace seg::store::internal
