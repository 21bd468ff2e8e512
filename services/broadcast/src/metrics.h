// The broadcast engine's metrics: every family and series is registered once, here, from the
// registry it is given; the code then only moves the values.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <string>

#include "ecrm/broadcast/v1/broadcast.pb.h"
#include "ecrm/common/v1/common.pb.h"

namespace ecrm::broadcast {

struct BroadcastMetrics {
  explicit BroadcastMetrics(prometheus::Registry& registry)
      : deliveries_family(prometheus::BuildCounter()
                              .Name("ecrm_broadcast_deliveries_total")
                              .Help("Deliveries that reached a state, by channel and state")
                              .Register(registry)),
        suppressed_family(prometheus::BuildCounter()
                              .Name("ecrm_broadcast_suppressed_total")
                              .Help("Messages held back by the send-time gate, by suppression reason")
                              .Register(registry)),
        latency_family(prometheus::BuildHistogram()
                           .Name("ecrm_broadcast_send_seconds")
                           .Help("Time a channel took to send one batch")
                           .Register(registry)),
        duplicates(prometheus::BuildCounter()
                       .Name("ecrm_broadcast_possible_duplicates_total")
                       .Help("Deliveries claimed again after a worker lost them while handed to a channel (a "
                             "crash or an expired lease): the channel may have sent them once already")
                       .Register(registry)
                       .Add({})),
        retries(prometheus::BuildCounter()
                    .Name("ecrm_broadcast_retries_total")
                    .Help("Temporary send failures scheduled for another attempt")
                    .Register(registry)
                    .Add({})) {
    for (int ch = common::v1::Channel_MIN; ch <= common::v1::Channel_MAX; ++ch) {
      const std::string channel = Lower(common::v1::Channel_Name(ch), "CHANNEL_");
      for (int st = v1::DeliveryState_MIN + 1; st <= v1::DeliveryState_MAX; ++st) {
        deliveries_[{ch, st}] = &deliveries_family.Add(
            {{"channel", channel}, {"state", Lower(v1::DeliveryState_Name(st), "DELIVERY_STATE_")}});
      }
      latency_[ch] = &latency_family.Add({{"channel", channel}}, prometheus::Histogram::BucketBoundaries{
                                                                     0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30});
    }
    for (int r = v1::SuppressionReason_MIN + 1; r <= v1::SuppressionReason_MAX; ++r) {
      suppressed_[r] =
          &suppressed_family.Add({{"reason", Lower(v1::SuppressionReason_Name(r), "SUPPRESSION_REASON_")}});
    }
  }

  void Delivery(common::v1::Channel channel, v1::DeliveryState state) {
    auto it = deliveries_.find({channel, state});
    if (it != deliveries_.end()) it->second->Increment();
  }
  void Suppressed(v1::SuppressionReason reason) {
    auto it = suppressed_.find(reason);
    if (it != suppressed_.end()) it->second->Increment();
  }
  void SendLatency(common::v1::Channel channel, double seconds) {
    auto it = latency_.find(channel);
    if (it != latency_.end()) it->second->Observe(seconds);
  }

  prometheus::Family<prometheus::Counter>& deliveries_family;
  prometheus::Family<prometheus::Counter>& suppressed_family;
  prometheus::Family<prometheus::Histogram>& latency_family;
  prometheus::Counter& duplicates;
  prometheus::Counter& retries;

 private:
  static std::string Lower(const std::string& name, const std::string& prefix) {
    std::string out = name.substr(name.rfind(prefix, 0) == 0 ? prefix.size() : 0);
    for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return out;
  }
  std::map<std::pair<int, int>, prometheus::Counter*> deliveries_;
  std::map<int, prometheus::Histogram*> latency_;
  std::map<int, prometheus::Counter*> suppressed_;
};

// The HTTP endpoints (http_server.h): requests by endpoint (open, click, unsubscribe_page,
// unsubscribe, provider_webhook, dsn, other) and status code, and their latency.
struct HttpMetrics {
  explicit HttpMetrics(prometheus::Registry& registry)
      : requests(prometheus::BuildCounter()
                     .Name("ecrm_broadcast_http_requests_total")
                     .Help("Requests to the tracking, unsubscribe and provider endpoints, by endpoint and status code")
                     .Register(registry)),
        latency(prometheus::BuildHistogram()
                    .Name("ecrm_broadcast_http_request_seconds")
                    .Help("Time from a request's arrival to its answer, by endpoint")
                    .Register(registry)) {}

  void Request(const std::string& endpoint, int status, double seconds) {
    requests.Add({{"endpoint", endpoint}, {"code", std::to_string(status)}}).Increment();
    latency
        .Add({{"endpoint", endpoint}},
             prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5})
        .Observe(seconds);
  }

  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Histogram>& latency;
};

}  // namespace ecrm::broadcast
