#include "ecrm/outbox/relay.h"

#include <pthread.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "ecrm/log/log.h"

namespace ecrm::outbox {

namespace {

// The information store refused the data itself: retrying the same events cannot help.
bool Permanent(absl::StatusCode code) {
  return code == absl::StatusCode::kInvalidArgument || code == absl::StatusCode::kNotFound ||
         code == absl::StatusCode::kFailedPrecondition || code == absl::StatusCode::kOutOfRange;
}

}  // namespace

RelayMetrics::RelayMetrics(prometheus::Registry& registry, absl::string_view prefix)
    : delivered(prometheus::BuildCounter()
                    .Name(absl::StrCat(prefix, "_delivered_total"))
                    .Help("Outbox events acknowledged by the information store")
                    .Register(registry)
                    .Add({})),
      parked(prometheus::BuildCounter()
                 .Name(absl::StrCat(prefix, "_parked_total"))
                 .Help("Outbox events the information store refused for good; kept in the outbox with the error")
                 .Register(registry)
                 .Add({})),
      delivery_failures(prometheus::BuildCounter()
                            .Name(absl::StrCat(prefix, "_delivery_failures_total"))
                            .Help("RecordEvents calls to the information store that failed and were retried")
                            .Register(registry)
                            .Add({})),
      pending(prometheus::BuildGauge()
                  .Name(absl::StrCat(prefix, "_pending"))
                  .Help("Outbox events waiting for delivery")
                  .Register(registry)
                  .Add({})),
      oldest_pending_age(prometheus::BuildGauge()
                             .Name(absl::StrCat(prefix, "_oldest_pending_age_seconds"))
                             .Help("Age of the oldest outbox event waiting for delivery (0 when none waits)")
                             .Register(registry)
                             .Add({})) {}

OutboxRelay::~OutboxRelay() { Stop(); }

void OutboxRelay::Start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "outbox-relay");
    Run();
  });
}

void OutboxRelay::Notify() {
  {
    std::lock_guard lock(mu_);
    notified_ = true;
  }
  cv_.notify_all();
}

void OutboxRelay::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  // A call waiting for an unreachable information store would hold shutdown for its whole
  // deadline; its events stay in the outbox for the next start.
  sink_.Cancel();
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool OutboxRelay::DeliverPending() {
  while (true) {
    absl::StatusOr<std::vector<OutboxEvent>> events = outbox_.PendingEvents(options_.batch_size);
    if (!events.ok()) {
      log::Warn("outbox read failed", {{"error", events.status()}});
      return false;
    }
    // A short batch is everything pending; only a full one needs a count. Counting reads the
    // whole outbox, so a count per batch would cost the square of a backlog: it is taken now and
    // then, and lowered by what is delivered in between.
    const absl::Time now = absl::Now();
    if (events->size() < static_cast<size_t>(options_.batch_size)) {
      pending_ = static_cast<int64_t>(events->size());
    } else if (now - counted_at_ >= options_.count_every) {
      if (absl::StatusOr<int64_t> n = outbox_.PendingCount(); n.ok()) {
        pending_ = *n;
        counted_at_ = now;
      }
    }
    pending_ = std::max(pending_, static_cast<int64_t>(events->size()));
    metrics_.pending.Set(static_cast<double>(pending_));
    oldest_pending_us_.store(events->empty() ? 0 : events->front().created_at_us);
    if (events->empty()) return true;
    absl::Status s = sink_.Record(*events);
    if (!s.ok() && Permanent(s.code())) {
      // Find the event at fault: deliver one at a time, parking what is refused.
      for (const OutboxEvent& event : *events) {
        absl::Status one = sink_.Record({&event, 1});
        if (one.ok()) {
          if (!outbox_.MarkDelivered({event.seq}).ok()) return false;
          metrics_.delivered.Increment();
          --pending_;
        } else if (Permanent(one.code())) {
          log::Error("outbox event refused by the information store; parked",
                     {{"event_id", event.event.event_id()}, {"error", one.message()}});
          if (!outbox_.MarkFailed(event.seq, one.message()).ok()) return false;
          metrics_.parked.Increment();
          --pending_;
        } else {
          metrics_.delivery_failures.Increment();
          return false;
        }
      }
      continue;
    }
    if (!s.ok()) {
      metrics_.delivery_failures.Increment();
      log::Warn("outbox delivery failed; backing off", {{"code", static_cast<int>(s.code())}, {"error", s.message()}});
      return false;
    }
    std::vector<int64_t> seqs;
    for (const OutboxEvent& e : *events) seqs.push_back(e.seq);
    if (absl::Status done = outbox_.MarkDelivered(seqs); !done.ok()) {
      log::Warn("outbox: marking delivered events failed (they will be sent again)", {{"error", done}});
      return false;
    }
    metrics_.delivered.Increment(static_cast<double>(seqs.size()));
    pending_ -= static_cast<int64_t>(seqs.size());
  }
}

void OutboxRelay::RefreshAge(absl::Time now) {
  const int64_t oldest = oldest_pending_us_.load();
  metrics_.oldest_pending_age.Set(
      oldest == 0 ? 0.0 : std::max(0.0, absl::ToDoubleSeconds(now - absl::FromUnixMicros(oldest))));
}

void OutboxRelay::Run() {
  absl::Duration backoff = options_.min_backoff;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    notified_ = false;
    lock.unlock();
    const bool ok = DeliverPending();
    lock.lock();
    absl::Duration wait = options_.poll;
    if (ok) {
      backoff = options_.min_backoff;
    } else {
      wait = backoff;
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
    // After a failure only the backoff (or stopping) ends the wait, not new events.
    cv_.wait_for(lock, absl::ToChronoNanoseconds(wait), [&] { return stopping_ || (ok && notified_); });
  }
}

}  // namespace ecrm::outbox
