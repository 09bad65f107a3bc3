#include "store/internal/embedded_store.h"

#include <glog/logging.h>
#include <rocksdb/cache.h>
#include <rocksdb/compaction_filter.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "store/internal/key_codec.h"
#include "store/internal/packed_cells.h"

namespace seg::store::internal {
namespace {

std::string CfName(std::string_view table, std::string_view family) {
  std::string name(table);
  name += ':';
  name += family;
  return name;
}

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::OK();
  std::string msg(what);
  msg += ": ";
  msg += s.ToString();
  if (s.IsInvalidArgument()) return InvalidArgumentError(msg);
  if (s.IsNotFound()) return NotFoundError(msg);
  if (s.IsBusy() || s.IsTryAgain() || s.IsTimedOut()) return UnavailableError(msg);
  return InternalError(msg);
}

// The row prefix of a key (escaped row + terminator) is the unit of the
// prefix bloom filter: every point read of a row seeks within it.
class RowPrefixExtractor : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "seg.RowPrefixExtractor.v1"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    size_t n = RowPrefixLength(std::string_view(key.data(), key.size()));
    return rocksdb::Slice(key.data(), n);
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return RowPrefixLength(std::string_view(key.data(), key.size())) != 0;
  }
};

// Drops cells past the family TTL and versions beyond max_versions. Keys
// arrive in order, so the versions of a column are consecutive, newest
// first. A compaction may see only some files: its rank of a version is at
// most the true rank, so it never drops a version that reads would show.
class TtlVersionFilter : public rocksdb::CompactionFilter {
 public:
  TtlVersionFilter(const FamilyOptions& family, int64_t now_ms)
      : max_versions_(family.max_versions),
        min_ts_(family.ttl_ms > 0 ? now_ms - family.ttl_ms : INT64_MIN) {}
  const char* Name() const override { return "seg.TtlVersionFilter"; }
  bool Filter(int, const rocksdb::Slice& key, const rocksdb::Slice&, std::string*,
              bool*) const override {
    DecodedKey k;
    if (!DecodeCellKey(std::string_view(key.data(), key.size()), &k, &scratch_)) return false;
    if (k.row_prefix != current_row_ || k.escaped_qualifier != current_qualifier_) {
      current_row_.assign(k.row_prefix);
      current_qualifier_.assign(k.escaped_qualifier);
      versions_ = 0;
    }
    ++versions_;
    if (k.timestamp < min_ts_) return true;
    return max_versions_ > 0 && versions_ > max_versions_;
  }

 private:
  int32_t max_versions_;
  int64_t min_ts_;
  // Filter() is const in the RocksDB API; one filter serves one compaction
  // thread, so the running state is safe as mutable.
  mutable std::string current_row_;
  mutable std::string current_qualifier_;
  mutable std::string scratch_;
  mutable int32_t versions_ = 0;
};

class TtlVersionFilterFactory : public rocksdb::CompactionFilterFactory {
 public:
  TtlVersionFilterFactory(FamilyOptions family, const Clock* clock)
      : family_(std::move(family)), clock_(clock) {}
  const char* Name() const override { return "seg.TtlVersionFilterFactory"; }
  std::unique_ptr<rocksdb::CompactionFilter> CreateCompactionFilter(
      const rocksdb::CompactionFilter::Context&) override {
    return std::make_unique<TtlVersionFilter>(family_, clock_->NowMs());
  }

 private:
  FamilyOptions family_;
  const Clock* clock_;
};

class PackedTtlFilterFactory : public rocksdb::CompactionFilterFactory {
 public:
  PackedTtlFilterFactory(int64_t ttl_ms, const Clock* clock) : ttl_ms_(ttl_ms), clock_(clock) {}
  const char* Name() const override { return "seg.PackedTtlFilterFactory"; }
  std::unique_ptr<rocksdb::CompactionFilter> CreateCompactionFilter(
      const rocksdb::CompactionFilter::Context&) override {
    return std::make_unique<PackedTtlFilter>(clock_->NowMs() - ttl_ms_);
  }

 private:
  int64_t ttl_ms_;
  const Clock* clock_;
};

// The layout a family was created with, kept in the default column family
// ("seg.layout/<table>:<family>") so a config change cannot misread data.
std::string LayoutName(const FamilyOptions& f) {
  return f.packed_prefix_bytes > 0 ? "packed-v1/" + std::to_string(f.packed_prefix_bytes)
                                   : "cells-v1";
}

bool StartsWith(const rocksdb::Slice& key, std::string_view prefix) {
  return key.size() >= prefix.size() && std::memcmp(key.data(), prefix.data(), prefix.size()) == 0;
}

EmbeddedStore::ReadSpec SpecFrom(const GetRequest& get, int32_t) {
  EmbeddedStore::ReadSpec spec;
  spec.qualifiers = get.qualifiers;
  std::sort(spec.qualifiers.begin(), spec.qualifiers.end());
  spec.qualifiers.erase(std::unique(spec.qualifiers.begin(), spec.qualifiers.end()),
                        spec.qualifiers.end());
  spec.qualifier_start = get.qualifier_start;
  spec.qualifier_stop = get.qualifier_stop;
  spec.time_range = get.time_range;
  spec.max_versions = get.max_versions;
  spec.families_empty = get.families.empty();
  return spec;
}

Status ValidateSpec(const EmbeddedStore::ReadSpec& spec) {
  if (!spec.qualifiers.empty() && spec.families_empty) {
    return InvalidArgumentError("qualifiers need families");
  }
  if (spec.max_versions < 1) return InvalidArgumentError("max_versions must be >= 1");
  if (spec.time_range.min < 0 || spec.time_range.max < spec.time_range.min) {
    return InvalidArgumentError("bad time range");
  }
  return Status::OK();
}

