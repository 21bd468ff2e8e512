// Standard process_* metrics (CPU, memory, file descriptors, start time) read from /proc at
// scrape time, plus ecrm_build_info.
#pragma once

#include <prometheus/collectable.h>

#include <string>

namespace ecrm::server {

class ProcessMetrics final : public prometheus::Collectable {
 public:
  ProcessMetrics(std::string service, std::string version);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::string service_;
  std::string version_;
};

}  // namespace ecrm::server
