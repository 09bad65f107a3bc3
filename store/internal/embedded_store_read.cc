// EmbeddedStore reads: get, multi-get, exists and scans. Every read applies
// the family's TTL and max versions itself (by the injected Clock), so an
// expired cell is invisible before compaction drops it.
#include <glog/logging.h>
#include <rocksdb/db.h>

#include <algorithm>

#include "store/internal/embedded_store_parts.h"
#include "store/internal/key_codec.h"
#include "store/internal/packed_cells.h"

namespace seg::store::internal {
namespace {

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

}  // namespace

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

}  // namespace seg::store::internal
