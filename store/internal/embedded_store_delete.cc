// EmbeddedStore deletes: the matching versions are removed physically (no
// delete markers). One-key-per-cell families read the row's keys and delete
// them; packed chunks are read, edited and written back whole. Under the
// rows' striped locks.
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>

#include "store/internal/embedded_store_parts.h"
#include "store/internal/key_codec.h"
#include "store/internal/packed_cells.h"

namespace seg::store::internal {
namespace {

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

}  // namespace seg::store::internal
