// ecrm-transaction: composition root of the transaction engine.
#include <grpcpp/channel.h>

#include "carts.h"
#include "catalogue.h"
#include "clients/infostore_grpc.h"
#include "ecrm/idempotency/idempotency.h"
#include "ecrm/log/log.h"
#include "ecrm/outbox/grpc_event_sink.h"
#include "ecrm/outbox/outbox.h"
#include "ecrm/outbox/relay.h"
#include "ecrm/server/channel.h"
#include "ecrm/server/customer_data.h"
#include "ecrm/server/executor.h"
#include "ecrm/server/periodic_task.h"
#include "ecrm/server/runner.h"
#include "ecrm/server/stores.h"
#include "inquiries.h"
#include "loyalty.h"
#include "metrics.h"
#include "orders.h"
#include "privacy.h"
#include "schema.h"
#include "service.h"

namespace tx = ecrm::transaction;

int main(int argc, char** argv) {
  ecrm::server::Runner runner({.name = "ecrm-transaction",
                               .engine = "transaction",
                               .summary = "ecrm transaction: catalogue, carts, orders, loyalty and service inquiries",
                               .grpc_port = 50055,
                               .metrics_port = 9105,
                               // AddCartItem p99 at 2,000/s on SQLite: 1.5 ms with 2 workers, 1.9 with 4,
                               // 2.2 with 8 (SQLite's writes are serial: more threads only queue on its lock).
                               .sqlite_workers = 2});
  tx::LoyaltyRules rules;  // --loyalty-*
  absl::Duration abandon_after = absl::Hours(1);
  std::string infostore_address;
  absl::Duration infostore_timeout = absl::Seconds(2), scan_every = absl::Minutes(1), key_retention = absl::Hours(24);
  ecrm::config::Flags& f = runner.flags();
  f.AddString("infostore-address", &infostore_address,
              "information store (host:port) that receives purchase, refund, cart and inquiry events and resolves "
              "customers named by identifier; empty: events wait in the outbox");
  f.AddDuration("infostore-timeout", &infostore_timeout, "deadline of a customer lookup in the information store");
  ecrm::outbox::RelayOptions relay_options;
  absl::Duration outbox_timeout = absl::Seconds(10);
  f.AddDuration("outbox-timeout", &outbox_timeout,
                "deadline of each RecordEvents call that delivers the outbox to the information store");
  f.AddDuration("abandon-after", &abandon_after, "idle time after which a cart with items is abandoned");
  f.AddDuration("abandon-scan-interval", &scan_every,
                "how often idle carts are looked for (and expired idempotency keys deleted)");
  f.AddDuration("idempotency-retention", &key_retention,
                "how long an idempotency key replays its first response (at least 24h)");
  f.AddInt("loyalty-signup-bonus", &rules.signup_bonus, "points when a loyalty account opens");
  f.AddInt("loyalty-points-per-unit", &rules.points_per_unit, "points per 100 minor units paid");
  f.AddInt("loyalty-second-purchase-bonus", &rules.second_purchase_bonus, "points on a customer's 2nd order");
  f.AddInt("loyalty-third-purchase-bonus", &rules.third_purchase_bonus, "points on a customer's 3rd order");
  f.AddInt("loyalty-reactivation-bonus", &rules.reactivation_bonus,
           "points on an order after --loyalty-reactivation-after without one");
  f.AddDuration("loyalty-reactivation-after", &rules.reactivation_after, "gap that earns the reactivation bonus");
  f.AddInt("loyalty-point-value-minor", &rules.point_value_minor, "discount in minor units per point redeemed");
  f.AddString("loyalty-tier-currency", &rules.tier_currency, "currency whose 12-month spend sets the tier");
  f.AddInt("loyalty-silver-minor", &rules.silver_minor, "12-month spend (minor units) for silver");
  f.AddInt("loyalty-gold-minor", &rules.gold_minor, "12-month spend (minor units) for gold");
  f.AddInt("loyalty-platinum-minor", &rules.platinum_minor, "12-month spend (minor units) for platinum");
  if (auto exit_code = runner.Start(argc, argv)) return *exit_code;
  if (outbox_timeout <= absl::ZeroDuration()) {
    return runner.Fail("configuration", absl::InvalidArgumentError("--outbox-timeout must be positive"));
  }
  if (scan_every <= absl::ZeroDuration()) {
    return runner.Fail("configuration", absl::InvalidArgumentError("--abandon-scan-interval must be positive"));
  }
  if (key_retention < absl::Hours(24)) {
    return runner.Fail("configuration",
                       absl::InvalidArgumentError("--idempotency-retention must be at least 24h (keys are promised "
                                                  "to replay for a day)"));
  }
  if (rules.point_value_minor < 1 || rules.points_per_unit < 0 || rules.signup_bonus < 0 ||
      rules.second_purchase_bonus < 0 || rules.third_purchase_bonus < 0 || rules.reactivation_bonus < 0) {
    return runner.Fail("configuration", absl::InvalidArgumentError(
                                            "loyalty points must not be negative and a point must be worth >= 1"));
  }
  if (!(rules.silver_minor <= rules.gold_minor && rules.gold_minor <= rules.platinum_minor)) {
    return runner.Fail("configuration",
                       absl::InvalidArgumentError("tier thresholds must rise: silver <= gold <= platinum"));
  }

  auto stores = ecrm::server::OpenStores(runner, tx::kMigrations);
  if (!stores.ok()) return runner.Fail("opening stores", stores.status());
  std::unique_ptr<tx::InfostoreResolver> resolver;
  std::unique_ptr<ecrm::outbox::InfostoreEventSink> sink;
  if (!infostore_address.empty()) {
    std::shared_ptr<grpc::Channel> infostore = ecrm::server::OutboundChannel(infostore_address);
    resolver = std::make_unique<tx::InfostoreResolver>(infostore, infostore_timeout);
    sink = std::make_unique<ecrm::outbox::InfostoreEventSink>(infostore, outbox_timeout);
  }
  ecrm::server::Executor& executor = *stores->executor;
  ecrm::sql::Database& db = *stores->db;
  tx::TransactionMetrics metrics(runner.metrics());
  ecrm::idempotency::Store keys(db);
  ecrm::outbox::Outbox outbox(db);
  tx::Catalogue catalogue(db);
  tx::Carts carts(db, outbox, metrics, abandon_after);
  tx::Loyalty loyalty(db, keys, rules);
  tx::Orders orders(db, keys, carts, loyalty, outbox, resolver.get(), metrics);
  tx::Inquiries inquiries(db, keys, outbox, metrics);
  tx::CustomerData customer_data(db, carts, orders);
  // Relay metrics only with a relay, so that a scrape never shows a pending count that nothing
  // is delivering.
  std::unique_ptr<ecrm::outbox::RelayMetrics> relay_metrics;
  std::unique_ptr<ecrm::outbox::OutboxRelay> relay;
  if (sink) {
    relay_metrics = std::make_unique<ecrm::outbox::RelayMetrics>(runner.metrics(), "ecrm_transaction_outbox");
    relay = std::make_unique<ecrm::outbox::OutboxRelay>(outbox, *sink, relay_options, *relay_metrics);
    outbox.SetListener([r = relay.get()] { r->Notify(); });
    runner.OnScrape([r = relay.get()] { r->RefreshAge(); });
    relay->Start();
  }
  tx::TransactionService service(catalogue, carts, orders, loyalty, inquiries, executor);
  ecrm::server::CustomerDataService customer_data_service("transaction", customer_data, executor);
  runner.AddService(&service, tx::v1::Transaction::service_full_name());
  runner.AddService(&customer_data_service, ecrm::privacy::v1::CustomerData::service_full_name());

  // Raises cart_abandoned events and deletes expired idempotency keys in the background.
  ecrm::server::PeriodicTask scanner(
      "cart-scanner", scan_every,
      [&] {
        if (absl::StatusOr<int64_t> n = carts.ReportAbandonedCarts(); !n.ok()) {
          ecrm::log::Warn("abandoned cart scan failed", {{"error", n.status()}});
        } else if (*n > 0) {
          ecrm::log::Info("abandoned carts reported", {{"carts", *n}});
        }
        if (absl::StatusOr<int64_t> n = keys.Prune(absl::Now() - key_retention); !n.ok()) {
          ecrm::log::Warn("idempotency key pruning failed", {{"error", n.status()}});
        }
      },
      &runner.metrics());
  scanner.Start();
  // Also after a failed start, which never reaches the shutdown hooks (both are idempotent).
  auto stop_background = [&] {
    scanner.Stop();
    if (relay) relay->Stop();
  };
  runner.OnShutdown(stop_background);
  const int exit_code = runner.Serve();
  stop_background();
  return exit_code;
}
