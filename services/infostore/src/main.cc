// ecrm-infostore: composition root of the customer-centric information store.
#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "change_feed.h"
#include "clients/customer_data_client_grpc.h"
#include "customer_store.h"
#include "ecrm/log/log.h"
#include "ecrm/server/customer_data.h"
#include "ecrm/server/deadline.h"
#include "ecrm/server/periodic_task.h"
#include "ecrm/server/runner.h"
#include "ecrm/server/stores.h"
#include "schema.h"
#include "service.h"

int main(int argc, char** argv) {
  ecrm::server::Runner runner({.name = "ecrm-infostore",
                               .engine = "infostore",
                               .summary = "ecrm information store: the 360° customer view (identities, profiles, "
                                          "consents, events, change feed)",
                               .grpc_port = 50051,
                               .metrics_port = 9101});
  ecrm::infostore::StoreOptions options;
  std::string source_priority;
  std::string privacy_engines;
  absl::Duration feed_retention = absl::Hours(24 * 7), prune_every = absl::Minutes(1),
                 request_retention = absl::Hours(24);
  absl::Duration privacy_timeout = absl::Seconds(5);
  runner.flags().AddString("default-region", &options.default_region,
                           "region for phone numbers without a country code (ISO 3166-1, e.g. GB)");
  runner.flags().AddString("source-priority", &source_priority,
                           "profile survivorship: touchpoints by descending priority, e.g. erp,call_centre,web; "
                           "empty: the most recent non-empty value wins");
  runner.flags().AddString("privacy-engines", &privacy_engines,
                           "engines whose CustomerData ExportCustomer/EraseCustomer fan out to, as "
                           "name=host:port,… (e.g. transaction=127.0.0.1:50055)");
  runner.flags().AddDuration("feed-retention", &feed_retention,
                             "how long changes stay in the feed; older positions get OUT_OF_RANGE and must resync");
  runner.flags().AddDuration("feed-prune-interval", &prune_every,
                             "how often expired changes and request ids are deleted");
  runner.flags().AddDuration("request-retention", &request_retention,
                             "how long an UpsertCustomer request_id replays its first response");
  int64_t writer_cache_mib = options.event_writer_cache_mib;
  runner.flags().AddInt("event-writer-cache-mib", &writer_cache_mib,
                        "SQLite: page cache of the event writer's own connection, MiB (the pool's are 64)");
  runner.flags().AddDuration("privacy-timeout", &privacy_timeout, "deadline of each engine's export or erasure call");
  if (auto exit_code = runner.Start(argc, argv)) return *exit_code;
  auto peers = ecrm::infostore::ParsePrivacyPeers(privacy_engines);
  if (!peers.ok()) return runner.Fail("configuration", peers.status());
  for (absl::string_view name : absl::StrSplit(source_priority, ',', absl::SkipEmpty())) {
    ecrm::common::v1::Touchpoint t;
    if (!ecrm::common::v1::Touchpoint_Parse(absl::StrCat("TOUCHPOINT_", absl::AsciiStrToUpper(name)), &t)) {
      return runner.Fail("configuration", absl::InvalidArgumentError(absl::StrCat(
                                              "--source-priority: \"", name,
                                              "\" is not a touchpoint (web, app, call_centre, pos, erp, third_party, "
                                              "message, sales_rep)")));
    }
    options.source_priority.push_back(t);
  }
  if (writer_cache_mib < 1 || writer_cache_mib > 65536) {
    return runner.Fail("configuration",
                       absl::InvalidArgumentError("--event-writer-cache-mib must be between 1 and 65536"));
  }
  options.event_writer_cache_mib = static_cast<int>(writer_cache_mib);
  if (prune_every <= absl::ZeroDuration()) {
    return runner.Fail("configuration", absl::InvalidArgumentError("--feed-prune-interval must be positive"));
  }

  auto stores = ecrm::server::OpenStores(runner, ecrm::infostore::kMigrations, {.profile_cache = true});
  if (!stores.ok()) return runner.Fail("opening stores", stores.status());
  ecrm::server::Executor& executor = *stores->executor;
  ecrm::infostore::ChangeFeed feed(*stores->db);
  ecrm::infostore::FeedSignal feed_signal;
  feed.SetListener([&feed_signal] { feed_signal.Notify(); });
  ecrm::infostore::CustomerStore store(*stores->db, feed, stores->profiles.get(), options);
  ecrm::infostore::PrivacyFanout privacy(store, ecrm::infostore::GrpcCustomerDataClients(*peers), privacy_timeout,
                                         ecrm::server::CurrentDeadline);
  ecrm::infostore::InformationStoreService service(store, feed, executor, feed_signal, privacy);
  ecrm::server::CustomerDataService customer_data("infostore", store, executor);
  runner.AddService(&service, ecrm::infostore::v1::InformationStore::service_full_name());
  runner.AddService(&customer_data, ecrm::privacy::v1::CustomerData::service_full_name());
  runner.OnDrain([&feed_signal] { feed_signal.Drain(); });

  // Deletes expired changes in the background; stopped before the stores close (also by its
  // destructor, after a failed start that never reaches the shutdown hooks).
  ecrm::server::PeriodicTask pruner(
      "feed-pruner", prune_every,
      [&] {
        absl::StatusOr<int64_t> n = feed.Prune(absl::Now() - feed_retention);
        if (!n.ok()) {
          ecrm::log::Warn("feed pruning failed", {{"error", n.status()}});
        } else if (*n > 0) {
          ecrm::log::Info("feed pruned", {{"changes", *n}});
        }
        absl::StatusOr<int64_t> r = store.PruneRequests(absl::Now() - request_retention);
        if (!r.ok()) {
          ecrm::log::Warn("request id pruning failed", {{"error", r.status()}});
        } else if (*r > 0) {
          ecrm::log::Info("request ids pruned", {{"request_ids", *r}});
        }
      },
      &runner.metrics());
  pruner.Start();
  runner.OnShutdown([&pruner] { pruner.Stop(); });
  return runner.Serve();
}
