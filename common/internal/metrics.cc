#include "common/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <mutex>

#include "common/config.h"

namespace seg::metrics {
namespace {
std::mutex& RegistryMutex() {
  static std::mutex mu;
  return mu;
}
}  // namespace

void Counter::Inc(double value) { impl_->Increment(value); }
double Counter::Value() const { return impl_->Value(); }
void Gauge::Set(double value) { impl_->Set(value); }
void Gauge::Inc(double value) { impl_->Increment(value); }
void Gauge::Dec(double value) { impl_->Decrement(value); }
double Gauge::Value() const { return impl_->Value(); }
void Histogram::Observe(double value) { impl_->Observe(value); }

std::shared_ptr<prometheus::Registry> DefaultRegistry() {
  static auto registry = std::make_shared<prometheus::Registry>();
  return registry;
}

Counter GetCounter(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  auto& family = prometheus::BuildCounter().Name(name).Help(help).Register(*DefaultRegistry());
  return Counter(&family.Add(labels));
}

Gauge GetGauge(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  auto& family = prometheus::BuildGauge().Name(name).Help(help).Register(*DefaultRegistry());
  return Gauge(&family.Add(labels));
}

Histogram GetHistogram(const std::string& name, const std::string& help, const Labels& labels,
                       const std::vector<double>& buckets) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  auto& family = prometheus::BuildHistogram().Name(name).Help(help).Register(*DefaultRegistry());
  return Histogram(&family.Add(labels, buckets.empty() ? LatencyBucketsSeconds() : buckets));
}

const std::vector<double>& LatencyBucketsSeconds() {
  static const std::vector<double> buckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                              0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                              1,      2.5,     5,      10,    30};
  return buckets;
}

std::string RenderText() {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(DefaultRegistry()->Collect());
}

namespace {
class PrometheusServer : public MetricsServer {
 public:
  explicit PrometheusServer(std::unique_ptr<prometheus::Exposer> exposer)
      : exposer_(std::move(exposer)) {}
  int port() const override {
    auto ports = exposer_->GetListeningPorts();
    return ports.empty() ? 0 : ports.front();
  }

 private:
  std::unique_ptr<prometheus::Exposer> exposer_;
};
}  // namespace

StatusOr<std::unique_ptr<MetricsServer>> StartMetricsServer(const std::string& bind_address) {
  try {
    auto exposer = std::make_unique<prometheus::Exposer>(bind_address, 2);
    exposer->RegisterCollectable(DefaultRegistry());
    return std::unique_ptr<MetricsServer>(new PrometheusServer(std::move(exposer)));
  } catch (const std::exception& e) {
    return UnavailableError("metrics server on " + bind_address + ": " + e.what());
  }
}

Status MetricsListenOptions::LoadFrom(Config& config, std::string_view prefix) {
  std::string p(prefix);
  SEG_RETURN_IF_ERROR(config.Get(p + ".metrics_host", &host));
  SEG_RETURN_IF_ERROR(config.Get(p + ".metrics_port", &port));
  if (host.empty())
    return InvalidArgumentError(config.source() + ": " + p + ".metrics_host is empty");
  if (port < -1 || port > 65535) {
    return InvalidArgumentError(config.source() + ": " + p + ".metrics_port must be -1..65535");
  }
  return Status::OK();
}

std::string MetricsListenOptions::Address() const {
  bool v6 = host.find(':') != std::string::npos && host.front() != '[';
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

StatusOr<std::unique_ptr<MetricsServer>> StartMetricsServer(const MetricsListenOptions& options) {
  if (options.port < 0) return std::unique_ptr<MetricsServer>();
  return StartMetricsServer(options.Address());
}

}  // namespace seg::metrics
