// Delivers the outbox to the information store, oldest first. An event leaves the outbox only
// once the information store has acknowledged it (durable there); a crash in between
// redelivers it, and the information store drops the duplicate by event id. While the
// information store is down the relay backs off exponentially. An event it refuses for good
// (bad data) is parked with the error, counted, and no longer blocks the ones behind it.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ecrm/outbox/event_sink.h"
#include "ecrm/outbox/outbox.h"

namespace ecrm::outbox {

struct RelayOptions {
  int batch_size = 500;
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(30);
  absl::Duration poll = absl::Seconds(1);  // looks again even without a notification
  // Behind a full batch the pending gauge needs a count, which reads the whole outbox: it is
  // taken at most this often, and lowered by what is delivered in between.
  absl::Duration count_every = absl::Seconds(5);
};

// What the relay records, under the engine's prefix: RelayMetrics(registry,
// "ecrm_transaction_outbox") registers ecrm_transaction_outbox_delivered_total, …_parked_total,
// …_delivery_failures_total, …_pending (exact when one batch holds everything waiting; behind
// a longer backlog counted every RelayOptions::count_every) and …_oldest_pending_age_seconds
// (the age of the oldest event waiting for delivery, 0 when none waits; parked events do not
// count: set at each scrape by OutboxRelay::RefreshAge). Build it only with a relay, so that a
// scrape never shows a pending count that nothing is delivering.
struct RelayMetrics {
  RelayMetrics(prometheus::Registry& registry, absl::string_view prefix);

  prometheus::Counter& delivered;
  prometheus::Counter& parked;
  prometheus::Counter& delivery_failures;
  prometheus::Gauge& pending;
  prometheus::Gauge& oldest_pending_age;
};

class OutboxRelay {
 public:
  OutboxRelay(Outbox& outbox, EventSink& sink, RelayOptions options, RelayMetrics& metrics)
      : outbox_(outbox), sink_(sink), options_(options), metrics_(metrics) {}
  ~OutboxRelay();  // stops

  // Starts the relay's thread.
  void Start();
  // Wakes the relay: something was committed to the outbox.
  void Notify();
  // Stops the thread, cancelling a call in flight (its events stay for the next start).
  // Idempotent.
  void Stop();

  // Delivers what is pending, on the caller's thread (the relay's loop, and tests); false when
  // the information store could not take it (back off).
  bool DeliverPending();

  // Sets the age gauge from the oldest pending event the relay last read (each pass reads the
  // outbox from its oldest event, at least every RelayOptions::poll, or every backoff while the
  // information store is down: that event stays pending meanwhile). Thread-safe; call at each
  // scrape (server::Runner::OnScrape).
  void RefreshAge(absl::Time now = absl::Now());

 private:
  void Run();

  Outbox& outbox_;
  EventSink& sink_;
  const RelayOptions options_;
  RelayMetrics& metrics_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool notified_ = false;
  bool stopping_ = false;
  std::atomic<int64_t> oldest_pending_us_{0};  // created_at of the oldest pending event; 0: none
  // The pending gauge's value, and when the outbox was last counted (DeliverPending's own).
  int64_t pending_ = 0;
  absl::Time counted_at_ = absl::InfinitePast();
  std::thread thread_;
};

}  // namespace ecrm::outbox
