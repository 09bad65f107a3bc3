#include "store/internal/thrift_convert.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <type_traits>

namespace seg::store::internal {
namespace {

void AppendQuoted(std::string* out, std::string_view bytes) {
  out->push_back('\'');
  for (char c : bytes) {
    if (c == '\'') out->push_back('\'');  // the filter language doubles quotes
    out->push_back(c);
  }
  out->push_back('\'');
}

struct FilterParser {
  std::string_view in;
  size_t pos = 0;

  void SkipSpace() {
    while (pos < in.size() && (in[pos] == ' ' || in[pos] == '\t')) ++pos;
  }
  bool Literal(std::string_view lit) {
    SkipSpace();
    if (in.substr(pos, lit.size()) != lit) return false;
    pos += lit.size();
    return true;
  }
  bool Quoted(std::string* out) {
    SkipSpace();
    if (pos >= in.size() || in[pos] != '\'') return false;
    ++pos;
    out->clear();
    while (pos < in.size()) {
      char c = in[pos++];
      if (c == '\'') {
        if (pos < in.size() && in[pos] == '\'') {
          out->push_back('\'');
          ++pos;
          continue;
        }
        return true;
      }
      out->push_back(c);
    }
    return false;
  }
  bool Bool(bool* out) {
    if (Literal("true")) {
      *out = true;
      return true;
    }
    if (Literal("false")) {
      *out = false;
      return true;
    }
    return false;
  }
};

}  // namespace

std::string ColumnRangeFilterString(std::string_view start, std::string_view stop) {
  std::string f = "ColumnRangeFilter(";
  AppendQuoted(&f, start);
  f += ", true, ";
  AppendQuoted(&f, stop);
  f += ", false)";
  return f;
}

Status ParseColumnRangeFilter(std::string_view filter, std::string* start, std::string* stop) {
  FilterParser p{filter};
  bool min_incl = true, max_incl = false;
  if (!p.Literal("ColumnRangeFilter") || !p.Literal("(") || !p.Quoted(start) || !p.Literal(",") ||
      !p.Bool(&min_incl) || !p.Literal(",") || !p.Quoted(stop) || !p.Literal(",") ||
      !p.Bool(&max_incl) || !p.Literal(")")) {
    return InvalidArgumentError(
        "unsupported filter (seg-store understands ColumnRangeFilter only)");
  }
  p.SkipSpace();
  if (p.pos != filter.size()) return InvalidArgumentError("trailing bytes after filter");
  // (a, ...: the smallest qualifier after a is a + 0x00.
  if (!min_incl && !start->empty()) start->push_back('\0');
  if (max_incl && !stop->empty()) stop->push_back('\0');
  return Status::OK();
}

Status ToTGet(const GetRequest& get, hbase::TGet* out) {
  if (!get.qualifiers.empty() && get.families.empty()) {
    return InvalidArgumentError("qualifiers need families");
  }
  *out = hbase::TGet();
  out->row = get.row;
  for (const auto& f : get.families) {
    if (get.qualifiers.empty()) {
      hbase::TColumn c;
      c.family = f;
      out->columns.push_back(std::move(c));
    } else {
      for (const auto& q : get.qualifiers) {
        hbase::TColumn c;
        c.family = f;
        c.__set_qualifier(q);
        out->columns.push_back(std::move(c));
      }
    }
  }
  out->__isset.columns = !out->columns.empty();
  if (get.time_range.min != 0 || get.time_range.max != kLatestTimestamp) {
    hbase::TTimeRange tr;
    tr.minStamp = get.time_range.min;
    tr.maxStamp = get.time_range.max;
    out->__set_timeRange(tr);
  }
  out->__set_maxVersions(get.max_versions);
  if (get.qualifiers.empty() && (!get.qualifier_start.empty() || !get.qualifier_stop.empty())) {
    out->__set_filterString(ColumnRangeFilterString(get.qualifier_start, get.qualifier_stop));
  }
  if (get.newest_cells > 0) {
    out->__set_attributes({{kNewestCellsAttribute, std::to_string(get.newest_cells)}});
  }
  return Status::OK();
}

void ToTPut(const RowPut& put, hbase::TPut* out) {
  *out = hbase::TPut();
  out->row = put.row;
  out->columnValues.resize(put.cells.size());
  for (size_t i = 0; i < put.cells.size(); ++i) {
    const Cell& c = put.cells[i];
    hbase::TColumnValue& cv = out->columnValues[i];
    cv.family = c.family;
    cv.qualifier = c.qualifier;
    cv.value = c.value;
    if (c.timestamp != kLatestTimestamp) cv.__set_timestamp(c.timestamp);
  }
}

void ToTDeletes(const RowDelete& del, std::vector<hbase::TDelete>* out) {
  // deleteType is per TDelete and HBase's gateway applies it to every column
  // in it (a column without qualifier under DELETE_COLUMNS is the column
  // with the empty qualifier, not the family), so up to three TDeletes:
  // all-versions columns, single-version columns, whole families.
  hbase::TDelete all, one, family;
  all.row = one.row = family.row = del.row;
  all.__set_deleteType(hbase::TDeleteType::DELETE_COLUMNS);
  one.__set_deleteType(hbase::TDeleteType::DELETE_COLUMN);
  family.__set_deleteType(hbase::TDeleteType::DELETE_FAMILY);
  if (del.columns.empty()) {
    if (del.timestamp != kLatestTimestamp) all.__set_timestamp(del.timestamp);
    out->push_back(std::move(all));
    return;
  }
  for (const auto& c : del.columns) {
    hbase::TColumn col;
    col.family = c.family;
    if (c.qualifier) col.__set_qualifier(*c.qualifier);
    if (c.timestamp != kLatestTimestamp) col.__set_timestamp(c.timestamp);
    hbase::TDelete& target = !c.qualifier ? family : (c.all_versions ? all : one);
    target.columns.push_back(std::move(col));
    target.__isset.columns = true;
  }
  if (!all.columns.empty()) out->push_back(std::move(all));
  if (!one.columns.empty()) out->push_back(std::move(one));
  if (!family.columns.empty()) out->push_back(std::move(family));
}

Status ToTScan(const ScanRequest& scan, hbase::TScan* out) {
  *out = hbase::TScan();
  if (!scan.start_row.empty()) out->__set_startRow(scan.start_row);
  if (!scan.stop_row.empty()) out->__set_stopRow(scan.stop_row);
  for (const auto& f : scan.families) {
    hbase::TColumn c;
    c.family = f;
    out->columns.push_back(std::move(c));
  }
  out->__isset.columns = !out->columns.empty();
  out->__set_caching(scan.batch_rows > 0 ? scan.batch_rows : 100);
  out->__set_maxVersions(scan.max_versions);
  if (scan.time_range.min != 0 || scan.time_range.max != kLatestTimestamp) {
    hbase::TTimeRange tr;
    tr.minStamp = scan.time_range.min;
    tr.maxStamp = scan.time_range.max;
    out->__set_timeRange(tr);
  }
  if (!scan.qualifier_start.empty() || !scan.qualifier_stop.empty()) {
    out->__set_filterString(ColumnRangeFilterString(scan.qualifier_start, scan.qualifier_stop));
  }
  return Status::OK();
}

void FromTResult(const hbase::TResult& in, RowResult* out) {
  out->Clear();
  out->set_row(in.row);
  size_t bytes = 0;
  for (const auto& cv : in.columnValues) {
    bytes += cv.family.size() + cv.qualifier.size() + cv.value.size();
  }
  out->Reserve(in.columnValues.size(), bytes);
  for (const auto& cv : in.columnValues) {
    out->Add(cv.family, cv.qualifier, cv.__isset.timestamp ? cv.timestamp : 0, cv.value);
  }
}

Status FromTGet(const hbase::TGet& in, std::vector<GetRequest>* out) {
  out->clear();
  GetRequest base;
  base.row = in.row;
  if (in.__isset.timestamp) {
    if (in.timestamp < 0 || in.timestamp == kLatestTimestamp) {
      return InvalidArgumentError("bad timestamp");
    }
    base.time_range = {in.timestamp, in.timestamp + 1};
  } else if (in.__isset.timeRange) {
    base.time_range = {in.timeRange.minStamp, in.timeRange.maxStamp};
  }
  if (in.__isset.maxVersions) base.max_versions = in.maxVersions;
  if (in.__isset.filterString && !in.filterString.empty()) {
    SEG_RETURN_IF_ERROR(
        ParseColumnRangeFilter(in.filterString, &base.qualifier_start, &base.qualifier_stop));
  }
  if (in.__isset.attributes) {
    auto it = in.attributes.find(kNewestCellsAttribute);
    if (it != in.attributes.end()) {
      int32_t n = 0;
      auto [p, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), n);
      if (ec != std::errc() || n < 0) return InvalidArgumentError("bad seg.newest_cells");
      base.newest_cells = n;
    }
  }
  if (!in.__isset.columns || in.columns.empty()) {
    out->push_back(std::move(base));
    return Status::OK();
  }
  // family -> qualifiers (empty set = whole family).
  std::map<std::string, std::set<std::string>> by_family;
  std::set<std::string> whole;
  for (const auto& c : in.columns) {
    if (c.__isset.qualifier) {
      by_family[c.family].insert(c.qualifier);
    } else {
      whole.insert(c.family);
      by_family[c.family];
    }
  }
  for (const auto& f : whole) by_family[f].clear();
  // One request when every family selects the same thing; else per family.
  bool uniform = true;
  const auto& first = by_family.begin()->second;
  for (const auto& [f, qs] : by_family) uniform = uniform && qs == first;
  if (uniform) {
    for (const auto& [f, qs] : by_family) base.families.push_back(f);
    base.qualifiers.assign(first.begin(), first.end());
    out->push_back(std::move(base));
    return Status::OK();
  }
  for (const auto& [f, qs] : by_family) {
    GetRequest g = base;
    g.families = {f};
    g.qualifiers.assign(qs.begin(), qs.end());
    g.newest_cells = 0;  // applied to the merged row by the caller
    out->push_back(std::move(g));
  }
  return Status::OK();
}