bool Compare(CompareOp op, std::string_view given, std::string_view stored) {
  int c = given.compare(stored);
  switch (op) {
    case CompareOp::kLess:
      return c < 0;
    case CompareOp::kLessOrEqual:
      return c <= 0;
    case CompareOp::kEqual:
      return c == 0;
    case CompareOp::kNotEqual:
      return c != 0;
    case CompareOp::kGreaterOrEqual:
      return c >= 0;
    case CompareOp::kGreater:
      return c > 0;
  }
  return false;
}

// Appends the cells of one packed chunk that the read selects. Returns
// false once qualifier_stop (or the one qualifier asked for) is passed.
bool ReadPackedChunk(std::string_view value, const std::string* only, const std::string& fam,
                     const EmbeddedStore::ReadSpec& spec, int64_t min_ts, int32_t max_versions,
                     RowResult* out) {
  PackedReader reader(value);
  PackedCell c;
  std::string_view current;
  bool have = false;
  int32_t versions = 0;
  while (reader.Next(&c)) {
    if (only != nullptr) {
      if (c.qualifier != *only) {
        if (c.qualifier < *only) continue;
        return false;
      }
    } else {
      if (!spec.qualifier_start.empty() && c.qualifier < spec.qualifier_start) continue;
      if (!spec.qualifier_stop.empty() && c.qualifier >= spec.qualifier_stop) return false;
    }
    // A qualifier lives in one chunk, so version counting restarts per chunk.
    if (!have || c.qualifier != current) {
      current = c.qualifier;
      have = true;
      versions = 0;
    }
    if (c.timestamp >= spec.time_range.max || c.timestamp < min_ts) continue;
    if (versions >= max_versions) continue;
    ++versions;
    out->Add(fam, c.qualifier, c.timestamp, c.value);
  }
  LOG_IF(ERROR, !reader.ok()) << "store: malformed packed chunk in family " << fam;
  return true;
}

// Removes the cells `col` deletes from a packed chunk value.
void DeleteFromChunk(const DeleteColumn& col, std::string* value) {
  std::string kept(1, kPackedFormatV1);
  PackedReader reader(*value);
  PackedCell c;
  bool deleted_one = false;
  while (reader.Next(&c)) {
    bool del = false;
    if (!col.qualifier || c.qualifier == *col.qualifier) {
      if (col.qualifier && !col.all_versions) {
        // One version: exactly `timestamp`, or the newest for "latest".
        del = !deleted_one &&
              (col.timestamp == kLatestTimestamp ? true : c.timestamp == col.timestamp);
        deleted_one = deleted_one || del;
      } else {
        del = c.timestamp <= col.timestamp;
      }
    }
    if (!del) AppendPackedCell(&kept, c.qualifier, c.timestamp, c.value);
  }
  if (reader.ok()) *value = std::move(kept);
}

}  // namespace

const EmbeddedStore::Family* EmbeddedStore::Table::Find(std::string_view family) const {
  for (const auto& f : families) {
    if (f.options.name == family) return &f;
  }
  return nullptr;
}

EmbeddedStore::EmbeddedStore(const EmbeddedOptions& options)
    : options_(options),
      clock_(options.clock ? options.clock : Clock::Real()),
      chunk_merges_(new std::atomic<uint8_t>[kFoldSlots]()),
      put_cells_(metrics::GetCounter("seg_store_put_cells_total", "Cells written")),
      get_rows_(metrics::GetCounter("seg_store_get_rows_total", "Rows read by get/multi-get")),
      folds_(metrics::GetCounter("seg_store_packed_folds_total",
                                 "Busy packed chunks rewritten merged instead of merged on read")),
      write_latency_(metrics::GetHistogram("seg_store_write_latency_seconds",
                                           "Embedded store commit latency")) {}

EmbeddedStore::~EmbeddedStore() {
  if (db_) {
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    db_->Close().PermitUncheckedError();
  }
}

StatusOr<std::unique_ptr<EmbeddedStore>> EmbeddedStore::Open(const EmbeddedOptions& options) {
  if (options.data_dir.empty()) return InvalidArgumentError("store: data_dir is empty");
  if (options.tables.empty()) return InvalidArgumentError("store: no tables configured");
  for (const auto& t : options.tables) {
    if (t.name.empty() || t.name.find(':') != std::string::npos) {
      return InvalidArgumentError("store: bad table name '" + t.name + "'");
    }
    if (t.families.empty())
      return InvalidArgumentError("store: table " + t.name + " has no families");
    for (const auto& f : t.families) {
      if (f.name.empty() || f.name.size() > 255) {
        return InvalidArgumentError("store: bad family name in table " + t.name);
      }
      if (f.max_versions < 1 || f.ttl_ms < 0 || f.packed_prefix_bytes < 0 ||
          f.packed_prefix_bytes > 255) {
        return InvalidArgumentError("store: bad settings for family " + t.name + ":" + f.name);
      }
    }
  }
  std::unique_ptr<EmbeddedStore> store(new EmbeddedStore(options));
  SEG_RETURN_IF_ERROR(store->OpenDb());
  return store;
}

