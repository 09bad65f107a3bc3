#include "coprocessor-bridge/store_observer/store_observer_adapter.h"

#include <glog/logging.h>

#include <algorithm>

#include "common/clock.h"

namespace seg::bridge {
namespace {

bool Contains(const std::vector<std::string>& list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

// Whether the change wrote a notifying family (empty list: any family).
bool TouchesFamilies(const store::RowChange& change, const std::vector<std::string>& families) {
  if (families.empty()) return true;
  for (const auto& f : change.families) {
    if (Contains(families, f)) return true;
  }
  return false;
}

}  // namespace

StoreObserverAdapter::StoreObserverAdapter(std::shared_ptr<ChangeNotifier> notifier,
                                           StoreObserverOptions options)
    : notifier_(std::move(notifier)), options_(std::move(options)) {}

void StoreObserverAdapter::OnCommitted(const std::vector<store::RowChange>& changes) {
  // Stamp before anything else: the write is already committed, so the
  // acknowledgement the client gets cannot precede this time.
  int64_t acked_at_ms = notifier_->clock()->NowMs();
  std::vector<CommittedRow> rows;
  rows.reserve(changes.size());
  for (const store::RowChange& c : changes) {
    if (!options_.tables.empty() && !Contains(options_.tables, c.table)) continue;
    if (!TouchesFamilies(c, options_.families)) continue;
    rows.push_back(CommittedRow{c.row, c.newest_timestamp, c.cell_count});
  }
  if (!rows.empty()) notifier_->Enqueue(rows, acked_at_ms);
}

Status LoadStoreNotifyConfig(Config& config, StoreNotifyConfig* out) {
  std::string bootstrap;
  SEG_RETURN_IF_ERROR(config.Get("store.notify.kafka.bootstrap_servers", &bootstrap));
  out->enabled = !bootstrap.empty();
  out->kafka.client_id = "seg-store-bridge";
  SEG_RETURN_IF_ERROR(out->kafka.LoadFrom(config, "store.notify.kafka"));
  SEG_RETURN_IF_ERROR(config.Get("topics.changes", &out->bridge.topic));
  SEG_RETURN_IF_ERROR(config.Get("store.notify.max_pending", &out->bridge.max_pending));
  SEG_RETURN_IF_ERROR(config.Get("store.notify.tables", &out->observer.tables));
  SEG_RETURN_IF_ERROR(config.Get("store.notify.families", &out->observer.families));
  if (out->bridge.topic.empty()) return InvalidArgumentError("topics.changes must not be empty");
  return Status::OK();
}

StatusOr<std::shared_ptr<store::WriteObserver>> MakeKafkaNotifyObserver(
    const kafka::KafkaOptions& kafka, const BridgeOptions& bridge,
    const StoreObserverOptions& options) {
  SEG_ASSIGN_OR_RETURN(std::unique_ptr<ChangeNotifier> notifier,
                       ChangeNotifier::Create(kafka, bridge));
  LOG(INFO) << "store-side change notices to " << kafka.bootstrap_servers << " topic "
            << bridge.topic;
  return std::shared_ptr<store::WriteObserver>(
      std::make_shared<StoreObserverAdapter>(std::move(notifier), options));
}

StatusOr<std::shared_ptr<store::WriteObserver>> MakeKafkaNotifyObserver(
    const std::string& bootstrap_servers, const BridgeOptions& bridge,
    const StoreObserverOptions& options) {
  kafka::KafkaOptions kafka;
  kafka.bootstrap_servers = bootstrap_servers;
  kafka.client_id = "seg-store-bridge";
  return MakeKafkaNotifyObserver(kafka, bridge, options);
}

}  // namespace seg::bridge
