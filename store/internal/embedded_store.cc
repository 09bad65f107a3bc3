// EmbeddedStore: opening RocksDB (options, column families, the layout
// check), finding tables and families, row locks, test hooks. Reads, writes
// and deletes live in embedded_store_{read,write,delete}.cc.
#include "store/internal/embedded_store.h"

#include <glog/logging.h>
#include <rocksdb/cache.h>
#include <rocksdb/compaction_filter.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>

#include <algorithm>
#include <filesystem>

#include "store/internal/embedded_store_parts.h"
#include "store/internal/packed_cells.h"

namespace seg::store::internal {
namespace {

std::string CfName(std::string_view table, std::string_view family) {
  std::string name(table);
  name += ':';
  name += family;
  return name;
}

// The layout a family was created with, kept in the default column family
// ("seg.layout/<table>:<family>") so a config change cannot misread data.
std::string LayoutName(const FamilyOptions& f) {
  return f.packed_prefix_bytes > 0 ? "packed-v1/" + std::to_string(f.packed_prefix_bytes)
                                   : "cells-v1";
}

}  // namespace

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

  auto prefix = NewRowPrefixExtractor();
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
        o.compaction_filter_factory = NewPackedTtlFilterFactory(fam->ttl_ms, clock_);
      }
    } else if (fam != nullptr) {
      o.compaction_filter_factory = NewTtlVersionFilterFactory(*fam, clock_);
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