Status EmbeddedStore::OpenDb() {
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir, ec);
  if (ec) return InternalError("store: cannot create " + options_.data_dir + ": " + ec.message());

  cache_ = rocksdb::NewLRUCache(static_cast<size_t>(options_.block_cache_bytes));

  rocksdb::DBOptions db_opts;
  db_opts.create_if_missing = true;
  db_opts.create_missing_column_families = true;
  db_opts.max_background_jobs = options_.background_jobs;
  db_opts.bytes_per_sync = 1 << 20;
  db_opts.wal_bytes_per_sync = 1 << 20;  // background WAL fsync, bounds data at risk
  db_opts.keep_log_file_num = 5;
  db_opts.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  // Many families share the process: flush them on total memory, not each alone.
  db_opts.max_total_wal_size = 512ull << 20;

  auto prefix = std::shared_ptr<const rocksdb::SliceTransform>(new RowPrefixExtractor());
  auto cf_options = [&](const FamilyOptions* fam) {
    rocksdb::ColumnFamilyOptions o;
    rocksdb::BlockBasedTableOptions t;
    t.block_cache = cache_;
    t.block_size = 16 * 1024;
    t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    t.whole_key_filtering = false;  // keys are cells; reads are by row
    t.format_version = 5;
    t.index_block_restart_interval = 16;
    o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
    o.prefix_extractor = prefix;
    o.memtable_prefix_bloom_size_ratio = 0.05;
    o.write_buffer_size = static_cast<size_t>(options_.write_buffer_bytes);
    o.max_write_buffer_number = 4;
    o.min_write_buffer_number_to_merge = 1;
    o.target_file_size_base = 64ull << 20;
    o.max_bytes_for_level_base = 256ull << 20;
    o.level0_file_num_compaction_trigger = 4;
    o.compression = rocksdb::kLZ4Compression;
    o.bottommost_compression = rocksdb::kZSTD;
    o.level_compaction_dynamic_level_bytes = true;
    if (fam != nullptr && fam->packed_prefix_bytes > 0) {
      o.merge_operator = std::make_shared<PackedMergeOperator>(fam->max_versions);
      // Bounds the operands a read merges while a chunk is in the memtable.
      // No max_successive_merges: it seeks the memtable on every merge
      // (~1/3 of ingest's store CPU); AddPuts folds busy chunks instead.
      if (fam->ttl_ms > 0) {
        o.compaction_filter_factory = std::make_shared<PackedTtlFilterFactory>(fam->ttl_ms, clock_);
      }
    } else if (fam != nullptr) {
      o.compaction_filter_factory = std::make_shared<TtlVersionFilterFactory>(*fam, clock_);
    }
    return o;
  };

  std::map<std::string, const FamilyOptions*> wanted;
  for (const auto& t : options_.tables) {
    for (const auto& f : t.families) wanted[CfName(t.name, f.name)] = &f;
  }
  std::vector<std::string> existing;
  rocksdb::Status ls =
      rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), options_.data_dir, &existing);
  if (!ls.ok()) existing.clear();  // a new database
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  descs.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_options(nullptr));
  for (const auto& [name, fam] : wanted) descs.emplace_back(name, cf_options(fam));
  for (const auto& name : existing) {
    if (name != rocksdb::kDefaultColumnFamilyName && !wanted.count(name)) {
      // RocksDB must open every family it has; unconfigured ones stay unread.
      LOG(WARNING) << "store: family " << name << " exists on disk but is not configured";
      descs.emplace_back(name, cf_options(nullptr));
    }
  }

  rocksdb::DB* raw = nullptr;
  SEG_RETURN_IF_ERROR(
      FromRocks(rocksdb::DB::Open(db_opts, options_.data_dir, descs, &handles_, &raw),
                "store: open " + options_.data_dir));
  db_.reset(raw);

  for (const auto& [name, fam] : wanted) {
    const std::string meta_key = "seg.layout/" + name;
    const std::string want = LayoutName(*fam);
    std::string have;
    rocksdb::Status g = db_->Get(rocksdb::ReadOptions(), meta_key, &have);
    if (g.IsNotFound()) {
      // A family that predates the marker holds one key per cell.
      bool existed = std::find(existing.begin(), existing.end(), name) != existing.end();
      have = existed ? std::string("cells-v1") : want;
      SEG_RETURN_IF_ERROR(
          FromRocks(db_->Put(rocksdb::WriteOptions(), meta_key, have), "store: record layout"));
    } else {
      SEG_RETURN_IF_ERROR(FromRocks(g, "store: read layout"));
    }
    if (have != want) {
      return InvalidArgumentError("store: family " + name + " was created with layout " + have +
                                  ", configured " + want + " (packed_prefix_bytes is fixed)");
    }
  }

  for (const auto& t : options_.tables) {
    Table table;
    table.name = t.name;
    for (const auto& f : t.families) {
      Family fam;
      fam.options = f;
      std::string cf = CfName(t.name, f.name);
      for (size_t i = 0; i < descs.size(); ++i) {
        if (descs[i].name == cf) fam.handle = handles_[i];
      }
      table.families.push_back(fam);
    }
    std::sort(table.families.begin(), table.families.end(),
              [](const Family& a, const Family& b) { return a.options.name < b.options.name; });
    tables_[t.name] = std::move(table);
  }
  LOG(INFO) << "store: opened " << options_.data_dir << " with " << wanted.size() << " families";
  return Status::OK();
}

StatusOr<const EmbeddedStore::Table*> EmbeddedStore::FindTable(std::string_view table) const {
  auto it = tables_.find(table);
  if (it == tables_.end())
    return NotFoundError("store: unknown table '" + std::string(table) + "'");
  return &it->second;
}

Status EmbeddedStore::ResolveFamilies(const Table& table, const std::vector<std::string>& names,
                                      std::vector<const Family*>* out) const {
  out->clear();
  if (names.empty()) {
    for (const auto& f : table.families) out->push_back(&f);
    return Status::OK();
  }
  for (const auto& f : table.families) {
    if (std::find(names.begin(), names.end(), f.options.name) != names.end()) out->push_back(&f);
  }
  for (const auto& n : names) {
    if (table.Find(n) == nullptr) {
      return InvalidArgumentError("store: unknown family '" + n + "' in table " + table.name);
    }
  }
  return Status::OK();
}

