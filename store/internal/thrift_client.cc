#include "store/internal/thrift_client.h"

#include <glog/logging.h>

#include <poll.h>
#include <thrift/TApplicationException.h>
#include <thrift/TConfiguration.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/protocol/TProtocolException.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>
#include <thrift/transport/TTransportException.h>
#include <functional>  // before Thrift: TServerSocket.h uses std::function unincluded

#include <algorithm>
#include <cctype>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "common/backoff.h"
#include "common/metrics.h"
#include "proto/THBaseService.h"
#include "store/internal/thrift_convert.h"
#include "store/internal/thrift_output.h"

namespace seg::store::internal {
namespace {

namespace at = apache::thrift;
using hbase::THBaseServiceClient;

struct Connection {
  std::shared_ptr<at::transport::TSocket> socket;
  std::shared_ptr<at::transport::TTransport> transport;
  std::unique_ptr<THBaseServiceClient> client;
};

// True when the server has closed a pooled connection (or sent something
// unasked): between calls nothing is due, so anything readable means the
// connection is done. Servers close idle clients (HBase's gateway and
// seg-store after 60 s); finding that here, not in the next call, keeps
// calls that are not retried (checkAndMutate, scanner batches) from failing
// on a connection that was dead before they started.
bool PeerClosed(const Connection& c) {
  pollfd p{};
  p.fd = c.socket->getSocketFD();
  p.events = POLLIN | POLLRDHUP;
  return poll(&p, 1, 0) != 0;
}

namespace tp = apache::thrift::protocol;

// Reads one TResult into a RowResult without building TColumnValue objects:
// three scratch strings reused across cells instead of three allocations
// per cell. Unknown fields are skipped, as generated code does.
void ReadResult(tp::TProtocol* in, RowResult* out) {
  thread_local std::string family, qualifier, value;
  std::string name;
  tp::TType type;
  int16_t id;
  out->Clear();
  in->readStructBegin(name);
  while (true) {
    in->readFieldBegin(name, type, id);
    if (type == tp::T_STOP) break;
    if (id == 2 && type == tp::T_LIST) {
      tp::TType etype;
      uint32_t n;
      in->readListBegin(etype, n);
      if (etype != tp::T_STRUCT) {
        throw tp::TProtocolException(tp::TProtocolException::INVALID_DATA, "bad columnValues");
      }
      out->Reserve(n, 0);
      for (uint32_t i = 0; i < n; ++i) {
        int64_t ts = 0;
        family.clear();
        qualifier.clear();
        value.clear();
        in->readStructBegin(name);
        while (true) {
          tp::TType ft;
          int16_t fid;
          in->readFieldBegin(name, ft, fid);
          if (ft == tp::T_STOP) break;
          if (fid == 1 && ft == tp::T_STRING) {
            in->readBinary(family);
          } else if (fid == 2 && ft == tp::T_STRING) {
            in->readBinary(qualifier);
          } else if (fid == 3 && ft == tp::T_STRING) {
            in->readBinary(value);
          } else if (fid == 4 && ft == tp::T_I64) {
            in->readI64(ts);
          } else {
            in->skip(ft);
          }
          in->readFieldEnd();
        }
        in->readStructEnd();
        out->Add(family, qualifier, ts, value);
      }
      in->readListEnd();
    } else {
      in->skip(type);  // row (the caller knows it), stale, partial
    }
    in->readFieldEnd();
  }
  in->readStructEnd();
}

// The reply half of getMultiple, streaming into `results`. Reads the whole
// message before throwing so a pooled connection stays in sync.
void RecvGetMultiple(tp::TProtocol* in, std::vector<RowResult>* results) {
  int32_t seqid = 0;
  std::string name;
  tp::TMessageType mtype;
  in->readMessageBegin(name, mtype, seqid);
  if (mtype == tp::T_EXCEPTION) {
    at::TApplicationException x;
    x.read(in);
    in->readMessageEnd();
    in->getTransport()->readEnd();
    throw x;
  }
  if (mtype != tp::T_REPLY || name != "getMultiple") {
    in->skip(tp::T_STRUCT);
    in->readMessageEnd();
    in->getTransport()->readEnd();
    throw at::TApplicationException(at::TApplicationException::INVALID_MESSAGE_TYPE);
  }
  bool got = false, failed = false;
  hbase::TIOError io;
  tp::TType type;
  int16_t id;
  in->readStructBegin(name);
  while (true) {
    in->readFieldBegin(name, type, id);
    if (type == tp::T_STOP) break;
    if (id == 0 && type == tp::T_LIST) {
      tp::TType etype;
      uint32_t n;
      in->readListBegin(etype, n);
      results->resize(n);
      for (uint32_t i = 0; i < n; ++i) ReadResult(in, &(*results)[i]);
      in->readListEnd();
      got = true;
    } else if (id == 1 && type == tp::T_STRUCT) {
      io.read(in);
      failed = true;
    } else {
      in->skip(type);
    }
    in->readFieldEnd();
  }
  in->readStructEnd();
  in->readMessageEnd();
  in->getTransport()->readEnd();
  if (failed) throw io;
  if (!got) {
    throw at::TApplicationException(at::TApplicationException::MISSING_RESULT,
                                    "getMultiple failed: unknown result");
  }
}

// Reads a reply's bytes straight from the transport into one buffer and
// decodes TBinaryProtocol by hand: the fast path of getMultiple when the
// client speaks the binary protocol (~25 virtual calls per cell saved).
// It asks the transport only for bytes the reply still owes, so it never
// reads past the reply on a pooled connection.
class WireReader {
 public:
  WireReader(at::transport::TTransport* t, int64_t max_bytes)
      : t_(t), max_bytes_(max_bytes), buf_(ThreadBuffer()) {}

