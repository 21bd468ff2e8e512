// ecrm-segmentation: composition root of the analysis and segmentation engine.
#include <fstream>

#include "absl/strings/strip.h"
#include "campaigns.h"
#include "clients/broadcast_grpc.h"
#include "customer_features.h"
#include "ecrm/feed/infostore_grpc.h"
#include "ecrm/log/log.h"
#include "ecrm/outbox/grpc_event_sink.h"
#include "ecrm/outbox/outbox.h"
#include "ecrm/outbox/relay.h"
#include "ecrm/server/channel.h"
#include "ecrm/server/customer_data.h"
#include "ecrm/server/periodic_task.h"
#include "ecrm/server/runner.h"
#include "ecrm/server/stores.h"
#include "feed.h"
#include "metrics.h"
#include "privacy.h"
#include "schema.h"
#include "scores.h"
#include "segments.h"
#include "service.h"

namespace {

// The time rules are evaluated at: the system clock, or for tests the RFC 3339 instant written
// in --clock-file (read at every use, so a test moves time by rewriting the file).
ecrm::segmentation::Segments::Clock MakeClock(const std::string& clock_file) {
  if (clock_file.empty()) return [] { return absl::Now(); };
  return [clock_file] {
    std::ifstream in(clock_file);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    absl::Time t;
    std::string error;
    if (!absl::ParseTime(absl::RFC3339_full, absl::StripAsciiWhitespace(text), &t, &error)) return absl::Now();
    return t;
  };
}

}  // namespace

