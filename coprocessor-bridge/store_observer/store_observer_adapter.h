// StoreObserverAdapter: plugs the bridge into the store's write-observer hook
// (store::WriteObserver), so every committed put to the watched tables — by
// seg-ingest, a tool or any other Thrift2 client of seg-store — produces
// ChangeNotices on `user-changes`. The embedded analogue of an HBase
// RegionObserver coprocessor posting to Kafka in postBatchMutate.
//
// Built as its own target (seg_bridge_store_observer) because it depends on
// both store/ and the bridge; the bridge itself never includes store/.
//
// Wiring in seg-store's main (flag --notify-kafka BOOTSTRAP):
//
//   auto observer = bridge::MakeKafkaNotifyObserver(bootstrap);
//   if (!observer.ok()) { LOG(ERROR) << observer.status(); return 2; }
//   options.embedded.observers.push_back(*observer);
//
// Thread-safety: OnCommitted may be called concurrently from every writing
// thread; it only serializes and enqueues (no network wait).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/kafka.h"
#include "coprocessor-bridge/bridge.h"
#include "store/store.h"

namespace seg::bridge {

struct StoreObserverOptions {
  // Only puts to these tables produce notices (empty = every table). The
  // default keeps segmentation-state writes to other tables quiet.
  std::vector<std::string> tables = {"users"};
  // Only puts touching these families produce notices when the store
  // reports families (RowChange::families); empty = every family.
  // Family `s` (segmentation state) must NOT notify, or each segmentation
  // would trigger another one.
  std::vector<std::string> families = {"e"};
};

class StoreObserverAdapter : public store::WriteObserver {
 public:
  // `notifier` is shared with whoever else uses it; its clock stamps
  // acked_at_ms at the moment the store reports the commit.
  StoreObserverAdapter(std::shared_ptr<ChangeNotifier> notifier, StoreObserverOptions options = {});

  void OnCommitted(const std::vector<store::RowChange>& changes) override;

  ChangeNotifier* notifier() const { return notifier_.get(); }

 private:
  std::shared_ptr<ChangeNotifier> notifier_;
  StoreObserverOptions options_;
};

// Everything `seg-store --notify-kafka` needs, from the `store.notify.*`
// keys and topics.changes:
//   store.notify: {kafka: {bootstrap_servers, client_id, properties: {..}},
//                  tables: [..], families: [..], max_pending}
// Store-side notices are on when store.notify.kafka.bootstrap_servers is set.
struct StoreNotifyConfig {
  bool enabled = false;
  kafka::KafkaOptions kafka;
  BridgeOptions bridge;
  StoreObserverOptions observer;
};
Status LoadStoreNotifyConfig(Config& config, StoreNotifyConfig* out);

// A ready observer producing to `bootstrap_servers` with default topic and
// options (what `seg-store --notify-kafka BOOTSTRAP` registers).
StatusOr<std::shared_ptr<store::WriteObserver>> MakeKafkaNotifyObserver(
    const std::string& bootstrap_servers, const BridgeOptions& bridge = {},
    const StoreObserverOptions& options = {});

// Same with full Kafka options (SASL/TLS properties, client id).
StatusOr<std::shared_ptr<store::WriteObserver>> MakeKafkaNotifyObserver(
    const kafka::KafkaOptions& kafka, const BridgeOptions& bridge = {},
    const StoreObserverOptions& options = {});

}  // namespace seg::bridge
