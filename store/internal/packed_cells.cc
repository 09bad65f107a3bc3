#include "store/internal/packed_cells.h"

#include <algorithm>
#include <cstring>

namespace seg::store::internal {
namespace {

void PutVarint32(std::string* out, uint32_t v) {
  char buf[5];
  size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out->append(buf, n);
}

bool GetVarint32(const char** p, const char* end, uint32_t* v) {
  uint32_t result = 0;
  for (int shift = 0; shift <= 28 && *p < end; shift += 7) {
    uint32_t byte = static_cast<unsigned char>(*(*p)++);
    result |= (byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

}  // namespace

PackedReader::PackedReader(std::string_view value)
    : p_(value.data()), end_(value.data() + value.size()) {
  if (value.empty() || value[0] != kPackedFormatV1) {
    ok_ = false;
    p_ = end_;
  } else {
    ++p_;
  }
}

bool PackedReader::Next(PackedCell* cell) {
  if (p_ == end_) return false;
  uint32_t qlen = 0, vlen = 0;
  if (!GetVarint32(&p_, end_, &qlen) || static_cast<size_t>(end_ - p_) < qlen + 8ull) {
    ok_ = false;
    p_ = end_;
    return false;
  }
  cell->qualifier = std::string_view(p_, qlen);
  p_ += qlen;
  std::memcpy(&cell->timestamp, p_, 8);
  p_ += 8;
  if (!GetVarint32(&p_, end_, &vlen) || static_cast<size_t>(end_ - p_) < vlen) {
    ok_ = false;
    p_ = end_;
    return false;
  }
  cell->value = std::string_view(p_, vlen);
  p_ += vlen;
  return true;
}

void AppendPackedCell(std::string* out, std::string_view qualifier, int64_t timestamp,
                      std::string_view value) {
  PutVarint32(out, static_cast<uint32_t>(qualifier.size()));
  out->append(qualifier);
  char ts[8];
  std::memcpy(ts, &timestamp, 8);
  out->append(ts, 8);
  PutVarint32(out, static_cast<uint32_t>(value.size()));
  out->append(value);
}

void EncodePackedRun(std::vector<PackedCell>* cells, std::string* out) {
  out->clear();
  out->push_back(kPackedFormatV1);
  // Stable: of equal (qualifier, timestamp) the later cell stays last.
  std::stable_sort(cells->begin(), cells->end(), PackedBefore);
  for (size_t i = 0; i < cells->size(); ++i) {
    const PackedCell& c = (*cells)[i];
    if (i + 1 < cells->size() && (*cells)[i + 1].qualifier == c.qualifier &&
        (*cells)[i + 1].timestamp == c.timestamp) {
      continue;  // overwritten by a later cell of this run
    }
    AppendPackedCell(out, c.qualifier, c.timestamp, c.value);
  }
}

bool MergePackedRuns(const std::vector<std::string_view>& runs, int32_t max_versions,
                     std::string* out) {
  // k-way merge of sorted runs (k is small: a chunk's pending operands).
  // Of equal (qualifier, timestamp) the newest run wins, the rest are skipped.
  struct Head {
    PackedReader reader;
    PackedCell cell;
    bool valid;
  };
  std::vector<Head> heads;
  heads.reserve(runs.size());
  size_t total = 1;
  for (std::string_view r : runs) {
    heads.push_back(Head{PackedReader(r), {}, false});
    heads.back().valid = heads.back().reader.Next(&heads.back().cell);
    if (!heads.back().reader.ok()) return false;
    total += r.size();
  }
  out->clear();
  out->reserve(total);
  out->push_back(kPackedFormatV1);
  std::string_view qualifier;
  bool have_qualifier = false;
  int32_t versions = 0;
  while (true) {
    int best = -1;
    for (int i = static_cast<int>(heads.size()) - 1; i >= 0; --i) {
      if (heads[i].valid && (best < 0 || PackedBefore(heads[i].cell, heads[best].cell))) best = i;
    }
    if (best < 0) break;
    PackedCell c = heads[best].cell;
    // Advance every run past this (qualifier, timestamp).
    for (auto& h : heads) {
      while (h.valid && h.cell.qualifier == c.qualifier && h.cell.timestamp == c.timestamp) {
        h.valid = h.reader.Next(&h.cell);
      }
      if (!h.reader.ok()) return false;
    }
    if (!have_qualifier || c.qualifier != qualifier) {
      qualifier = c.qualifier;
      have_qualifier = true;
      versions = 0;
    }
    if (max_versions > 0 && ++versions > max_versions) continue;
    AppendPackedCell(out, c.qualifier, c.timestamp, c.value);
  }
  return true;
}

int64_t CountPackedCells(std::string_view value) {
  PackedReader reader(value);
  PackedCell c;
  int64_t n = 0;
  while (reader.Next(&c)) ++n;
  return reader.ok() ? n : -1;
}

bool PackedMergeOperator::FullMergeV2(const MergeOperationInput& in,
                                      MergeOperationOutput* out) const {
  std::vector<std::string_view> runs;
  runs.reserve(in.operand_list.size() + 1);
  if (in.existing_value != nullptr) {
    runs.emplace_back(in.existing_value->data(), in.existing_value->size());
  }
  for (const auto& op : in.operand_list) runs.emplace_back(op.data(), op.size());
  if (runs.size() == 1) {
    // One sorted run is its own result (no copy); versions beyond the
    // family max are hidden by reads and trimmed by the next real merge.
    out->existing_operand =
        in.existing_value != nullptr ? *in.existing_value : in.operand_list.front();
    return true;
  }
  return MergePackedRuns(runs, max_versions_, &out->new_value);
}

rocksdb::CompactionFilter::Decision PackedTtlFilter::FilterV2(int, const rocksdb::Slice&,
                                                              ValueType type,
                                                              const rocksdb::Slice& existing_value,
                                                              std::string* new_value,
                                                              std::string*) const {
  if (type != kValue) return Decision::kKeep;
  std::string_view value(existing_value.data(), existing_value.size());
  PackedReader reader(value);
  PackedCell c;
  bool expired = false;
  while (reader.Next(&c)) {
    if (c.timestamp < min_ts_) {
      expired = true;
      break;
    }
  }
  if (!reader.ok() || !expired) return Decision::kKeep;
  new_value->clear();
  new_value->push_back(kPackedFormatV1);
  PackedReader again(value);
  while (again.Next(&c)) {
    if (c.timestamp >= min_ts_) AppendPackedCell(new_value, c.qualifier, c.timestamp, c.value);
  }
  return new_value->size() > 1 ? Decision::kChangeValue : Decision::kRemove;
}

}  // namespace seg::store::internal