  int8_t I8() { return static_cast<int8_t>(*Take(1)); }
  int16_t I16() { return static_cast<int16_t>(Be(Take(2), 2)); }
  int32_t I32() { return static_cast<int32_t>(Be(Take(4), 4)); }
  int64_t I64() { return static_cast<int64_t>(Be(Take(8), 8)); }
  // Valid until the next read.
  std::string_view Bytes() {
    int32_t n = I32();
    if (n < 0 || n > max_bytes_) {
      throw tp::TProtocolException(tp::TProtocolException::SIZE_LIMIT, "bad string size");
    }
    return std::string_view(Take(static_cast<size_t>(n)), static_cast<size_t>(n));
  }
  void Skip(tp::TType type, int depth = 0) {
    if (depth > 64) throw tp::TProtocolException(tp::TProtocolException::DEPTH_LIMIT);
    switch (type) {
      case tp::T_BOOL:
      case tp::T_BYTE:
        Take(1);
        return;
      case tp::T_I16:
        Take(2);
        return;
      case tp::T_I32:
        Take(4);
        return;
      case tp::T_I64:
      case tp::T_DOUBLE:
        Take(8);
        return;
      case tp::T_STRING:
        Bytes();
        return;
      case tp::T_STRUCT:
        while (true) {
          auto ft = static_cast<tp::TType>(I8());
          if (ft == tp::T_STOP) return;
          I16();
          Skip(ft, depth + 1);
        }
      case tp::T_MAP: {
        auto kt = static_cast<tp::TType>(I8());
        auto vt = static_cast<tp::TType>(I8());
        int32_t n = Count();
        for (int32_t i = 0; i < n; ++i) {
          Skip(kt, depth + 1);
          Skip(vt, depth + 1);
        }
        return;
      }
      case tp::T_SET:
      case tp::T_LIST: {
        auto et = static_cast<tp::TType>(I8());
        int32_t n = Count();
        for (int32_t i = 0; i < n; ++i) Skip(et, depth + 1);
        return;
      }
      default:
        throw tp::TProtocolException(tp::TProtocolException::INVALID_DATA, "bad field type");
    }
  }
  int32_t Count() {
    int32_t n = I32();
    if (n < 0) throw tp::TProtocolException(tp::TProtocolException::NEGATIVE_SIZE);
    return n;
  }
  // Bytes read after Mark() stay in the buffer until Unmark(), so strings
  // read since then are still valid: see MarkedBytes/View.
  void Mark() {
    mark_ = pos_;
    marked_ = true;
  }
  void Unmark() { marked_ = false; }
  struct Span {
    size_t offset;  // from the mark
    size_t size;
  };
  Span MarkedBytes() {
    std::string_view b = Bytes();
    return Span{static_cast<size_t>(b.data() - buf_.data()) - mark_, b.size()};
  }
  std::string_view View(Span s) const {
    return std::string_view(buf_.data() + mark_ + s.offset, s.size);
  }
  // Every byte of the reply was consumed (the connection stays in sync).
  bool Drained() const { return pos_ == len_; }