Status EmbeddedStore::ValidateRow(std::string_view row) const {
  if (row.empty()) return InvalidArgumentError("store: empty row key");
  if (row.size() > kMaxRowBytes) {
    return InvalidArgumentError("store: row key of " + std::to_string(row.size()) +
                                " bytes exceeds " + std::to_string(kMaxRowBytes));
  }
  return Status::OK();
}

std::mutex& EmbeddedStore::RowLock(std::string_view row) {
  return row_locks_[std::hash<std::string_view>{}(row) % row_locks_.size()];
}

void EmbeddedStore::ReadFamilyRow(rocksdb::Iterator* it, const Family& family,
                                  std::string_view row_prefix, const ReadSpec& spec, int64_t now_ms,
                                  RowResult* out, std::string* key_buf) const {
  const int64_t min_visible =
      family.options.ttl_ms > 0 ? now_ms - family.options.ttl_ms : INT64_MIN;
  const int64_t min_ts = std::max(min_visible, spec.time_range.min);
  const int32_t max_versions = std::min(spec.max_versions, family.options.max_versions);
  const std::string& fam = family.options.name;
  if (family.options.packed_prefix_bytes > 0) {
    const int32_t k_bytes = family.options.packed_prefix_bytes;
    if (!spec.qualifiers.empty()) {
      for (const auto& q : spec.qualifiers) {
        key_buf->assign(row_prefix);
        AppendEscaped(key_buf, ChunkOf(q, k_bytes));
        it->Seek(*key_buf);
        if (!it->Valid() || it->key() != rocksdb::Slice(*key_buf)) continue;
        rocksdb::Slice v = it->value();
        ReadPackedChunk(std::string_view(v.data(), v.size()), &q, fam, spec, min_ts, max_versions,
                        out);
      }
      return;
    }
    key_buf->assign(row_prefix);
    if (!spec.qualifier_start.empty()) {
      AppendEscaped(key_buf, ChunkOf(spec.qualifier_start, k_bytes));
    }
    for (it->Seek(*key_buf); it->Valid(); it->Next()) {
      if (!StartsWith(it->key(), row_prefix)) return;
      rocksdb::Slice v = it->value();
      if (!ReadPackedChunk(std::string_view(v.data(), v.size()), nullptr, fam, spec, min_ts,
                           max_versions, out)) {
        return;
      }
    }
    return;
  }
  std::string scratch;
  DecodedKey k;

  auto read_column_run = [&](std::string_view only_qualifier_esc) {
    // Reads from the iterator's position until the row (or the one
    // qualifier) ends, applying range, TTL and version limits.
    std::string_view current;
    int32_t versions = 0;
    std::string current_buf;
    for (; it->Valid(); it->Next()) {
      rocksdb::Slice key = it->key();
      if (!StartsWith(key, row_prefix)) return;
      if (!DecodeCellKey(std::string_view(key.data(), key.size()), &k, &scratch)) continue;
      if (!only_qualifier_esc.empty()) {
        if (k.escaped_qualifier != only_qualifier_esc) return;
      } else if (!spec.qualifier_stop.empty() && k.qualifier >= spec.qualifier_stop) {
        return;
      }
      if (k.escaped_qualifier != current) {
        current_buf.assign(k.escaped_qualifier);
        current = current_buf;
        versions = 0;
      }
      if (k.timestamp >= spec.time_range.max || k.timestamp < min_ts) continue;
      if (versions >= max_versions) continue;
      ++versions;
      rocksdb::Slice v = it->value();
      out->Add(fam, k.qualifier, k.timestamp, std::string_view(v.data(), v.size()));
    }
  };

  if (!spec.qualifiers.empty()) {
    std::string esc;
    for (const auto& q : spec.qualifiers) {
      key_buf->assign(row_prefix);
      size_t base = key_buf->size();
      AppendEscaped(key_buf, q);
      esc.assign(*key_buf, base, std::string::npos);
      it->Seek(*key_buf);
      read_column_run(esc);
    }
    return;
  }
  key_buf->assign(row_prefix);
  if (!spec.qualifier_start.empty()) AppendEscaped(key_buf, spec.qualifier_start);
  it->Seek(*key_buf);
  read_column_run({});
}

StatusOr<RowResult> EmbeddedStore::Get(std::string_view table, const GetRequest& get) {
  std::vector<RowResult> results;
  SEG_RETURN_IF_ERROR(MultiGet(table, {get}, &results));
  return std::move(results[0]);
}

Status EmbeddedStore::MultiGet(std::string_view table, const std::vector<GetRequest>& gets,
                               std::vector<RowResult>* results) {
  SEG_ASSIGN_OR_RETURN(const Table* t, FindTable(table));
  // Reuse the caller's row buffers: a multi-get of 200-cell rows otherwise
  // frees and faults in ~100 KB per call.
  results->resize(gets.size());
  for (auto& r : *results) r.Clear();
  if (gets.empty()) return Status::OK();
  const int64_t now = clock_->NowMs();
  // One snapshot for the whole call, one iterator per family reused
  // across rows (prefix mode: the row bloom filter skips absent rows).
  const rocksdb::Snapshot* snap = db_->GetSnapshot();
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;
  ro.prefix_same_as_start = true;
  std::map<const Family*, std::unique_ptr<rocksdb::Iterator>> iters;
  std::vector<const Family*> fams;
  std::string prefix, key_buf;
  Status status;
  ReadSpec spec;
  const GetRequest* last_spec_from = nullptr;
  for (size_t i = 0; i < gets.size() && status.ok(); ++i) {
    const GetRequest& g = gets[i];
    status = ValidateRow(g.row);
    if (!status.ok()) break;
    // Most multi-gets repeat one shape; rebuild the spec only when it changes.
    if (last_spec_from == nullptr || g.families != last_spec_from->families ||
        g.qualifiers != last_spec_from->qualifiers ||
        g.qualifier_start != last_spec_from->qualifier_start ||
        g.qualifier_stop != last_spec_from->qualifier_stop ||
        g.time_range.min != last_spec_from->time_range.min ||
        g.time_range.max != last_spec_from->time_range.max ||
        g.max_versions != last_spec_from->max_versions) {
      spec = SpecFrom(g, 0);
      status = ValidateSpec(spec);
      if (!status.ok()) break;
      status = ResolveFamilies(*t, g.families, &fams);
      if (!status.ok()) break;
      last_spec_from = &g;
    }
    RowResult& out = (*results)[i];
    out.set_row(g.row);
    prefix.clear();
    AppendEscaped(&prefix, g.row);
    for (const Family* f : fams) {
      auto& it = iters[f];
      if (!it) it.reset(db_->NewIterator(ro, f->handle));
      ReadFamilyRow(it.get(), *f, prefix, spec, now, &out, &key_buf);
    }
    if (g.newest_cells > 0) out.KeepNewest(static_cast<size_t>(g.newest_cells));
  }
  for (auto& [f, it] : iters) {
    if (status.ok() && !it->status().ok()) status = FromRocks(it->status(), "store: read");
  }
  iters.clear();
  db_->ReleaseSnapshot(snap);
  if (!status.ok()) {
    results->clear();
    return status.WithContext(std::string(table));
  }
  get_rows_.Inc(static_cast<double>(gets.size()));
  return Status::OK();
}

