#include "store/internal/thrift_client.h"

#include <glog/logging.h>

#include <poll.h>
#include <thrift/TApplicationException.h>
#include <thrift/TConfiguration.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>
#include <thrift/transport/TTransportException.h>
#include <functional>  // before Thrift: TServerSocket.h uses std::function unincluded

#include <algorithm>
#include <cctype>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/backoff.h"
#include "common/metrics.h"
#include "proto/THBaseService.h"
#include "store/internal/thrift_convert.h"
#include "store/internal/thrift_output.h"
#include "store/internal/thrift_wire_reader.h"

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