 private:
  // One buffer per calling thread, reused across calls.
  static std::string& ThreadBuffer() {
    thread_local std::string buf(256 * 1024, '\0');
    if (buf.size() > (64u << 20)) std::string(256 * 1024, '\0').swap(buf);
    return buf;
  }
  static uint64_t Be(const char* p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
  }
  const char* Take(size_t n) {
    if (len_ - pos_ < n) Fill(n);
    const char* p = buf_.data() + pos_;
    pos_ += n;
    return p;
  }
  void Fill(size_t n) {
    size_t keep = marked_ ? mark_ : pos_;
    if (keep > 0) {
      std::memmove(buf_.data(), buf_.data() + keep, len_ - keep);
      len_ -= keep;
      pos_ -= keep;
      mark_ -= std::min(mark_, keep);
    }
    if (buf_.size() < pos_ + n) buf_.resize(std::max(pos_ + n, buf_.size() * 2));
    while (len_ - pos_ < n) {
      uint32_t got = t_->read(reinterpret_cast<uint8_t*>(buf_.data() + len_),
                              static_cast<uint32_t>(buf_.size() - len_));
      if (got == 0) {
        throw at::transport::TTransportException(at::transport::TTransportException::END_OF_FILE,
                                                 "connection closed mid-reply");
      }
      len_ += got;
    }
  }