StatusOr<bool> EmbeddedStore::Exists(std::string_view table, const GetRequest& get) {
  SEG_ASSIGN_OR_RETURN(RowResult r, Get(table, get));
  return !r.empty();
}

Status EmbeddedStore::AddPuts(const Table& table, std::string_view row,
                              const std::vector<Cell>& cells, int64_t now_ms,
                              rocksdb::WriteBatch* batch, RowChange* change,
                              std::vector<Fold>* folds, size_t row_index) {
  std::string key;
  std::string prefix = EncodeRowPrefix(row);
  // Packed families: the row's cells grouped per chunk, one merge operand each.
  std::map<std::pair<const Family*, std::string_view>, std::vector<PackedCell>> chunks;
  for (const Cell& c : cells) {
    const Family* f = table.Find(c.family);
    if (f == nullptr) {
      return InvalidArgumentError("store: unknown family '" + c.family + "' in table " +
                                  table.name);
    }
    int64_t ts = c.timestamp == kLatestTimestamp ? now_ms : c.timestamp;
    if (ts < 0) return InvalidArgumentError("store: negative timestamp");
    if (change) {
      change->newest_timestamp = std::max(change->newest_timestamp, ts);
      ++change->cell_count;
      if (std::find(change->families.begin(), change->families.end(), c.family) ==
          change->families.end()) {
        change->families.push_back(c.family);
      }
    }
    if (f->options.packed_prefix_bytes > 0) {
      chunks[{f, ChunkOf(c.qualifier, f->options.packed_prefix_bytes)}].push_back(
          PackedCell{c.qualifier, ts, c.value});
      continue;
    }
    key.assign(prefix);
    AppendQualifierAndTimestamp(&key, c.qualifier, ts);
    rocksdb::Status s = batch->Put(f->handle, key, c.value);
    if (!s.ok()) return FromRocks(s, "store: batch put");
  }
  std::string run;
  for (auto& [where, run_cells] : chunks) {
    key.assign(prefix);
    AppendEscaped(&key, where.second);
    EncodePackedRun(&run_cells, &run);
    if (folds != nullptr) {
      auto& count = chunk_merges_[std::hash<std::string_view>{}(key) % kFoldSlots];
      if (count.fetch_add(1, std::memory_order_relaxed) + 1 >= kFoldEvery) {
        count.store(0, std::memory_order_relaxed);
        folds->push_back(Fold{where.first, key, run, row_index});
        continue;
      }
    }
    rocksdb::Status s = batch->Merge(where.first->handle, key, run);
    if (!s.ok()) return FromRocks(s, "store: batch merge");
  }
  return Status::OK();
}

Status EmbeddedStore::ApplyFolds(const std::vector<RowPut>& rows, std::vector<Fold>* folds,
                                 rocksdb::WriteBatch* batch) {
  std::string current, merged;
  for (Fold& f : *folds) {
    // A row given twice may have another operand for this chunk earlier in
    // the batch, which a read now would miss: merge as usual then.
    bool repeated = false;
    for (size_t i = 0; i < rows.size() && !repeated; ++i) {
      repeated = i != f.row && rows[i].row == rows[f.row].row;
    }
    rocksdb::Status s;
    if (!repeated) s = db_->Get(rocksdb::ReadOptions(), f.family->handle, f.key, &current);
    if (repeated || !(s.ok() || s.IsNotFound())) {
      s = batch->Merge(f.family->handle, f.key, f.run);
    } else if (s.IsNotFound()) {
      s = batch->Put(f.family->handle, f.key, f.run);  // a run is a chunk value
      folds_.Inc();
    } else if (MergePackedRuns({current, f.run}, f.family->options.max_versions, &merged)) {
      s = batch->Put(f.family->handle, f.key, merged);
      folds_.Inc();
    } else {
      s = batch->Merge(f.family->handle, f.key, f.run);  // malformed: reads report it
    }
    if (!s.ok()) return FromRocks(s, "store: batch fold");
  }
  return Status::OK();
}

Status EmbeddedStore::Commit(rocksdb::WriteBatch* batch) {
  auto start = std::chrono::steady_clock::now();
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync == SyncPolicy::kFsyncEveryWrite;
  rocksdb::Status s = db_->Write(wo, batch);
  write_latency_.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return FromRocks(s, "store: write");
}

void EmbeddedStore::Notify(const std::vector<RowChange>& changes) {
  for (const auto& o : options_.observers) o->OnCommitted(changes);
}

