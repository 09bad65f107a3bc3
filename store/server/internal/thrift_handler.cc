#include "store/server/internal/thrift_handler.h"

#include <glog/logging.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <type_traits>

#include "store/internal/thrift_convert.h"
#include "store/server/internal/thrift_server_wire.h"

namespace seg::store::internal {

StoreHandler::StoreHandler(Store* store, int64_t scanner_lease_ms, int32_t max_rows)
    : store_(store),
      lease_(scanner_lease_ms),
      max_rows_(max_rows),
      errors_(metrics::GetCounter("seg_store_server_errors_total",
                                  "THBaseService calls answered with an exception")),
      calls_(metrics::GetCounter("seg_store_server_calls_total", "THBaseService calls")) {}

void StoreHandler::Throw(const Status& status, const char* method) {
  errors_.Inc();
  VLOG(1) << "store server " << method << ": " << status;
  hbase::TIOError e;
  e.__set_message(EncodeErrorMessage(status));
  throw e;
}

Status StoreHandler::CheckRequestLimits(const char* method) const {
  const std::string& error = RequestLimitError();
  if (error.empty()) return Status::OK();
  return InvalidArgumentError(std::string(method) + ": request refused: " + error);
}

void StoreHandler::ThrowIfOverLimits(const char* method) {
  Status s = CheckRequestLimits(method);
  if (!s.ok()) Throw(s, method);
}

Status StoreHandler::CheckRows(int64_t rows, const char* method) const {
  if (rows <= max_rows_) return Status::OK();
  return InvalidArgumentError(std::string(method) + ": " + std::to_string(rows) +
                              " rows exceed store.server.max_rows_per_request (" +
                              std::to_string(max_rows_) + ")");
}

void StoreHandler::CheckNumRows(int32_t num_rows, const char* method) {
  if (num_rows <= max_rows_) return;
  Throw(InvalidArgumentError(std::string(method) + ": numRows " + std::to_string(num_rows) +
                             " exceeds store.server.max_rows_per_request (" +
                             std::to_string(max_rows_) + ")"),
        method);
}

Status StoreHandler::ReadRows(const std::string& table, const std::vector<hbase::TGet>& tgets,
                              std::vector<RowResult>* rows) {
  calls_.Inc();
  SEG_RETURN_IF_ERROR(CheckRequestLimits("get"));
  SEG_RETURN_IF_ERROR(CheckRows(static_cast<int64_t>(tgets.size()), "get"));
  // Usually one GetRequest per TGet; a TGet mixing column selections per
  // family becomes several, merged back below.
  std::vector<GetRequest> flat;
  flat.reserve(tgets.size());
  std::vector<size_t> first(tgets.size() + 1);
  std::vector<GetRequest> parts;
  bool split = false;
  for (size_t i = 0; i < tgets.size(); ++i) {
    first[i] = flat.size();
    SEG_RETURN_IF_ERROR(FromTGet(tgets[i], &parts));
    split = split || parts.size() > 1;
    for (auto& p : parts) flat.push_back(std::move(p));
  }
  first[tgets.size()] = flat.size();
  if (!split) return store_->MultiGet(table, flat, rows);
  std::vector<RowResult> partial;
  SEG_RETURN_IF_ERROR(store_->MultiGet(table, flat, &partial));
  rows->clear();
  rows->resize(tgets.size());
  for (size_t i = 0; i < tgets.size(); ++i) {
    RowResult& out = (*rows)[i];
    out.set_row(tgets[i].row);
    for (size_t j = first[i]; j < first[i + 1]; ++j) {
      for (CellView c : partial[j]) out.Add(c.family, c.qualifier, c.timestamp, c.value);
    }
    int32_t newest = NewestCellsOf(tgets[i]);
    if (newest > 0) out.KeepNewest(static_cast<size_t>(newest));
  }
  return Status::OK();
}

bool StoreHandler::exists(const std::string& table, const hbase::TGet& tget) {
  std::vector<RowResult> rows;
  Status s = ReadRows(table, {tget}, &rows);
  if (!s.ok()) Throw(s, "exists");
  return !rows[0].empty();
}

void StoreHandler::get(hbase::TResult& _return, const std::string& table, const hbase::TGet& tget) {
  std::vector<RowResult> rows;
  Status s = ReadRows(table, {tget}, &rows);
  if (!s.ok()) Throw(s, "get");
  ToTResult(rows[0], &_return);
}

void StoreHandler::getMultiple(std::vector<hbase::TResult>& _return, const std::string& table,
                               const std::vector<hbase::TGet>& tgets) {
  std::vector<RowResult> rows;
  Status s = ReadRows(table, tgets, &rows);
  if (!s.ok()) Throw(s, "getMultiple");
  _return.resize(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) ToTResult(rows[i], &_return[i]);
}

void StoreHandler::put(const std::string& table, const hbase::TPut& tput) {
  putMultiple(table, {tput});
}

void StoreHandler::putMultiple(const std::string& table, const std::vector<hbase::TPut>& tputs) {
  calls_.Inc();
  ThrowIfOverLimits("put");
  CheckNumRows(static_cast<int32_t>(std::min<size_t>(tputs.size(), INT32_MAX)), "put");
  std::vector<RowPut> rows(tputs.size());
  for (size_t i = 0; i < tputs.size(); ++i) {
    Status s = FromTPut(tputs[i], &rows[i]);
    if (!s.ok()) Throw(s, "put");
  }
  Status s = store_->Put(table, rows);
  if (!s.ok()) Throw(s, "put");
}

Status StoreHandler::WritePuts(const std::string& table, std::vector<hbase::TPut>* tputs) {
  calls_.Inc();
  Status s = CheckRequestLimits("put");
  if (s.ok()) s = CheckRows(static_cast<int64_t>(tputs->size()), "put");
  if (!s.ok()) {
    errors_.Inc();
    return s;
  }
  std::vector<RowPut> rows(tputs->size());
  for (size_t i = 0; i < tputs->size() && s.ok(); ++i)
    s = FromTPut(std::move((*tputs)[i]), &rows[i]);
  if (s.ok()) s = store_->Put(table, rows);
  if (!s.ok()) {
    errors_.Inc();
    VLOG(1) << "store server put: " << s;
  }
  return s;
}

void StoreHandler::deleteSingle(const std::string& table, const hbase::TDelete& tdelete) {
  std::vector<hbase::TDelete> ignored;
  deleteMultiple(ignored, table, {tdelete});
}

void StoreHandler::deleteMultiple(std::vector<hbase::TDelete>& _return, const std::string& table,
                                  const std::vector<hbase::TDelete>& tdeletes) {
  calls_.Inc();
  ThrowIfOverLimits("delete");
  CheckNumRows(static_cast<int32_t>(std::min<size_t>(tdeletes.size(), INT32_MAX)), "delete");
  _return.clear();
  std::vector<RowDelete> rows(tdeletes.size());
  for (size_t i = 0; i < tdeletes.size(); ++i) {
    Status s = FromTDelete(tdeletes[i], &rows[i]);
    if (!s.ok()) Throw(s, "delete");
  }
  Status s = store_->Delete(table, rows);
  if (!s.ok()) Throw(s, "delete");
}

void StoreHandler::mutateRow(const std::string& table, const hbase::TRowMutations& trm) {
  calls_.Inc();
  ThrowIfOverLimits("mutateRow");
  RowMutations m;
  Status s = FromTRowMutations(trm, &m);
  if (!s.ok()) Throw(s, "mutateRow");
  // Deletes then puts, each atomic for the row but not together (the
  // Store interface has no unconditional multi-kind row mutation).
  if (!m.deletes.empty()) {
    s = store_->Delete(table, {RowDelete{m.row, m.deletes}});
    if (!s.ok()) Throw(s, "mutateRow");
  }
  if (!m.puts.empty()) {
    s = store_->Put(table, {RowPut{m.row, m.puts}});
    if (!s.ok()) Throw(s, "mutateRow");
  }
}

bool StoreHandler::checkAndMutate(const std::string& table, const std::string& row,
                                  const std::string& family, const std::string& qualifier,
                                  hbase::TCompareOperator::type compareOperator,
                                  const std::string& value,
                                  const hbase::TRowMutations& rowMutations) {
  calls_.Inc();
  ThrowIfOverLimits("checkAndMutate");
  Condition c;
  c.family = family;
  c.qualifier = qualifier;
  switch (WireEnum(compareOperator)) {
    case hbase::TCompareOperator::LESS:
      c.op = CompareOp::kLess;
      break;
    case hbase::TCompareOperator::LESS_OR_EQUAL:
      c.op = CompareOp::kLessOrEqual;
      break;
    case hbase::TCompareOperator::EQUAL:
      c.op = CompareOp::kEqual;
      break;
    case hbase::TCompareOperator::NOT_EQUAL:
      c.op = CompareOp::kNotEqual;
      break;
    case hbase::TCompareOperator::GREATER_OR_EQUAL:
      c.op = CompareOp::kGreaterOrEqual;
      break;
    case hbase::TCompareOperator::GREATER:
      c.op = CompareOp::kGreater;
      break;
    default:
      Throw(InvalidArgumentError("unsupported compare operator"), "checkAndMutate");
  }
  if (!value.empty()) c.value = value;
  RowMutations m;
  Status s = FromTRowMutations(rowMutations, &m);
  if (s.ok() && m.row != row) s = InvalidArgumentError("row mutations for another row");
  if (!s.ok()) Throw(s, "checkAndMutate");
  StatusOr<bool> applied = store_->CheckAndMutate(table, c, m);
  if (!applied.ok()) Throw(applied.status(), "checkAndMutate");
  return *applied;
}

void StoreHandler::ExpireScanners() {
  auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(scanners_mutex_);
  for (auto it = scanners_.begin(); it != scanners_.end();) {
    if (now - it->second->last_used.load() > lease_) {
      LOG(INFO) << "store server: scanner " << it->first << " lease expired";
      it = scanners_.erase(it);
    } else {
      ++it;
    }
  }
}

int32_t StoreHandler::openScanner(const std::string& table, const hbase::TScan& tscan) {
  calls_.Inc();
  ThrowIfOverLimits("openScanner");
  ExpireScanners();
  ScanRequest req;
  Status s = FromTScan(tscan, &req);
  if (!s.ok()) Throw(s, "openScanner");
  auto scanner = store_->OpenScanner(table, req);
  if (!scanner.ok()) Throw(scanner.status(), "openScanner");
  auto entry = std::make_shared<OpenScan>();
  entry->scanner = std::move(*scanner);
  entry->last_used = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(scanners_mutex_);
  int32_t id = next_scanner_id_++;
  if (next_scanner_id_ <= 0) next_scanner_id_ = 1;
  scanners_[id] = std::move(entry);
  return id;
}

// A scanner idle past its lease is gone when next asked for, as in HBase's
// gateway (its scanner cache expires on access), not only when another
// scanner is opened.
std::shared_ptr<StoreHandler::OpenScan> StoreHandler::FindScanner(int32_t id) {
  std::lock_guard<std::mutex> lock(scanners_mutex_);
  auto it = scanners_.find(id);
  if (it == scanners_.end()) return nullptr;
  if (std::chrono::steady_clock::now() - it->second->last_used.load() > lease_) {
    LOG(INFO) << "store server: scanner " << id << " lease expired";
    scanners_.erase(it);
    return nullptr;
  }
  return it->second;
}

void StoreHandler::ReadScanner(OpenScan* scan, int32_t num_rows, std::vector<hbase::TResult>* out) {
  std::lock_guard<std::mutex> lock(scan->mutex);
  scan->last_used = std::chrono::steady_clock::now();
  if (num_rows <= 0) num_rows = 1;
  std::vector<RowResult> batch;
  while (static_cast<int32_t>(scan->pending.size()) < num_rows && !scan->done) {
    Status s = scan->scanner->NextBatch(&batch);
    if (!s.ok()) Throw(s, "getScannerRows");
    if (batch.empty()) scan->done = true;
    for (auto& r : batch) scan->pending.push_back(std::move(r));
  }
  size_t n = std::min<size_t>(num_rows, scan->pending.size());
  out->resize(n);
  for (size_t i = 0; i < n; ++i) {
    ToTResult(scan->pending.front(), &(*out)[i]);
    scan->pending.pop_front();
  }
}

void StoreHandler::getScannerRows(std::vector<hbase::TResult>& _return, int32_t scannerId,
                                  int32_t numRows) {
  calls_.Inc();
  ThrowIfOverLimits("getScannerRows");
  CheckNumRows(numRows, "getScannerRows");
  auto scan = FindScanner(scannerId);
  if (!scan) {
    errors_.Inc();
    hbase::TIllegalArgument e;
    e.__set_message("invalid scanner id " + std::to_string(scannerId));
    throw e;
  }
  ReadScanner(scan.get(), numRows, &_return);
}

void StoreHandler::closeScanner(int32_t scannerId) {
  calls_.Inc();
  ThrowIfOverLimits("closeScanner");
  std::shared_ptr<OpenScan> scan;
  {
    std::lock_guard<std::mutex> lock(scanners_mutex_);
    auto it = scanners_.find(scannerId);
    if (it != scanners_.end()) {
      scan = std::move(it->second);
      scanners_.erase(it);
    }
  }
  if (!scan) {
    errors_.Inc();
    hbase::TIllegalArgument e;
    e.__set_message("invalid scanner id " + std::to_string(scannerId));
    throw e;
  }
}

void StoreHandler::getScannerResults(std::vector<hbase::TResult>& _return, const std::string& table,
                                     const hbase::TScan& tscan, int32_t numRows) {
  calls_.Inc();
  ThrowIfOverLimits("getScannerResults");
  CheckNumRows(numRows, "getScannerResults");
  ScanRequest req;
  Status s = FromTScan(tscan, &req);
  if (!s.ok()) Throw(s, "getScannerResults");
  auto scanner = store_->OpenScanner(table, req);
  if (!scanner.ok()) Throw(scanner.status(), "getScannerResults");
  OpenScan scan;
  scan.scanner = std::move(*scanner);
  ReadScanner(&scan, numRows, &_return);
}

namespace {

namespace tp = apache::thrift::protocol;

// Writes a TResult exactly as the generated TResult::write would for what
// ToTResult fills in (row when present, columnValues with timestamps).
void WriteResult(tp::TProtocol* out, const RowResult& row, std::string* scratch) {
  out->writeStructBegin("TResult");
  if (!row.empty()) {
    out->writeFieldBegin("row", tp::T_STRING, 1);
    out->writeBinary(row.row());
    out->writeFieldEnd();
  }
  out->writeFieldBegin("columnValues", tp::T_LIST, 2);
  out->writeListBegin(tp::T_STRUCT, static_cast<uint32_t>(row.size()));
  for (CellView c : row) {
    out->writeStructBegin("TColumnValue");
    // writeBinary takes std::string: reuse one buffer, no allocation per cell.
    out->writeFieldBegin("family", tp::T_STRING, 1);
    scratch->assign(c.family);
    out->writeBinary(*scratch);
    out->writeFieldEnd();
    out->writeFieldBegin("qualifier", tp::T_STRING, 2);
    scratch->assign(c.qualifier);
    out->writeBinary(*scratch);
    out->writeFieldEnd();
    out->writeFieldBegin("value", tp::T_STRING, 3);
    scratch->assign(c.value);
    out->writeBinary(*scratch);
    out->writeFieldEnd();
    out->writeFieldBegin("timestamp", tp::T_I64, 4);
    out->writeI64(c.timestamp);
    out->writeFieldEnd();
    out->writeFieldStop();
    out->writeStructEnd();
  }
  out->writeListEnd();
  out->writeFieldEnd();
  out->writeFieldStop();
  out->writeStructEnd();
}

// The same reply bytes as TBinaryProtocol (strict) would write, sized
// first and then written through a raw pointer: ~25 virtual calls and 3
// string copies per cell become 3 memcpy. Used when the server speaks the
// binary protocol.
class BinaryWriter {
 public:
  explicit BinaryWriter(char* p) : p_(p) {}
  void I8(int8_t v) { *p_++ = static_cast<char>(v); }
  void I16(int16_t v) { Be(static_cast<uint64_t>(static_cast<uint16_t>(v)), 2); }
  void I32(int32_t v) { Be(static_cast<uint64_t>(static_cast<uint32_t>(v)), 4); }
  void I64(int64_t v) { Be(static_cast<uint64_t>(v), 8); }
  void Field(tp::TType type, int16_t id) {
    I8(static_cast<int8_t>(type));
    I16(id);
  }
  void Bytes(std::string_view b) {
    I32(static_cast<int32_t>(b.size()));
    std::memcpy(p_, b.data(), b.size());
    p_ += b.size();
  }
  void Stop() { I8(tp::T_STOP); }
  char* pos() const { return p_; }