  at::transport::TTransport* t_;
  int64_t max_bytes_;
  std::string& buf_;
  size_t pos_ = 0;
  size_t len_ = 0;
  size_t mark_ = 0;
  bool marked_ = false;
};

void ReadResultBinary(WireReader* in, RowResult* out) {
  out->Clear();
  while (true) {
    auto type = static_cast<tp::TType>(in->I8());
    if (type == tp::T_STOP) return;
    int16_t id = in->I16();
    if (id != 2 || type != tp::T_LIST) {
      in->Skip(type);  // row (the caller knows it), stale, partial
      continue;
    }
    if (static_cast<tp::TType>(in->I8()) != tp::T_STRUCT) {
      throw tp::TProtocolException(tp::TProtocolException::INVALID_DATA, "bad columnValues");
    }
    int32_t n = in->Count();
    out->Reserve(std::min<size_t>(static_cast<size_t>(n), 1u << 16), 0);
    for (int32_t i = 0; i < n; ++i) {
      // The cell's strings stay in the reader's buffer (Mark) and are
      // copied once, into the RowResult.
      int64_t ts = 0;
      WireReader::Span family{0, 0}, qualifier{0, 0}, value{0, 0};
      in->Mark();
      while (true) {
        auto ft = static_cast<tp::TType>(in->I8());
        if (ft == tp::T_STOP) break;
        int16_t fid = in->I16();
        if (fid == 1 && ft == tp::T_STRING) {
          family = in->MarkedBytes();
        } else if (fid == 2 && ft == tp::T_STRING) {
          qualifier = in->MarkedBytes();
        } else if (fid == 3 && ft == tp::T_STRING) {
          value = in->MarkedBytes();
        } else if (fid == 4 && ft == tp::T_I64) {
          ts = in->I64();
        } else {
          in->Skip(ft);
        }
      }
      out->Add(in->View(family), in->View(qualifier), ts, in->View(value));
      in->Unmark();
    }
  }
}

// The message/field ids of a declared exception struct: field 1 = message.
std::string ReadMessageField(WireReader* in) {
  std::string message;
  while (true) {
    auto ft = static_cast<tp::TType>(in->I8());
    if (ft == tp::T_STOP) return message;
    int16_t id = in->I16();
    if (id == 1 && ft == tp::T_STRING) {
      message.assign(in->Bytes());
    } else {
      in->Skip(ft);
    }
  }
}

// RecvGetMultiple for TBinaryProtocol, reading the transport directly.
void RecvGetMultipleBinary(at::transport::TTransport* t, int64_t max_bytes,
                           std::vector<RowResult>* results) {
  WireReader in(t, max_bytes);
  int32_t first = in.I32();
  int mtype;
  std::string name;
  if (first < 0) {
    if ((static_cast<uint32_t>(first) & 0xffff0000u) != 0x80010000u) {
      throw tp::TProtocolException(tp::TProtocolException::BAD_VERSION, "bad reply version");
    }
    mtype = static_cast<int>(first & 0xff);
    name.assign(in.Bytes());
  } else {
    if (first > 1024) throw tp::TProtocolException(tp::TProtocolException::SIZE_LIMIT);
    // Non-strict header: the name length came first.
    for (int32_t i = 0; i < first; ++i) name.push_back(static_cast<char>(in.I8()));
    mtype = in.I8();
  }
  in.I32();  // seqid: one call in flight per connection
  if (mtype == tp::T_EXCEPTION) {
    std::string message;
    int32_t type = at::TApplicationException::UNKNOWN;
    while (true) {
      auto ft = static_cast<tp::TType>(in.I8());
      if (ft == tp::T_STOP) break;
      int16_t id = in.I16();
      if (id == 1 && ft == tp::T_STRING) {
        message.assign(in.Bytes());
      } else if (id == 2 && ft == tp::T_I32) {
        type = in.I32();
      } else {
        in.Skip(ft);
      }
    }
    t->readEnd();
    throw at::TApplicationException(
        static_cast<at::TApplicationException::TApplicationExceptionType>(type), message);
  }
  if (mtype != tp::T_REPLY || name != "getMultiple") {
    throw at::TApplicationException(at::TApplicationException::INVALID_MESSAGE_TYPE);
  }
  bool got = false, failed = false;
  hbase::TIOError io;
  while (true) {
    auto type = static_cast<tp::TType>(in.I8());
    if (type == tp::T_STOP) break;
    int16_t id = in.I16();
    if (id == 0 && type == tp::T_LIST) {
      if (static_cast<tp::TType>(in.I8()) != tp::T_STRUCT) {
        throw tp::TProtocolException(tp::TProtocolException::INVALID_DATA, "bad result list");
      }
      int32_t n = in.Count();
      if (n > (1 << 24)) throw tp::TProtocolException(tp::TProtocolException::SIZE_LIMIT);
      results->resize(static_cast<size_t>(n));
      for (int32_t i = 0; i < n; ++i) ReadResultBinary(&in, &(*results)[i]);
      got = true;
    } else if (id == 1 && type == tp::T_STRUCT) {
      io.__set_message(ReadMessageField(&in));
      failed = true;
    } else {
      in.Skip(type);
    }
  }
  t->readEnd();
  if (!in.Drained()) {
    throw tp::TProtocolException(tp::TProtocolException::INVALID_DATA, "bytes after the reply");
  }
  if (failed) throw io;
  if (!got) {
    throw at::TApplicationException(at::TApplicationException::MISSING_RESULT,
                                    "getMultiple failed: unknown result");
  }
}

class ThriftStore;

// The table of the call in progress on this thread: HBase's gateway reports
// an unknown table as TIOError whose message is just the table name
// (TableNotFoundException's message), so only the caller can recognise it.
thread_local const std::string* tl_table = nullptr;
struct TableScope {
  explicit TableScope(const std::string& t) : prev(tl_table) { tl_table = &t; }
  ~TableScope() { tl_table = prev; }
  const std::string* prev;
};

// HBase rejects an empty or too long row key with an unchecked exception,
// which its gateway turns into "Internal error processing ..." and a closed
// connection; seg-store answers InvalidArgument. Checked here for both.
Status CheckRowKey(const std::string& row) {
  if (row.empty()) return InvalidArgumentError("store: empty row key");
  if (row.size() > kMaxRowBytes) {
    return InvalidArgumentError("store: row key of " + std::to_string(row.size()) + " bytes (max " +
                                std::to_string(kMaxRowBytes) + ")");
  }
  return Status::OK();
}

// A scanner that outlives its server-side half: HBase's gateway forgets a
// scanner idle for hbase.client.scanner.timeout.period (60 s), seg-store
// after server.scanner_lease_ms, and a lost reply leaves us not knowing
// which rows the server already handed out. Rows come whole (no TScan
// batch), so the scan resumes at the row after the last one returned.
class ThriftScanner final : public Scanner {
 public:
  ThriftScanner(ThriftStore* store, std::string table, hbase::TScan scan, int32_t id,
                int32_t batch_rows)
      : store_(store),
        table_(std::move(table)),
        scan_(std::move(scan)),
        id_(id),
        batch_rows_(batch_rows) {}
  ~ThriftScanner() override { Close().IgnoreError(); }
  Status NextBatch(std::vector<RowResult>* rows) override;
  Status Close() override;

 private:
  Status ReadRows(std::vector<hbase::TResult>* results);
  Status Reopen();

