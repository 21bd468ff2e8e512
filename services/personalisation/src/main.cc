// ecrm-personalisation: composition root of the personalisation engine.
#include "catalogue.h"
#include "clients/catalogue_grpc.h"
#include "clients/infostore_grpc.h"
#include "clients/segmentation_grpc.h"
#include "customers.h"
#include "ecrm/feed/infostore_grpc.h"
#include "ecrm/log/log.h"
#include "ecrm/server/channel.h"
#include "ecrm/server/customer_data.h"
#include "ecrm/server/periodic_task.h"
#include "ecrm/server/runner.h"
#include "ecrm/server/stores.h"
#include "messages.h"
#include "metrics.h"
#include "offers.h"
#include "privacy.h"
#include "recommendation_feed.h"
#include "recommendations.h"
#include "recommender.h"
#include "schema.h"
#include "service.h"
#include "templates.h"

int main(int argc, char** argv) {
  ecrm::server::Runner runner(
      {.name = "ecrm-personalisation",
       .engine = "personalisation",
       .summary = "ecrm personalisation: next-best offers, recommendations and message templates",
       .grpc_port = 50053,
       .metrics_port = 9103});
  std::string infostore_address;
  absl::Duration infostore_timeout = absl::Seconds(2);
  ecrm::config::Flags& f = runner.flags();
  f.AddString("infostore-address", &infostore_address,
              "information store (host:port) that customers missing from the profile cache are read from; empty: "
              "only cached customers can be rendered");
  f.AddDuration("infostore-timeout", &infostore_timeout,
                "deadline of each read from the information store (never later than the caller's)");
  std::string transaction_address;
  absl::Duration catalogue_refresh = absl::Seconds(60);
  f.AddString("transaction-address", &transaction_address,
              "transaction engine (host:port) whose catalogue (active flag, title, price, category) describes and "
              "filters recommendations; empty: every product may be recommended, undescribed");
  f.AddDuration("catalogue-refresh", &catalogue_refresh,
                "how often the catalogue is read again from the transaction engine (how stale a product's active "
                "flag, title and price may be)");
  std::string segmentation_address;
  absl::Duration segmentation_timeout = absl::Seconds(1);
  f.AddString("segmentation-address", &segmentation_address,
              "segmentation (host:port) that offers restricted to segments read a customer's segments from; empty: "
              "offers cannot name segments");
  f.AddDuration("segmentation-timeout", &segmentation_timeout,
                "deadline of each read from segmentation (never later than the caller's)");
  if (auto exit_code = runner.Start(argc, argv)) return *exit_code;
  if (segmentation_timeout <= absl::ZeroDuration()) {
    return runner.Fail("configuration", absl::InvalidArgumentError("--segmentation-timeout must be positive"));
  }
  if (infostore_timeout <= absl::ZeroDuration()) {
    return runner.Fail("configuration", absl::InvalidArgumentError("--infostore-timeout must be positive"));
  }
  if (catalogue_refresh <= absl::ZeroDuration()) {
    return runner.Fail("configuration", absl::InvalidArgumentError("--catalogue-refresh must be positive"));
  }

  auto stores = ecrm::server::OpenStores(runner, ecrm::personalisation::kMigrations, {.profile_cache = true});
  if (!stores.ok()) return runner.Fail("opening stores", stores.status());
  ecrm::personalisation::PersonalisationMetrics metrics(runner.metrics());
  std::unique_ptr<ecrm::personalisation::GrpcCustomerDirectory> directory;
  if (!infostore_address.empty()) {
    directory = std::make_unique<ecrm::personalisation::GrpcCustomerDirectory>(
        ecrm::server::OutboundChannel(infostore_address), infostore_timeout);
  } else {
    ecrm::log::Warn("no --infostore-address: only customers in the profile cache can be rendered", {});
  }
  ecrm::personalisation::Customers customers(stores->profiles.get(), directory.get(), metrics);
  ecrm::personalisation::Templates templates(*stores->db, metrics);
  ecrm::personalisation::Messages messages(templates, customers, metrics);
  std::unique_ptr<ecrm::personalisation::GrpcSegmentDirectory> segment_directory;
  if (!segmentation_address.empty()) {
    segment_directory = std::make_unique<ecrm::personalisation::GrpcSegmentDirectory>(
        ecrm::server::OutboundChannel(segmentation_address), segmentation_timeout);
  }
  ecrm::personalisation::Offers offers(*stores->db, customers, segment_directory.get());
  messages.set_offers(&offers);

  // The recommendation model: learnt from the information store's change feed, its products
  // described by the transaction engine's catalogue (docs/personalisation-recommendations.md).
  ecrm::personalisation::Recommender model;
  std::unique_ptr<ecrm::personalisation::GrpcCatalogueSource> catalogue_source;
  if (!transaction_address.empty()) {
    catalogue_source = std::make_unique<ecrm::personalisation::GrpcCatalogueSource>(
        ecrm::server::OutboundChannel(transaction_address), infostore_timeout);
  } else {
    ecrm::log::Warn("no --transaction-address: recommendations are not filtered by the catalogue's active flag", {});
  }
  ecrm::personalisation::Catalogue catalogue(catalogue_source.get(), &model);
  if (absl::Status s = catalogue.Refresh(); !s.ok()) {
    ecrm::log::Warn("the catalogue could not be read yet; reading it again every --catalogue-refresh", {{"error", s}});
  }
  std::unique_ptr<ecrm::feed::GrpcInformationStore> change_feed;
  std::unique_ptr<ecrm::personalisation::RecommendationFeed> reco_feed;
  if (!infostore_address.empty()) {
    change_feed = std::make_unique<ecrm::feed::GrpcInformationStore>(ecrm::server::OutboundChannel(infostore_address),
                                                                     infostore_timeout);
    reco_feed =
        std::make_unique<ecrm::personalisation::RecommendationFeed>(*stores->db, model, *change_feed, &catalogue);
    if (absl::Status s = reco_feed->Load(); !s.ok()) return runner.Fail("loading the recommendation model", s);
  }
  ecrm::personalisation::Recommendations recommendations(model, catalogue, reco_feed.get());
  messages.SetRecommendations(&recommendations);
  ecrm::server::PeriodicTask catalogue_refresher(
      "catalogue", catalogue_refresh,
      [&] {
        if (absl::Status s = catalogue.Refresh(); !s.ok()) {
          ecrm::log::Warn("reading the catalogue failed; the previous copy stays in use",
                          {{"error", s}, {"refreshed_at", absl::FormatTime(catalogue.refreshed_at())}});
        }
      },
      &runner.metrics());

  ecrm::server::Executor& executor = *stores->executor;
  ecrm::personalisation::PersonalisationService service(templates, messages, offers, executor, recommendations);
  ecrm::personalisation::PersonalisationPrivacy privacy(&offers);
  privacy.SetRecommendationFeed(reco_feed.get());
  ecrm::server::CustomerDataService customer_data("personalisation", privacy, executor);
  runner.AddService(&service, ecrm::personalisation::v1::Personalisation::service_full_name());
  runner.AddService(&customer_data, ecrm::privacy::v1::CustomerData::service_full_name());
  if (catalogue_source) catalogue_refresher.Start();
  if (reco_feed) reco_feed->Start();
  runner.OnShutdown([&] {
    catalogue_refresher.Stop();
    if (reco_feed) reco_feed->Stop();
  });
  return runner.Serve();
}