 private:
  void Be(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) p_[i] = static_cast<char>(v >> (8 * (n - 1 - i)));
    p_ += n;
  }
  char* p_;
};

void EncodeGetMultipleReply(const std::vector<RowResult>& rows, int32_t seqid, std::string* out) {
  static constexpr std::string_view kName = "getMultiple";
  // Header 4+4+11+4, success field 3 + list 5, stop 1; per row: row field
  // 3+4+len, list field 3+5, stop 1; per cell: 3 strings (3+4 each) + i64
  // field 3+8 + stop 1 = 33 bytes plus its data (an upper bound, below).
  size_t size = 4 + 4 + kName.size() + 4 + 3 + 5 + 1;
  for (const RowResult& row : rows) {
    size += (row.empty() ? 0 : 7 + row.row().size()) + 8 + 1 + 33 * row.size() + row.data_bytes();
  }
  out->resize(size);
  BinaryWriter w(out->data());
  w.I32(static_cast<int32_t>(0x80010000u | tp::T_REPLY));  // strict binary header
  w.Bytes(kName);
  w.I32(seqid);
  w.Field(tp::T_LIST, 0);  // success
  w.I8(tp::T_STRUCT);
  w.I32(static_cast<int32_t>(rows.size()));
  for (const RowResult& row : rows) {
    if (!row.empty()) {
      w.Field(tp::T_STRING, 1);
      w.Bytes(row.row());
    }
    w.Field(tp::T_LIST, 2);
    w.I8(tp::T_STRUCT);
    w.I32(static_cast<int32_t>(row.size()));
    for (CellView c : row) {
      w.Field(tp::T_STRING, 1);
      w.Bytes(c.family);
      w.Field(tp::T_STRING, 2);
      w.Bytes(c.qualifier);
      w.Field(tp::T_STRING, 3);
      w.Bytes(c.value);
      w.Field(tp::T_I64, 4);
      w.I64(c.timestamp);
      w.Stop();
    }
    w.Stop();  // TResult
  }
  w.Stop();  // result struct
  // data_bytes() may exceed the cells' bytes (KeepNewest leaves dropped
  // cells' bytes in the buffer): `size` is an upper bound.
  size_t written = static_cast<size_t>(w.pos() - out->data());
  CHECK_LE(written, size) << "getMultiple reply overflow";
  out->resize(written);
}

// put and putMultiple without copying every cell out of the decoded
// arguments (the generated handler interface takes them const).
template <typename Args, typename Result>
bool DispatchPut(StoreHandler* handler, tp::TProtocol* iprot, tp::TProtocol* oprot,
                 const std::string& fname, int32_t seqid) {
  Args args;
  args.read(iprot);  // malformed input throws: the connection is closed
  iprot->readMessageEnd();
  iprot->getTransport()->readEnd();
  std::vector<hbase::TPut> tputs;
  if constexpr (std::is_same_v<Args, hbase::THBaseService_put_args>) {
    tputs.push_back(std::move(args.tput));
  } else {
    tputs = std::move(args.tputs);
  }
  Status s = handler->WritePuts(args.table, &tputs);
  Result result;
  if (!s.ok()) {
    result.io.__set_message(EncodeErrorMessage(s));
    result.__isset.io = true;
  }
  oprot->writeMessageBegin(fname, tp::T_REPLY, seqid);
  result.write(oprot);
  oprot->writeMessageEnd();
  oprot->getTransport()->writeEnd();
  oprot->getTransport()->flush();
  return true;
}

}  // namespace