  ThriftStore* store_;
  std::string table_;
  hbase::TScan scan_;  // startRow moves past each row returned
  int32_t id_;
  int32_t batch_rows_;
  bool done_ = false;
  bool closed_ = false;
};

// Whether a failed getScannerRows may be resumed on a new scanner: the
// server no longer knows the id (HBase: "Invalid scanner Id", seg-store:
// "invalid scanner id N"), or the reply was lost on the way.
bool ScannerLost(const Status& s) {
  if (s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kDeadlineExceeded) {
    return true;
  }
  if (s.code() != StatusCode::kInvalidArgument) return false;
  std::string m(s.message());
  std::transform(m.begin(), m.end(), m.begin(), [](unsigned char c) { return std::tolower(c); });
  return m.find("invalid scanner id") != std::string::npos;
}

class ThriftStore final : public Store {
 public:
  explicit ThriftStore(const ThriftClientOptions& options)
      : options_(options),
        errors_(
            metrics::GetCounter("seg_store_thrift_errors_total", "Thrift client transport errors")),
        retries_(
            metrics::GetCounter("seg_store_thrift_retries_total", "Thrift client calls retried")) {
    // Thrift prints transport errors to stderr; they become Status here.
    RouteThriftOutputToGlog(/*server=*/false);
    int64_t max_msg = std::min<int64_t>(options.max_message_bytes, INT_MAX);
    config_ =
        std::make_shared<at::TConfiguration>(static_cast<int>(max_msg), static_cast<int>(max_msg));
  }

  // Runs fn(client) with a pooled connection. `idempotent` calls are
  // retried on transport errors; others only when connecting failed.
  template <typename Fn>
  Status Call(const char* what, bool idempotent, Fn&& fn) {
    Backoff backoff(BackoffOptions{options_.backoff_initial_ms, options_.backoff_max_ms});
    const int attempts = std::max(1, options_.max_attempts);
    for (int attempt = 1;; ++attempt) {
      bool sent = false;
      Status s;
      std::unique_ptr<Connection> conn;
      s = Acquire(&conn);
      if (s.ok()) {
        sent = true;
        s = Invoke(conn, fn);
      }
      if (s.ok() || s.code() != StatusCode::kUnavailable) {
        return s.ok() ? s : s.WithContext(std::string("store thrift ") + what);
      }
      errors_.Inc();
      if (attempt >= attempts || (sent && !idempotent)) {
        return s.WithContext(std::string("store thrift ") + what);
      }
      retries_.Inc();
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff.NextDelayMs()));
    }
  }

  Status Put(std::string_view table, const std::vector<RowPut>& rows) override {
    if (rows.empty()) return Status::OK();
    std::vector<hbase::TPut> puts(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      SEG_RETURN_IF_ERROR(CheckRowKey(rows[i].row));
      ToTPut(rows[i], &puts[i]);
    }
    std::string t(table);
    TableScope table_scope(t);
    if (puts.size() == 1) {
      return Call("put", true, [&](THBaseServiceClient& c) { c.put(t, puts[0]); });
    }
    return Call("putMultiple", true, [&](THBaseServiceClient& c) { c.putMultiple(t, puts); });
  }

  StatusOr<RowResult> Get(std::string_view table, const GetRequest& get) override {
    hbase::TGet tget;
    SEG_RETURN_IF_ERROR(CheckRowKey(get.row));
    SEG_RETURN_IF_ERROR(ToTGet(get, &tget));
    hbase::TResult result;
    std::string t(table);
    TableScope table_scope(t);
    SEG_RETURN_IF_ERROR(Call("get", true, [&](THBaseServiceClient& c) { c.get(result, t, tget); }));
    RowResult out;
    FromTResult(result, &out);
    out.set_row(get.row);
    if (get.newest_cells > 0) out.KeepNewest(static_cast<size_t>(get.newest_cells));
    return out;
  }

