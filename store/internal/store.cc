// RowResult, the default schema and the backend factory.
#include "store/store.h"

#include <algorithm>
#include <numeric>

#include "store/internal/embedded_store.h"
#include "store/internal/thrift_client.h"

namespace seg::store {

CellView RowResult::cell(size_t i) const {
  const Ref& r = refs_[i];
  const char* base = data_.data() + r.offset;
  CellView v;
  v.family = std::string_view(base, r.family_size);
  v.qualifier = std::string_view(base + r.family_size, r.qualifier_size);
  v.value = std::string_view(base + r.family_size + r.qualifier_size, r.value_size);
  v.timestamp = r.timestamp;
  return v;
}

void RowResult::Add(std::string_view family, std::string_view qualifier, int64_t timestamp,
                    std::string_view value) {
  Ref r;
  r.timestamp = timestamp;
  r.offset = static_cast<uint32_t>(data_.size());
  r.family_size = static_cast<uint16_t>(family.size());
  r.qualifier_size = static_cast<uint32_t>(qualifier.size());
  r.value_size = static_cast<uint32_t>(value.size());
  data_.append(family);
  data_.append(qualifier);
  data_.append(value);
  refs_.push_back(r);
}

void RowResult::Reserve(size_t cells, size_t bytes) {
  refs_.reserve(cells);
  data_.reserve(bytes);
}

void RowResult::Clear() {
  data_.clear();
  refs_.clear();
}

void RowResult::KeepNewest(size_t n) {
  if (refs_.size() <= n) return;
  // Rank by timestamp (ties: later position wins), keep the top n, then
  // restore the original order. Data bytes of dropped cells stay in the
  // buffer; the row is short-lived.
  std::vector<uint32_t> idx(refs_.size());
  std::iota(idx.begin(), idx.end(), 0);
  auto newer = [&](uint32_t a, uint32_t b) {
    if (refs_[a].timestamp != refs_[b].timestamp) return refs_[a].timestamp > refs_[b].timestamp;
    return a > b;
  };
  std::nth_element(idx.begin(), idx.begin() + n, idx.end(), newer);
  idx.resize(n);
  std::sort(idx.begin(), idx.end());
  std::vector<Ref> kept;
  kept.reserve(n);
  for (uint32_t i : idx) kept.push_back(refs_[i]);
  refs_.swap(kept);
}

std::vector<TableOptions> DefaultTables() {
  constexpr int64_t kDayMs = 24ll * 3600 * 1000;
  TableOptions users;
  users.name = "users";
  users.families.push_back(FamilyOptions{"e", 3, 60 * kDayMs, 5});
  users.families.push_back(FamilyOptions{"s", 3, 0});
  // Membership over time (docs/ARCHITECTURE.md): due times, keyed by
  // user-changes partition + due time + user; and cluster-wide metadata
  // (the script set, the backfill's cursor).
  TableOptions due;
  due.name = "due";
  due.families.push_back(FamilyOptions{"d", 1, 0});
  TableOptions meta;
  meta.name = "segmeta";
  meta.families.push_back(FamilyOptions{"m", 1, 0});
  return {users, due, meta};
}

StatusOr<std::unique_ptr<Store>> OpenStore(const StoreOptions& options) {
  switch (options.backend) {
    case StoreOptions::Backend::kEmbedded: {
      SEG_ASSIGN_OR_RETURN(auto store, internal::EmbeddedStore::Open(options.embedded));
      return std::unique_ptr<Store>(std::move(store));
    }
    case StoreOptions::Backend::kThrift:
      return internal::NewThriftStore(options.thrift);
  }
  return InvalidArgumentError("unknown store backend");
}

}  // namespace seg::store