int32_t NewestCellsOf(const hbase::TGet& in) {
  if (!in.__isset.attributes) return 0;
  auto it = in.attributes.find(kNewestCellsAttribute);
  if (it == in.attributes.end()) return 0;
  int32_t n = 0;
  auto [p, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), n);
  return ec == std::errc() && n > 0 ? n : 0;
}

namespace {

template <typename TPutRef>
Status ConvertTPut(TPutRef&& in, RowPut* out) {
  // std::forward moves the strings out of an rvalue TPut, copies otherwise.
  out->row = std::forward<TPutRef>(in).row;
  out->cells.clear();
  out->cells.reserve(in.columnValues.size());
  int64_t default_ts = in.__isset.timestamp ? in.timestamp : kLatestTimestamp;
  for (auto& cv : in.columnValues) {
    Cell& c = out->cells.emplace_back();
    if constexpr (std::is_const_v<std::remove_reference_t<TPutRef>>) {
      c.family = cv.family;
      c.qualifier = cv.qualifier;
      c.value = cv.value;
    } else {
      c.family = std::move(cv.family);
      c.qualifier = std::move(cv.qualifier);
      c.value = std::move(cv.value);
    }
    c.timestamp = cv.__isset.timestamp ? cv.timestamp : default_ts;
    if (c.timestamp < 0) return InvalidArgumentError("negative timestamp");
  }
  return Status::OK();
}

}  // namespace