  Status MultiGet(std::string_view table, const std::vector<GetRequest>& gets,
                  std::vector<RowResult>* results) override {
    if (gets.empty()) {
      results->clear();
      return Status::OK();
    }
    std::vector<hbase::TGet> tgets(gets.size());
    for (size_t i = 0; i < gets.size(); ++i) {
      SEG_RETURN_IF_ERROR(CheckRowKey(gets[i].row));
      SEG_RETURN_IF_ERROR(ToTGet(gets[i], &tgets[i]));
    }
    std::string t(table);
    TableScope table_scope(t);
    SEG_RETURN_IF_ERROR(Call("getMultiple", true, [&](THBaseServiceClient& c) {
      c.send_getMultiple(t, tgets);
      if (options_.protocol == ThriftProtocol::kBinary) {
        RecvGetMultipleBinary(c.getInputProtocol()->getTransport().get(),
                              options_.max_message_bytes, results);
      } else {
        RecvGetMultiple(c.getInputProtocol().get(), results);
      }
    }));
    if (results->size() != gets.size()) {
      return InternalError("store thrift getMultiple: " + std::to_string(results->size()) +
                           " results for " + std::to_string(gets.size()) + " gets");
    }
    for (size_t i = 0; i < gets.size(); ++i) {
      (*results)[i].set_row(gets[i].row);
      if (gets[i].newest_cells > 0) {
        (*results)[i].KeepNewest(static_cast<size_t>(gets[i].newest_cells));
      }
    }
    return Status::OK();
  }

  StatusOr<bool> Exists(std::string_view table, const GetRequest& get) override {
    hbase::TGet tget;
    SEG_RETURN_IF_ERROR(CheckRowKey(get.row));
    SEG_RETURN_IF_ERROR(ToTGet(get, &tget));
    bool found = false;
    std::string t(table);
    TableScope table_scope(t);
    SEG_RETURN_IF_ERROR(
        Call("exists", true, [&](THBaseServiceClient& c) { found = c.exists(t, tget); }));
    return found;
  }

  Status Delete(std::string_view table, const std::vector<RowDelete>& rows) override {
    std::vector<hbase::TDelete> dels;
    for (const auto& r : rows) {
      SEG_RETURN_IF_ERROR(CheckRowKey(r.row));
      ToTDeletes(r, &dels);
    }
    if (dels.empty()) return Status::OK();
    std::string t(table);
    TableScope table_scope(t);
    if (dels.size() == 1) {
      return Call("deleteSingle", true,
                  [&](THBaseServiceClient& c) { c.deleteSingle(t, dels[0]); });
    }
    return Call("deleteMultiple", true, [&](THBaseServiceClient& c) {
      std::vector<hbase::TDelete> ignored;
      c.deleteMultiple(ignored, t, dels);
    });
  }

  StatusOr<bool> CheckAndMutate(std::string_view table, const Condition& condition,
                                const RowMutations& mutations) override {
    hbase::TRowMutations rm;
    SEG_RETURN_IF_ERROR(CheckRowKey(mutations.row));
    rm.row = mutations.row;
    if (!mutations.deletes.empty()) {
      RowDelete d;
      d.row = mutations.row;
      d.columns = mutations.deletes;
      std::vector<hbase::TDelete> dels;
      ToTDeletes(d, &dels);
      for (auto& del : dels) {
        hbase::TMutation m;
        m.__set_deleteSingle(std::move(del));
        rm.mutations.push_back(std::move(m));
      }
    }
    if (!mutations.puts.empty()) {
      RowPut p{mutations.row, mutations.puts};
      hbase::TPut tput;
      ToTPut(p, &tput);
      hbase::TMutation m;
      m.__set_put(std::move(tput));
      rm.mutations.push_back(std::move(m));
    }
    hbase::TCompareOperator::type op = hbase::TCompareOperator::EQUAL;
    switch (condition.op) {
      case CompareOp::kLess:
        op = hbase::TCompareOperator::LESS;
        break;
      case CompareOp::kLessOrEqual:
        op = hbase::TCompareOperator::LESS_OR_EQUAL;
        break;
      case CompareOp::kEqual:
        op = hbase::TCompareOperator::EQUAL;
        break;
      case CompareOp::kNotEqual:
        op = hbase::TCompareOperator::NOT_EQUAL;
        break;
      case CompareOp::kGreaterOrEqual:
        op = hbase::TCompareOperator::GREATER_OR_EQUAL;
        break;
      case CompareOp::kGreater:
        op = hbase::TCompareOperator::GREATER;
        break;
    }
    bool applied = false;
    std::string t(table);
    TableScope table_scope(t);
    // The C++ client always sends `value`; HBase treats empty as absent.
    std::string value = condition.value.value_or("");
    SEG_RETURN_IF_ERROR(Call("checkAndMutate", false, [&](THBaseServiceClient& c) {
      applied =
          c.checkAndMutate(t, mutations.row, condition.family, condition.qualifier, op, value, rm);
    }));
    return applied;
  }