bool StoreProcessor::dispatchCall(tp::TProtocol* iprot, tp::TProtocol* oprot,
                                  const std::string& fname, int32_t seqid, void* callContext) {
  if (fname == "putMultiple") {
    return DispatchPut<hbase::THBaseService_putMultiple_args,
                       hbase::THBaseService_putMultiple_result>(handler_.get(), iprot, oprot, fname,
                                                                seqid);
  }
  if (fname == "put") {
    return DispatchPut<hbase::THBaseService_put_args, hbase::THBaseService_put_result>(
        handler_.get(), iprot, oprot, fname, seqid);
  }
  if (fname != "getMultiple") {
    return hbase::THBaseServiceProcessor::dispatchCall(iprot, oprot, fname, seqid, callContext);
  }
  hbase::THBaseService_getMultiple_args args;
  args.read(iprot);  // malformed input throws: the connection is closed
  iprot->readMessageEnd();
  iprot->getTransport()->readEnd();

  thread_local std::vector<RowResult> rows;  // buffers reused per connection thread
  Status s = handler_->ReadRows(args.table, args.tgets, &rows);
  if (s.ok() && binary_) {
    thread_local std::string reply;
    EncodeGetMultipleReply(rows, seqid, &reply);
    oprot->getTransport()->write(reinterpret_cast<const uint8_t*>(reply.data()),
                                 static_cast<uint32_t>(reply.size()));
    oprot->getTransport()->writeEnd();
    oprot->getTransport()->flush();
    if (reply.capacity() > (64u << 20)) std::string().swap(reply);  // do not pin a huge reply
    return true;
  }
  oprot->writeMessageBegin("getMultiple", tp::T_REPLY, seqid);
  if (!s.ok()) {
    hbase::THBaseService_getMultiple_result result;
    result.io.__set_message(EncodeErrorMessage(s));
    result.__isset.io = true;
    result.write(oprot);
  } else {
    std::string scratch;
    oprot->writeStructBegin("THBaseService_getMultiple_result");
    oprot->writeFieldBegin("success", tp::T_LIST, 0);
    oprot->writeListBegin(tp::T_STRUCT, static_cast<uint32_t>(rows.size()));
    for (const RowResult& r : rows) WriteResult(oprot, r, &scratch);
    oprot->writeListEnd();
    oprot->writeFieldEnd();
    oprot->writeFieldStop();
    oprot->writeStructEnd();
  }
  oprot->writeMessageEnd();
  oprot->getTransport()->writeEnd();
  oprot->getTransport()->flush();
  return true;
}

}  // namespace seg::store::internal
