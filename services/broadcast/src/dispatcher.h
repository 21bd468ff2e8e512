// The durable outbox's workers. Every message is a row of `deliveries` before anything is sent;
// workers claim due rows with a lease (a crash leaves the lease to expire and the rows are
// claimed again), pass each through the gate with the customer's profile as it is now, count it
// against the frequency caps in the same transaction that hands it to a channel, send per
// channel in batches under the token buckets, and record the outcome with its event for the
// information store in one transaction: queued -> sent -> delivered, failed after a permanent
// error or the last attempt, or queued again with exponential backoff and jitter (or the
// provider's Retry-After). Between claiming and recording, a crash can make a channel send a
// message twice: such re-claims are counted (ecrm_broadcast_possible_duplicates_total) and the
// channel sees the same delivery id both times. Each transaction works on the whole batch: one
// locked re-read of its rows, one UPDATE … FROM (VALUES …) per kind of state change and one
// insert of its events, not a statement per row.
//
// Template content is rendered through personalisation (BatchRender, one call per template and
// up to 1,000 customers) after the profiles are read and before the transaction that gates the
// rows, so no transaction is held across a call to another engine. Only rows the gate would let
// through on the profile just read are rendered (the suppression list and the caps, read inside
// the transaction, can still hold one back: then its render was wasted, which is cheaper than an
// RPC inside the transaction). An unknown template or a customer personalisation cannot render
// fails the delivery with the reason; personalisation unavailable leaves it queued for
// unavailable_retry. Broadcast's placeholders ({{unsubscribe_url}}, {{preferences_url}},
// {{view_in_browser_url}}) are filled per delivery in rendered and literal content alike.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "channel.h"
#include "clients/personalisation.h"
#include "ecrm/outbox/outbox.h"
#include "ecrm/sql/sql.h"
#include "frequency_caps.h"
#include "metrics.h"
#include "profiles.h"
#include "rate_limit.h"
#include "tracking_links.h"

namespace ecrm::broadcast {

struct DispatcherOptions {
  int workers = 2;
  int batch = 100;                          // rows a worker claims at once
  absl::Duration lease = absl::Minutes(2);  // until an unfinished claim is claimed again
  absl::Duration idle_poll = absl::Milliseconds(100);
  int max_attempts = 8;  // temporary failures before a delivery fails
  absl::Duration backoff_base = absl::Seconds(10);
  absl::Duration backoff_max = absl::Hours(1);
  absl::Duration profile_timeout = absl::Seconds(2);
  absl::Duration unavailable_retry = absl::Seconds(5);  // profile unreadable: try again after this
  absl::Duration inbox_ttl = absl::Hours(24 * 90);
  std::map<common::v1::Channel, double> channel_rate;  // messages a second; absent: unlimited
  std::string preferences_url_base;                    // {{preferences_url}}: <base>?d=<delivery id>
  std::string view_in_browser_url_base;                // {{view_in_browser_url}}: <base>?d=<delivery id>
  absl::Duration render_timeout = absl::Seconds(5);    // one BatchRender call to personalisation
  // Signs the unsubscribe URL of marketing messages and the open pixel and click links of their
  // HTML (tracking_links.h); null: marketing messages carry none (SMTP refuses them).
  const TrackingLinks* links = nullptr;
};

class Dispatcher {
 public:
  using Clock = std::function<absl::Time()>;
  using Channels = std::map<common::v1::Channel, Channel*>;

  Dispatcher(
      sql::Database& db, outbox::Outbox& events, Profiles& profiles, TemplateRenderer* renderer, FrequencyCaps& caps,
      Channels channels, BroadcastMetrics& metrics, DispatcherOptions options,
      Clock clock = [] { return absl::Now(); });
  ~Dispatcher();

  // Starts options.workers threads; Stop() stops claiming and waits for the batches in flight.
  void Start();
  void Stop();
  // A new due row: workers look now rather than at their next poll.
  void Wake();

  // One claim and its processing, on the calling thread (tests, and each worker's loop). Returns
  // how many rows it claimed.
  absl::StatusOr<int> RunOnce();

  // The channels the gate may pick: those configured, and the web inbox (rows of our own).
  std::set<common::v1::Channel> available() const;

 private:
  struct Claimed;
  void Loop();
  // Renders the claimed rows' templates (those whose profile was read and which the gate would
  // let through), outside any transaction.
  void Render(std::vector<Claimed>& claimed, const std::set<common::v1::Channel>& channels, absl::Time now);
  // Waits `d` unless stopping; false when stopping.
  bool Sleep(absl::Duration d);
  absl::Duration Backoff(int attempts);
  TokenBucket* BroadcastBucket(const std::string& id, int rate);

  sql::Database& db_;
  outbox::Outbox& events_;
  Profiles& profiles_;
  TemplateRenderer* renderer_;  // null: template content fails
  FrequencyCaps& caps_;
  Channels channels_;
  BroadcastMetrics& metrics_;
  const DispatcherOptions options_;
  Clock clock_;

  std::map<common::v1::Channel, std::unique_ptr<TokenBucket>> channel_buckets_;
  std::mutex buckets_mu_;
  std::map<std::string, std::unique_ptr<TokenBucket>> broadcast_buckets_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool woken_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace ecrm::broadcast