Status FromTPut(const hbase::TPut& in, RowPut* out) { return ConvertTPut(in, out); }

Status FromTPut(hbase::TPut&& in, RowPut* out) { return ConvertTPut(std::move(in), out); }

Status FromTDelete(const hbase::TDelete& in, RowDelete* out) {
  out->row = in.row;
  out->columns.clear();
  out->timestamp = in.__isset.timestamp ? in.timestamp : kLatestTimestamp;
  int32_t type =
      in.__isset.deleteType ? WireEnum(in.deleteType) : int32_t{hbase::TDeleteType::DELETE_COLUMNS};
  if (type == hbase::TDeleteType::DELETE_FAMILY_VERSION) {
    return InvalidArgumentError("DELETE_FAMILY_VERSION is not supported");
  }
  if (type != hbase::TDeleteType::DELETE_COLUMN && type != hbase::TDeleteType::DELETE_COLUMNS &&
      type != hbase::TDeleteType::DELETE_FAMILY) {
    return InvalidArgumentError("unknown delete type");
  }
  if (!in.__isset.columns) return Status::OK();
  for (const auto& c : in.columns) {
    DeleteColumn d;
    d.family = c.family;
    // As HBase's gateway: the type applies to every column; under a column
    // type a missing qualifier is the empty qualifier, not the family.
    if (type != hbase::TDeleteType::DELETE_FAMILY) {
      d.qualifier = c.__isset.qualifier ? c.qualifier : std::string();
    }
    d.timestamp = c.__isset.timestamp ? c.timestamp : out->timestamp;
    d.all_versions = type != hbase::TDeleteType::DELETE_COLUMN;
    out->columns.push_back(std::move(d));
  }
  return Status::OK();
}

