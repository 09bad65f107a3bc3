// Metrics: counters, gauges and histograms registered in one process-wide
// registry and served in Prometheus text format on /metrics.
//
// Handles returned by the getters live as long as the process; cache them in
// members (lookups take a lock, Inc/Observe do not). Same name + labels gives
// the same handle. Thread-safe. prometheus-cpp stays behind this header.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace seg {
class Config;
}

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
class Registry;
}  // namespace prometheus

namespace seg::metrics {

using Labels = std::map<std::string, std::string>;

class Counter {
 public:
  explicit Counter(prometheus::Counter* impl) : impl_(impl) {}
  void Inc(double value = 1.0);
  double Value() const;

 private:
  prometheus::Counter* impl_;
};

class Gauge {
 public:
  explicit Gauge(prometheus::Gauge* impl) : impl_(impl) {}
  void Set(double value);
  void Inc(double value = 1.0);
  void Dec(double value = 1.0);
  double Value() const;

 private:
  prometheus::Gauge* impl_;
};

class Histogram {
 public:
  explicit Histogram(prometheus::Histogram* impl) : impl_(impl) {}
  void Observe(double value);

 private:
  prometheus::Histogram* impl_;
};

Counter GetCounter(const std::string& name, const std::string& help, const Labels& labels = {});
Gauge GetGauge(const std::string& name, const std::string& help, const Labels& labels = {});
// `buckets` are upper bounds; empty means LatencyBucketsSeconds().
Histogram GetHistogram(const std::string& name, const std::string& help, const Labels& labels = {},
                       const std::vector<double>& buckets = {});

// 100 us .. 30 s, roughly x2.5 apart: fits store, Kafka and Redis latencies.
const std::vector<double>& LatencyBucketsSeconds();

// The registry behind the getters (for tests and the exposer).
std::shared_ptr<prometheus::Registry> DefaultRegistry();

// Renders all metrics in Prometheus text format (what /metrics serves).
std::string RenderText();

// Serves /metrics over HTTP on `bind_address` ("127.0.0.1:0" picks a free
// port). Keep the returned object alive; destroying it stops the server.
class MetricsServer {
 public:
  virtual ~MetricsServer() = default;
  virtual int port() const = 0;
};
StatusOr<std::unique_ptr<MetricsServer>> StartMetricsServer(const std::string& bind_address);

// Where a binary serves /metrics. Loopback unless configured otherwise:
// /metrics carries no authentication.
struct MetricsListenOptions {
  std::string host = "127.0.0.1";  // <prefix>.metrics_host
  int32_t port = -1;               // <prefix>.metrics_port; -1 = off, 0 = a free port

  // Reads <prefix>.metrics_host and <prefix>.metrics_port over the values
  // already set (each binary's --metrics-host/--metrics-port flags win).
  Status LoadFrom(Config& config, std::string_view prefix);
  // "host:port" as StartMetricsServer takes it (IPv6 hosts in brackets).
  std::string Address() const;
};

// StartMetricsServer(options.Address()) when options.port >= 0, else null.
StatusOr<std::unique_ptr<MetricsServer>> StartMetricsServer(const MetricsListenOptions& options);

}  // namespace seg::metrics