Status EmbeddedStore::Put(std::string_view table, const std::vector<RowPut>& rows) {
  SEG_ASSIGN_OR_RETURN(const Table* t, FindTable(table));
  if (rows.empty()) return Status::OK();
  const int64_t now = clock_->NowMs();
  const bool observe = !options_.observers.empty();
  // One allocation for the batch: keys (row + qualifier + framing) and values.
  size_t bytes = 64;
  for (const RowPut& r : rows) {
    for (const Cell& c : r.cells) bytes += r.row.size() + c.qualifier.size() + c.value.size() + 40;
  }
  rocksdb::WriteBatch batch(bytes);
  std::vector<RowChange> changes;
  if (observe) changes.resize(rows.size());
  std::vector<size_t> stripes;
  stripes.reserve(rows.size());
  std::vector<Fold> folds;
  size_t cells = 0;
  // Rows go into the batch in key order, so the memtable inserts each key
  // near the previous one (ingest's 5000 one-cell rows: ~7% less put time).
  // Stable: a row given twice keeps its order, the later cell wins.
  std::vector<uint32_t> order(rows.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&rows](uint32_t a, uint32_t b) { return rows[a].row < rows[b].row; });
  for (size_t i : order) {
    SEG_RETURN_IF_ERROR(ValidateRow(rows[i].row));
    RowChange* change = observe ? &changes[i] : nullptr;
    if (change) {
      change->table = t->name;
      change->row = rows[i].row;
    }
    SEG_RETURN_IF_ERROR(AddPuts(*t, rows[i].row, rows[i].cells, now, &batch, change, &folds, i));
    cells += rows[i].cells.size();
    stripes.push_back(std::hash<std::string_view>{}(rows[i].row) % row_locks_.size());
  }
  // Lock the rows' stripes in order (no deadlock) so a concurrent
  // checkAndMutate on one of these rows sees all or nothing.
  std::sort(stripes.begin(), stripes.end());
  stripes.erase(std::unique(stripes.begin(), stripes.end()), stripes.end());
  for (size_t s : stripes) row_locks_[s].lock();
  Status st = folds.empty() ? Status::OK() : ApplyFolds(rows, &folds, &batch);
  if (st.ok()) st = Commit(&batch);
  for (auto it = stripes.rbegin(); it != stripes.rend(); ++it) row_locks_[*it].unlock();
  SEG_RETURN_IF_ERROR(st);
  put_cells_.Inc(static_cast<double>(cells));
  if (observe) Notify(changes);
  return Status::OK();
}

rocksdb::Iterator* EmbeddedStore::IteratorFor(rocksdb::ColumnFamilyHandle* handle,
                                              DeleteIterators* iterators) {
  std::unique_ptr<rocksdb::Iterator>& it = (*iterators)[handle];
  if (!it) {
    rocksdb::ReadOptions ro;
    ro.prefix_same_as_start = true;
    it.reset(db_->NewIterator(ro, handle));
  }
  return it.get();
}

Status EmbeddedStore::AddDeletes(const Table& table, std::string_view row, const DeleteColumn& col,
                                 rocksdb::WriteBatch* batch, PendingChunks* pending,
                                 DeleteIterators* iterators) {
  const Family* f = table.Find(col.family);
  if (f == nullptr) {
    return InvalidArgumentError("store: unknown family '" + col.family + "' in table " +
                                table.name);
  }
  std::string prefix = EncodeRowPrefix(row);
  if (f->options.packed_prefix_bytes > 0) {
    return AddPackedDeletes(*f, prefix, col, pending, iterators);
  }
  std::string key = prefix;
  if (col.qualifier && !col.all_versions && col.timestamp != kLatestTimestamp) {
    // One exact version: no read needed.
    AppendQualifierAndTimestamp(&key, *col.qualifier, col.timestamp);
    return FromRocks(batch->Delete(f->handle, key), "store: batch delete");
  }
  std::string esc_qualifier;
  if (col.qualifier) {
    AppendEscaped(&key, *col.qualifier);
    esc_qualifier = key.substr(prefix.size());
  }
  rocksdb::Iterator* it = IteratorFor(f->handle, iterators);
  DecodedKey k;
  std::string scratch;
  for (it->Seek(key); it->Valid(); it->Next()) {
    rocksdb::Slice raw = it->key();
    if (!StartsWith(raw, prefix)) break;
    if (!DecodeCellKey(std::string_view(raw.data(), raw.size()), &k, &scratch)) continue;
    if (col.qualifier && k.escaped_qualifier != esc_qualifier) break;
    if (k.timestamp > col.timestamp) continue;
    SEG_RETURN_IF_ERROR(FromRocks(batch->Delete(f->handle, raw), "store: batch delete"));
    if (col.qualifier && !col.all_versions) break;  // the newest version only
  }
  return FromRocks(it->status(), "store: read for delete");
}

Status EmbeddedStore::AddPackedDeletes(const Family& f, const std::string& row_prefix,
                                       const DeleteColumn& col, PendingChunks* pending,
                                       DeleteIterators* iterators) {
  // Chunks are read (merged) once per row operation, edited in `pending`,
  // and written back whole by WritePending; the row lock is held.
  auto edit = [&](const std::string& key, const std::string* loaded) -> Status {
    auto [it, fresh] = pending->try_emplace({f.handle, key});
    if (fresh) {
      if (loaded != nullptr) {
        it->second = *loaded;
      } else {
        rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), f.handle, key, &it->second);
        if (s.IsNotFound()) {
          it->second.clear();
        } else if (!s.ok()) {
          return FromRocks(s, "store: read chunk for delete");
        }
      }
    }
    DeleteFromChunk(col, &it->second);
    return Status::OK();
  };
  if (col.qualifier) {
    std::string key = row_prefix;
    AppendEscaped(&key, ChunkOf(*col.qualifier, f.options.packed_prefix_bytes));
    return edit(key, nullptr);
  }
  rocksdb::Iterator* it = IteratorFor(f.handle, iterators);
  std::string key, value;
  for (it->Seek(row_prefix); it->Valid() && StartsWith(it->key(), row_prefix); it->Next()) {
    key.assign(it->key().data(), it->key().size());
    value.assign(it->value().data(), it->value().size());
    SEG_RETURN_IF_ERROR(edit(key, &value));
  }
  return FromRocks(it->status(), "store: read for delete");
}