  StatusOr<std::unique_ptr<Scanner>> OpenScanner(std::string_view table,
                                                 const ScanRequest& scan) override {
    hbase::TScan tscan;
    SEG_RETURN_IF_ERROR(ToTScan(scan, &tscan));
    int32_t id = 0;
    std::string t(table);
    TableScope table_scope(t);
    SEG_RETURN_IF_ERROR(
        Call("openScanner", true, [&](THBaseServiceClient& c) { id = c.openScanner(t, tscan); }));
    return std::unique_ptr<Scanner>(new ThriftScanner(this, t, std::move(tscan), id,
                                                      scan.batch_rows > 0 ? scan.batch_rows : 100));
  }

  Status ScanFirst(std::string_view table, const ScanRequest& scan,
                   std::vector<RowResult>* rows) override {
    rows->clear();
    hbase::TScan tscan;
    SEG_RETURN_IF_ERROR(ToTScan(scan, &tscan));
    std::string t(table);
    TableScope table_scope(t);
    std::vector<hbase::TResult> results;
    // Idempotent: the server opens, reads and closes in the one call.
    SEG_RETURN_IF_ERROR(Call("getScannerResults", true, [&](THBaseServiceClient& c) {
      c.getScannerResults(results, t, tscan, scan.batch_rows > 0 ? scan.batch_rows : 100);
    }));
    rows->resize(results.size());
    for (size_t i = 0; i < results.size(); ++i) FromTResult(results[i], &(*rows)[i]);
    return Status::OK();
  }

 private:
  Status Acquire(std::unique_ptr<Connection>* out) {
    std::vector<std::unique_ptr<Connection>> stale;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      auto deadline =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.call_timeout_ms);
      while (idle_.empty() && open_ >= std::max(1, options_.max_connections)) {
        if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
            open_ >= options_.max_connections) {
          return DeadlineExceededError("no free connection in the pool");
        }
      }
      while (!idle_.empty()) {
        std::unique_ptr<Connection> conn = std::move(idle_.back());
        idle_.pop_back();
        if (!PeerClosed(*conn)) {
          *out = std::move(conn);
          return Status::OK();
        }
        --open_;  // closed by the server while pooled: drop it (closed below)
        stale.push_back(std::move(conn));
      }
      ++open_;  // reserve a slot; connect outside the lock
    }
    for (auto& c : stale) {
      try {
        c->transport->close();
      } catch (...) {
        // Already closed by the peer; nothing to add.
      }
    }
    auto conn = std::make_unique<Connection>();
    try {
      conn->socket =
          std::make_shared<at::transport::TSocket>(options_.host, options_.port, config_);
      conn->socket->setConnTimeout(options_.connect_timeout_ms);
      conn->socket->setRecvTimeout(options_.call_timeout_ms);
      conn->socket->setSendTimeout(options_.call_timeout_ms);
      conn->socket->setNoDelay(true);
      if (options_.transport == ThriftTransport::kFramed) {
        conn->transport = std::make_shared<at::transport::TFramedTransport>(conn->socket, config_);
      } else {
        conn->transport = std::make_shared<at::transport::TBufferedTransport>(
            conn->socket, 64 * 1024, 64 * 1024, config_);
      }
      std::shared_ptr<at::protocol::TProtocol> proto;
      if (options_.protocol == ThriftProtocol::kCompact) {
        proto = std::make_shared<at::protocol::TCompactProtocol>(conn->transport);
      } else {
        proto = std::make_shared<at::protocol::TBinaryProtocol>(conn->transport);
      }
      conn->client = std::make_unique<THBaseServiceClient>(proto);
      conn->transport->open();
    } catch (const at::TException& e) {
      Discard();
      return UnavailableError("connect " + options_.host + ":" + std::to_string(options_.port) +
                              ": " + e.what());
    }
    *out = std::move(conn);
    return Status::OK();
  }

  void Release(std::unique_ptr<Connection> conn) {
    std::lock_guard<std::mutex> lock(mutex_);
    idle_.push_back(std::move(conn));
    cv_.notify_one();
  }

  // Gives up a reserved slot (the connection is closed or never opened).
  void Discard() {
    std::lock_guard<std::mutex> lock(mutex_);
    --open_;
    cv_.notify_one();
  }

  template <typename Fn>
  Status Invoke(std::unique_ptr<Connection>& conn, Fn& fn) {
    try {
      fn(*conn->client);
      Release(std::move(conn));
      return Status::OK();
    } catch (const hbase::TIOError& e) {
      Release(std::move(conn));  // a declared exception: the stream is in sync
      if (tl_table != nullptr && !tl_table->empty() &&
          (e.message == *tl_table || e.message == "default:" + *tl_table)) {
        return NotFoundError("unknown table '" + *tl_table + "' (HBase TableNotFoundException)");
      }
      return DecodeErrorMessage(e.message);
    } catch (const hbase::TIllegalArgument& e) {
      Release(std::move(conn));
      return InvalidArgumentError(e.message);
    } catch (const at::transport::TTransportException& e) {
      CloseQuietly(conn);
      if (e.getType() == at::transport::TTransportException::TIMED_OUT) {
        return DeadlineExceededError(e.what());
      }
      return UnavailableError(e.what());
    } catch (const at::TApplicationException& e) {
      CloseQuietly(conn);
      return InternalError(std::string("server: ") + e.what());
    } catch (const at::TException& e) {
      CloseQuietly(conn);  // protocol errors leave the stream out of sync
      return InternalError(e.what());
    } catch (const std::exception& e) {
      CloseQuietly(conn);
      return InternalError(e.what());
    }
  }

  void CloseQuietly(std::unique_ptr<Connection>& conn) {
    try {
      conn->transport->close();
    } catch (...) {
      // Already broken; nothing to add.
    }
    conn.reset();
    Discard();
  }

  friend class ThriftScanner;

  ThriftClientOptions options_;
  std::shared_ptr<at::TConfiguration> config_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> idle_;
  int open_ = 0;
  metrics::Counter errors_;
  metrics::Counter retries_;
  metrics::Counter scanner_reopens_ = metrics::GetCounter(
      "seg_store_thrift_scanner_reopens_total",
      "Scans resumed on a new server-side scanner (the old one expired or its reply was lost)");
};