Status FromTScan(const hbase::TScan& in, ScanRequest* out) {
  *out = ScanRequest();
  if (in.__isset.startRow) out->start_row = in.startRow;
  if (in.__isset.stopRow) out->stop_row = in.stopRow;
  if (in.__isset.reversed && in.reversed) return InvalidArgumentError("reversed scans unsupported");
  if (in.__isset.columns) {
    for (const auto& c : in.columns) {
      if (c.__isset.qualifier) {
        return InvalidArgumentError("scans select whole families; use a ColumnRangeFilter");
      }
      out->families.push_back(c.family);
    }
  }
  if (in.__isset.caching && in.caching > 0) out->batch_rows = in.caching;
  if (in.__isset.maxVersions) out->max_versions = in.maxVersions;
  if (in.__isset.timeRange) out->time_range = {in.timeRange.minStamp, in.timeRange.maxStamp};
  if (in.__isset.filterString && !in.filterString.empty()) {
    SEG_RETURN_IF_ERROR(
        ParseColumnRangeFilter(in.filterString, &out->qualifier_start, &out->qualifier_stop));
  }
  return Status::OK();
}

Status FromTRowMutations(const hbase::TRowMutations& in, RowMutations* out) {
  out->row = in.row;
  out->deletes.clear();
  out->puts.clear();
  for (const auto& m : in.mutations) {
    if (m.__isset.put) {
      RowPut p;
      SEG_RETURN_IF_ERROR(FromTPut(m.put, &p));
      if (p.row != in.row) return InvalidArgumentError("mutation for another row");
      for (auto& c : p.cells) out->puts.push_back(std::move(c));
    } else if (m.__isset.deleteSingle) {
      RowDelete d;
      SEG_RETURN_IF_ERROR(FromTDelete(m.deleteSingle, &d));
      if (d.row != in.row) return InvalidArgumentError("mutation for another row");
      if (d.columns.empty()) {
        return InvalidArgumentError("whole-row delete inside row mutations is not supported");
      }
      for (auto& c : d.columns) out->deletes.push_back(std::move(c));
    } else {
      return InvalidArgumentError("empty mutation");
    }
  }
  return Status::OK();
}

void ToTResult(const RowResult& in, hbase::TResult* out) {
  out->columnValues.clear();
  out->__isset.row = false;
  if (in.empty()) return;  // HBase: an absent row has no row field
  out->__set_row(in.row());
  out->columnValues.resize(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    CellView c = in.cell(i);
    hbase::TColumnValue& cv = out->columnValues[i];
    cv.family.assign(c.family);
    cv.qualifier.assign(c.qualifier);
    cv.value.assign(c.value);
    cv.__set_timestamp(c.timestamp);
  }
}

std::string EncodeErrorMessage(const Status& status) { return status.ToString(); }

Status DecodeErrorMessage(const std::string& message) {
  for (int code = 1; code <= 16; ++code) {
    std::string_view name = StatusCodeName(static_cast<StatusCode>(code));
    if (message.size() > name.size() + 2 && message.compare(0, name.size(), name) == 0 &&
        message.compare(name.size(), 2, ": ") == 0) {
      return Status(static_cast<StatusCode>(code), message.substr(name.size() + 2));
    }
  }
  // HBase's gateway puts the Java exception text in the message.
  if (message.find("TableNotFoundException") != std::string::npos) return NotFoundError(message);
  if (message.find("NoSuchColumnFamilyException") != std::string::npos ||
      message.find("IllegalArgumentException") != std::string::npos) {
    return InvalidArgumentError(message);
  }
  return InternalError(message);
}

}  // namespace seg::store::internal
