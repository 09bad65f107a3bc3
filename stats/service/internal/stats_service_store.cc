// UserStateLookup over the wide-row store: the newest cell of family `s`,
// qualifier `m` of the user's row, a SegmentState proto (segmenter layout).
#include "stats/service/stats_service.h"
#include "store/store.h"

namespace seg::stats {
namespace {

class StoreUserStateLookup final : public UserStateLookup {
 public:
  StoreUserStateLookup(store::Store* store, std::string table, std::string family,
                       std::string qualifier)
      : store_(store),
        table_(std::move(table)),
        family_(std::move(family)),
        qualifier_(std::move(qualifier)) {}

  StatusOr<SegmentState> Lookup(std::string_view user_id) override {
    if (user_id.empty()) return InvalidArgumentError("user_id is required");
    store::GetRequest get;
    get.row = std::string(user_id);
    get.families = {family_};
    get.qualifiers = {qualifier_};
    auto row = store_->Get(table_, get);
    if (!row.ok()) {
      const Status& s = row.status();
      if (s.code() == StatusCode::kInvalidArgument) return s;
      return UnavailableError("store: " + std::string(s.message()));
    }
    if (row->empty()) {
      return NotFoundError("user '" + std::string(user_id) + "' has no segmentation state");
    }
    store::CellView newest = row->cell(0);
    for (const auto& cell : *row) {
      if (cell.timestamp > newest.timestamp) newest = cell;
    }
    SegmentState state;
    if (!state.ParseFromArray(newest.value.data(), static_cast<int>(newest.value.size()))) {
      return DataLossError("user '" + std::string(user_id) + "': state cell " + family_ + ":" +
                           qualifier_ + " is not a SegmentState");
    }
    return state;
  }

 private:
  store::Store* store_;
  std::string table_, family_, qualifier_;
};

}  // namespace

std::unique_ptr<UserStateLookup> NewStoreUserStateLookup(store::Store* store, std::string table,
                                                         std::string family,
                                                         std::string qualifier) {
  return std::make_unique<StoreUserStateLookup>(store, std::move(table), std::move(family),
                                                std::move(qualifier));
}

}  // namespace seg::stats