Status ThriftScanner::ReadRows(std::vector<hbase::TResult>* results) {
  TableScope table_scope(table_);  // HBase reports an unknown table here
  // Not retried in Call: a lost reply is resumed by Reopen, from the rows we
  // actually received.
  return store_->Call("getScannerRows", false, [&](THBaseServiceClient& c) {
    c.getScannerRows(*results, id_, batch_rows_);
  });
}

Status ThriftScanner::Reopen() {
  const int32_t old_id = id_;
  TableScope table_scope(table_);
  SEG_RETURN_IF_ERROR(store_->Call(
      "openScanner", true, [&](THBaseServiceClient& c) { id_ = c.openScanner(table_, scan_); }));
  store_->scanner_reopens_.Inc();
  // The old one may still live (a lost reply): free it, ignoring "unknown".
  store_->Call("closeScanner", true, [&](THBaseServiceClient& c) { c.closeScanner(old_id); })
      .IgnoreError();
  return Status::OK();
}

Status ThriftScanner::NextBatch(std::vector<RowResult>* rows) {
  rows->clear();
  if (closed_) return FailedPreconditionError("store: scanner closed");
  if (done_) return Status::OK();
  std::vector<hbase::TResult> results;
  Status s = ReadRows(&results);
  if (!s.ok() && ScannerLost(s)) {
    LOG(INFO) << "store thrift: scanner " << id_ << " on " << table_ << " lost (" << s
              << "), resuming after the last row read";
    results.clear();
    SEG_RETURN_IF_ERROR(Reopen());
    s = ReadRows(&results);
  }
  SEG_RETURN_IF_ERROR(s);
  if (results.empty()) {
    done_ = true;
    return Status::OK();
  }
  // The next scanner, if one is needed, starts just past the last row: the
  // smallest key greater than it is the key with a zero byte appended.
  scan_.__set_startRow(results.back().row + std::string(1, '\0'));
  rows->resize(results.size());
  for (size_t i = 0; i < results.size(); ++i) FromTResult(results[i], &(*rows)[i]);
  return Status::OK();
}

Status ThriftScanner::Close() {
  if (closed_) return Status::OK();
  closed_ = true;
  return store_->Call("closeScanner", true, [&](THBaseServiceClient& c) { c.closeScanner(id_); });
}

}  // namespace

StatusOr<std::unique_ptr<Store>> NewThriftStore(const ThriftClientOptions& options) {
  if (options.host.empty() || options.port <= 0 || options.port > 65535) {
    return InvalidArgumentError("store thrift: bad address " + options.host + ":" +
                                std::to_string(options.port));
  }
  return std::unique_ptr<Store>(new ThriftStore(options));
}

}  // namespace seg::store::internal