Status EmbeddedStore::WritePending(PendingChunks* pending, rocksdb::WriteBatch* batch) {
  for (auto& [where, value] : *pending) {
    rocksdb::Status s = value.size() <= 1 ? batch->Delete(where.first, where.second)
                                          : batch->Put(where.first, where.second, value);
    if (!s.ok()) return FromRocks(s, "store: batch chunk rewrite");
  }
  pending->clear();
  return Status::OK();
}

Status EmbeddedStore::Delete(std::string_view table, const std::vector<RowDelete>& rows) {
  SEG_ASSIGN_OR_RETURN(const Table* t, FindTable(table));
  if (rows.empty()) return Status::OK();
  std::vector<uint32_t> order(rows.size());
  std::vector<size_t> stripes;
  stripes.reserve(rows.size());
  for (uint32_t i = 0; i < order.size(); ++i) {
    SEG_RETURN_IF_ERROR(ValidateRow(rows[i].row));
    order[i] = i;
    stripes.push_back(std::hash<std::string_view>{}(rows[i].row) % row_locks_.size());
  }
  // One batch, one commit and one iterator per family for all the rows (a
  // commit and an iterator per row cost 4x a put). Rows in key order, so the
  // iterators only move forward; stripes locked in order as Put does.
  std::stable_sort(order.begin(), order.end(),
                   [&rows](uint32_t a, uint32_t b) { return rows[a].row < rows[b].row; });
  std::sort(stripes.begin(), stripes.end());
  stripes.erase(std::unique(stripes.begin(), stripes.end()), stripes.end());
  for (size_t s : stripes) row_locks_[s].lock();
  rocksdb::WriteBatch batch;
  PendingChunks pending;
  Status st;
  {
    DeleteIterators iterators;  // created under the locks: they see every committed write
    for (uint32_t i : order) {
      const RowDelete& r = rows[i];
      if (r.columns.empty()) {
        for (const auto& f : t->families) {
          DeleteColumn all;
          all.family = f.options.name;
          all.timestamp = r.timestamp;
          st = AddDeletes(*t, r.row, all, &batch, &pending, &iterators);
          if (!st.ok()) break;
        }
      } else {
        for (const auto& c : r.columns) {
          st = AddDeletes(*t, r.row, c, &batch, &pending, &iterators);
          if (!st.ok()) break;
        }
      }
      if (!st.ok()) break;
    }
  }
  if (st.ok()) st = WritePending(&pending, &batch);
  if (st.ok() && batch.Count() > 0) st = Commit(&batch);
  for (auto it = stripes.rbegin(); it != stripes.rend(); ++it) row_locks_[*it].unlock();
  return st;
}

StatusOr<bool> EmbeddedStore::CheckAndMutate(std::string_view table, const Condition& condition,
                                             const RowMutations& mutations) {
  SEG_ASSIGN_OR_RETURN(const Table* t, FindTable(table));
  SEG_RETURN_IF_ERROR(ValidateRow(mutations.row));
  const Family* f = t->Find(condition.family);
  if (f == nullptr) {
    return InvalidArgumentError("store: unknown family '" + condition.family + "' in table " +
                                t->name);
  }
  std::lock_guard<std::mutex> lock(RowLock(mutations.row));
  const int64_t now = clock_->NowMs();
  GetRequest g;
  g.row = mutations.row;
  g.families = {condition.family};
  g.qualifiers = {condition.qualifier};
  ReadSpec spec = SpecFrom(g, 0);
  RowResult current(mutations.row);
  {
    rocksdb::ReadOptions ro;
    ro.prefix_same_as_start = true;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, f->handle));
    std::string key_buf;
    ReadFamilyRow(it.get(), *f, EncodeRowPrefix(mutations.row), spec, now, &current, &key_buf);
    SEG_RETURN_IF_ERROR(FromRocks(it->status(), "store: read for check"));
  }
  // HBase treats an absent and an empty expected value alike: the column
  // must have no cell or an empty one (NOT_EQUAL inverts that).
  bool holds;
  if (!condition.value || condition.value->empty()) {
    bool none = current.empty() || current.cell(0).value.empty();
    holds = condition.op == CompareOp::kNotEqual ? !none : none;
  } else {
    holds = !current.empty() && Compare(condition.op, *condition.value, current.cell(0).value);
  }
  if (!holds) return false;
  rocksdb::WriteBatch batch;
  PendingChunks pending;
  DeleteIterators iterators;
  for (const auto& d : mutations.deletes) {
    SEG_RETURN_IF_ERROR(AddDeletes(*t, mutations.row, d, &batch, &pending, &iterators));
  }
  SEG_RETURN_IF_ERROR(WritePending(&pending, &batch));  // before the puts' merges
  RowChange change;
  change.table = t->name;
  change.row = mutations.row;
  SEG_RETURN_IF_ERROR(AddPuts(*t, mutations.row, mutations.puts, now, &batch, &change));
  if (batch.Count() > 0) SEG_RETURN_IF_ERROR(Commit(&batch));
  if (!mutations.puts.empty()) {
    put_cells_.Inc(static_cast<double>(mutations.puts.size()));
    if (!options_.observers.empty()) Notify({change});
  }
  return true;
}