int main(int argc, char** argv) {
  ecrm::server::Runner runner(
      {.name = "ecrm-segmentation",
       .engine = "segmentation",
       .summary = "ecrm segmentation: rule-based segments, RFM and scores, campaigns and their reports",
       .grpc_port = 50052,
       .metrics_port = 9102});
  std::string infostore_address, broadcast_address, clock_file, partition_flag;
  absl::Duration infostore_timeout = absl::Seconds(5), tick_every = absl::Seconds(1), scores_every = absl::Hours(1);
  absl::Duration save_interval = ecrm::segmentation::FeedOptions().save_interval;
  ecrm::segmentation::FeatureOptions feature_options;
  ecrm::config::Flags& f = runner.flags();
  f.AddString("infostore-address", &infostore_address,
              "information store (host:port) whose change feed segmentation follows; empty: no customers");
  f.AddString("broadcast-address", &broadcast_address,
              "broadcast engine (host:port) that campaigns hand their treatment groups to; empty: launching is "
              "refused");
  f.AddDuration("infostore-timeout", &infostore_timeout,
                "deadline of each listing call to the information store (resync, events after an unmerge)");
  f.AddDuration("event-horizon", &feature_options.event_horizon,
                "how far back events are counted by day; rule windows reach back this far at most");
  f.AddString("reporting-currency", &feature_options.reporting_currency,
              "currency of orders.total (ISO 4217); empty: the first currency seen");
  f.AddDuration("save-interval", &save_interval,
                "under load, the feed's changes are saved in one transaction at most this often (segment entries and "
                "exits are published when saved; queries see changes at once); 0: a transaction as soon as the last "
                "one ends (as before this flag)");
  f.AddDuration("time-check-interval", &tick_every,
                "how often customers whose time-relative rules may have changed are evaluated again");
  f.AddDuration("scores-interval", &scores_every,
                "how often RFM, engagement and lifetime value are computed again over the population (the models "
                "refitted); the first run comes after this or 10s, whichever is sooner");
  f.AddString("partition", &partition_flag,
              "i/n: keep only the customers whose id hashes to i of n (FNV-1a 64 mod n), one replica per partition, "
              "each with a database of its own; empty: every customer");
  f.AddString("clock-file", &clock_file,
              "testing only: evaluate rules at the RFC 3339 time written in this file instead of now");
  if (auto exit_code = runner.Start(argc, argv)) return *exit_code;
  if (tick_every <= absl::ZeroDuration() || scores_every <= absl::ZeroDuration() ||
      feature_options.event_horizon < absl::Hours(24) || save_interval < absl::ZeroDuration()) {
    return runner.Fail("configuration",
                       absl::InvalidArgumentError("--time-check-interval and --scores-interval must be positive, "
                                                  "--event-horizon at least 24h and --save-interval not negative"));
  }

  absl::StatusOr<ecrm::segmentation::Partition> partition = ecrm::segmentation::Partition::Parse(partition_flag);
  if (!partition.ok()) return runner.Fail("configuration", partition.status());

  auto stores = ecrm::server::OpenStores(runner, ecrm::segmentation::kMigrations);
  if (!stores.ok()) return runner.Fail("opening stores", stores.status());
  ecrm::segmentation::SegmentationMetrics metrics(runner.metrics());
  ecrm::segmentation::Features features(feature_options);
  ecrm::segmentation::Segments segments(*stores->db, features, MakeClock(clock_file));
  ecrm::segmentation::Scores scores(features, MakeClock(clock_file));
  std::unique_ptr<ecrm::segmentation::InformationStore> infostore;
  // Segment entries and exits, relayed to the information store as segment_entered /
  // segment_exited events.
  ecrm::outbox::Outbox outbox(*stores->db);
  std::unique_ptr<ecrm::outbox::InfostoreEventSink> sink;
  std::unique_ptr<ecrm::outbox::RelayMetrics> relay_metrics;
  std::unique_ptr<ecrm::outbox::OutboxRelay> relay;
  if (!infostore_address.empty()) {
    std::shared_ptr<grpc::Channel> channel = ecrm::server::OutboundChannel(infostore_address);
    infostore = std::make_unique<ecrm::feed::GrpcInformationStore>(channel, infostore_timeout);
    sink = std::make_unique<ecrm::outbox::InfostoreEventSink>(channel, infostore_timeout);
    relay_metrics = std::make_unique<ecrm::outbox::RelayMetrics>(runner.metrics(), "ecrm_segmentation_outbox");
    relay = std::make_unique<ecrm::outbox::OutboxRelay>(outbox, *sink, ecrm::outbox::RelayOptions{}, *relay_metrics);
    outbox.SetListener([r = relay.get()] { r->Notify(); });
    runner.OnScrape([r = relay.get()] { r->RefreshAge(); });
  } else {
    ecrm::log::Warn("no --infostore-address: segments are evaluated over no customers", {});
  }
  std::unique_ptr<ecrm::segmentation::FeedConsumer> feed;
  if (infostore) {
    feed = std::make_unique<ecrm::segmentation::FeedConsumer>(
        *stores->db, features, segments, *infostore, outbox, metrics,
        ecrm::segmentation::FeedOptions{
            .event_horizon = feature_options.event_horizon, .save_interval = save_interval, .partition = *partition});
    if (absl::Status s = feed->Load(); !s.ok()) return runner.Fail("loading saved features", s);
    if (absl::Status s = feed->LoadScores(scores); !s.ok()) return runner.Fail("loading saved scores", s);
    runner.OnScrape([f = feed.get()] { f->RefreshLag(); });
  }
  // Against the members saved: who entered or left while the engine was down (published below).
  std::vector<ecrm::segmentation::MembershipChange> restored;
  if (absl::Status s = segments.Load(&restored, feed ? feed->saved_at() : absl::InfinitePast()); !s.ok()) {
    return runner.Fail("loading segments", s);
  }
  runner.OnScrape([&metrics, &segments] {
    if (auto sizes = segments.Sizes()) metrics.SetSegmentSizes(*sizes);  // else the last ones stay
  });

  ecrm::server::Executor& executor = *stores->executor;
  std::unique_ptr<ecrm::segmentation::GrpcBroadcaster> broadcaster;
  if (!broadcast_address.empty()) {
    broadcaster = std::make_unique<ecrm::segmentation::GrpcBroadcaster>(
        ecrm::server::OutboundChannel(broadcast_address), infostore_timeout);
  }
  ecrm::segmentation::Campaigns campaigns(*stores->db, segments, features, broadcaster.get(), MakeClock(clock_file),
                                          *partition);
  if (absl::Status s = campaigns.Load(); !s.ok()) return runner.Fail("loading campaigns", s);
  if (feed) {
    feed->SetCampaigns(&campaigns);
    // Kept staged if the database refuses: the saver writes it with the next batch.
    if (absl::Status s = feed->PublishRestored(restored); !s.ok()) {
      ecrm::log::Warn("memberships changed while down not saved yet", {{"error", s}});
    }
  }
  ecrm::segmentation::SegmentationService service(segments, campaigns, scores, executor);
  ecrm::segmentation::SegmentationPrivacy privacy(*stores->db, features, segments, scores, feed.get());
  ecrm::server::CustomerDataService customer_data("segmentation", privacy, executor);
  runner.AddService(&service, ecrm::segmentation::v1::Segmentation::service_full_name());
  runner.AddService(&customer_data, ecrm::privacy::v1::CustomerData::service_full_name());

  // Customers leave (or enter) time-relative segments as time passes, with no new data.
  ecrm::server::PeriodicTask ticker(
      "segment-clock", tick_every,
      [&] {
        if (!feed) return;
        if (absl::Status s = feed->Tick(); !s.ok()) {
          ecrm::log::Warn("time-relative segment evaluation failed", {{"error", s}});
        }
      },
      &runner.metrics());
  // Scores over the population, refitted in the background (and soon after a start: the saved
  // ones are the last refit's).
  ecrm::server::PeriodicTask scorer(
      "scores", scores_every,
      [&] {
        if (!feed) return;
        if (absl::Status s = feed->ApplyScores(scores); !s.ok()) {
          ecrm::log::Warn("scores computed but their segment entries and exits not saved", {{"error", s}});
        }
      },
      &runner.metrics());
  // Event days past the horizon leave memory (windows never reach them).
  ecrm::server::PeriodicTask pruner(
      "event-pruning", absl::Hours(6),
      [&] {
        if (feed) feed->PruneEvents(MakeClock(clock_file)());
      },
      &runner.metrics());
  // Triggered campaigns' messages, handed to broadcast as soon as entries are saved (and retried
  // every few seconds while broadcast cannot be reached).
  ecrm::server::PeriodicTask sender(
      "campaign-sends", absl::Seconds(5),
      [&] {
        absl::StatusOr<ecrm::segmentation::TriggeredSends> sent = campaigns.SendTriggered();
        if (!sent.ok()) {
          metrics.triggered_failures.Increment();
          ecrm::log::Warn("triggered campaign messages not handed to broadcast yet", {{"error", sent.status()}});
          return;
        }
        metrics.triggered_handed_over.Increment(static_cast<double>(sent->handed_over));
        metrics.triggered_refused.Increment(static_cast<double>(sent->refused));
        metrics.triggered_dropped.Increment(static_cast<double>(sent->dropped));
        if (sent->handed_over > 0) {
          ecrm::log::Info("triggered campaign messages handed to broadcast", {{"customers", sent->handed_over}});
        }
      },
      &runner.metrics());
  campaigns.SetOnEntries([&sender] { sender.Wake(); });
  if (feed) feed->Start();
  if (relay) relay->Start();
  ticker.Start();
  pruner.Start();
  if (broadcaster) sender.Start(absl::ZeroDuration());
  scorer.Start(std::min(scores_every, absl::Seconds(10)));
  runner.OnShutdown([&] {
    sender.Stop();
    pruner.Stop();
    scorer.Stop();
    ticker.Stop();
    if (feed) feed->Stop();
    if (relay) relay->Stop();
  });
  return runner.Serve();
}