namespace {

// Merges the per-family iterators row by row over [start, stop).
class EmbeddedScanner final : public Scanner {
 public:
  EmbeddedScanner(const EmbeddedStore* store, std::vector<const EmbeddedStore::Family*> fams,
                  EmbeddedStore::ReadSpec spec, const ScanRequest& scan)
      : store_(store),
        fams_(std::move(fams)),
        spec_(std::move(spec)),
        batch_rows_(scan.batch_rows > 0 ? scan.batch_rows : 100) {
    snapshot_ = store_->db()->GetSnapshot();
    rocksdb::ReadOptions ro;
    ro.snapshot = snapshot_;
    ro.total_order_seek = true;  // crosses rows: no prefix mode
    if (!scan.stop_row.empty()) stop_prefix_ = EncodeRowPrefix(scan.stop_row);
    std::string start = scan.start_row.empty() ? std::string() : EncodeRowPrefix(scan.start_row);
    for (const auto* f : fams_) {
      iters_.emplace_back(store_->db()->NewIterator(ro, f->handle));
      if (start.empty()) {
        iters_.back()->SeekToFirst();
      } else {
        iters_.back()->Seek(start);
      }
    }
  }
  ~EmbeddedScanner() override { Close().IgnoreError(); }

  Status NextBatch(std::vector<RowResult>* rows) override {
    rows->clear();
    if (closed_) return FailedPreconditionError("store: scanner closed");
    const int64_t now = store_->clock()->NowMs();
    std::string row_prefix, key_buf, upper;
    while (static_cast<int32_t>(rows->size()) < batch_rows_) {
      // The smallest row among the families.
      std::string_view min_prefix;
      for (auto& it : iters_) {
        if (!it->Valid()) continue;
        rocksdb::Slice k = it->key();
        size_t n = RowPrefixLength(std::string_view(k.data(), k.size()));
        std::string_view p(k.data(), n);
        if (min_prefix.empty() || p < min_prefix) min_prefix = p;
      }
      if (min_prefix.empty()) break;
      if (!stop_prefix_.empty() && min_prefix >= stop_prefix_) break;
      row_prefix.assign(min_prefix);
      upper = RowUpperBound(row_prefix);
      RowResult out;
      for (size_t i = 0; i < iters_.size(); ++i) {
        auto& it = iters_[i];
        if (!it->Valid() || !it->key().starts_with(row_prefix)) continue;
        store_->ReadFamilyRow(it.get(), *fams_[i], row_prefix, spec_, now, &out, &key_buf);
        // Past the row whatever the read stopped at (qualifier_stop, ...).
        if (it->Valid() && it->key().compare(upper) < 0) it->Seek(upper);
      }
      if (out.empty()) continue;  // every cell expired or filtered: HBase skips the row
      std::string row;
      DecodeRow(row_prefix, &row);
      out.set_row(std::move(row));
      rows->push_back(std::move(out));
    }
    for (auto& it : iters_) {
      if (!it->status().ok()) return FromRocks(it->status(), "store: scan");
    }
    return Status::OK();
  }

  Status Close() override {
    if (closed_) return Status::OK();
    closed_ = true;
    iters_.clear();
    store_->db()->ReleaseSnapshot(snapshot_);
    return Status::OK();
  }

 private:
  const EmbeddedStore* store_;
  std::vector<const EmbeddedStore::Family*> fams_;
  EmbeddedStore::ReadSpec spec_;
  int32_t batch_rows_;
  const rocksdb::Snapshot* snapshot_ = nullptr;
  std::vector<std::unique_ptr<rocksdb::Iterator>> iters_;
  std::string stop_prefix_;
  bool closed_ = false;
};

}  // namespace

StatusOr<std::unique_ptr<Scanner>> EmbeddedStore::OpenScanner(std::string_view table,
                                                              const ScanRequest& scan) {
  SEG_ASSIGN_OR_RETURN(const Table* t, FindTable(table));
  if (scan.start_row.size() > kMaxRowBytes || scan.stop_row.size() > kMaxRowBytes) {
    return InvalidArgumentError("store: scan row key too long");
  }
  std::vector<const Family*> fams;
  SEG_RETURN_IF_ERROR(ResolveFamilies(*t, scan.families, &fams));
  ReadSpec spec;
  spec.qualifier_start = scan.qualifier_start;
  spec.qualifier_stop = scan.qualifier_stop;
  spec.time_range = scan.time_range;
  spec.max_versions = scan.max_versions;
  SEG_RETURN_IF_ERROR(ValidateSpec(spec));
  return std::unique_ptr<Scanner>(
      new EmbeddedScanner(this, std::move(fams), std::move(spec), scan));
}

Status EmbeddedStore::CompactAllForTest() {
  for (auto* h : handles_) {
    rocksdb::CompactRangeOptions o;
    o.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    SEG_RETURN_IF_ERROR(FromRocks(db_->Flush(rocksdb::FlushOptions(), h), "store: flush"));
    SEG_RETURN_IF_ERROR(FromRocks(db_->CompactRange(o, h, nullptr, nullptr), "store: compact"));
  }
  return Status::OK();
}

StatusOr<int64_t> EmbeddedStore::CountRawKeysForTest(std::string_view table,
                                                     std::string_view family) {
  SEG_ASSIGN_OR_RETURN(const Table* t, FindTable(table));
  const Family* f = t->Find(family);
  if (f == nullptr) return InvalidArgumentError("unknown family");
  rocksdb::ReadOptions ro;
  ro.total_order_seek = true;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, f->handle));
  int64_t n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (f->options.packed_prefix_bytes > 0) {
      n += CountPackedCells(std::string_view(it->value().data(), it->value().size()));
    } else {
      ++n;
    }
  }
  return n;
}

}  // namespace seg::store::internal
