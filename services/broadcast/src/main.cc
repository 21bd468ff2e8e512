// ecrm-broadcast: composition root of the broadcast engine.
#include <grpcpp/channel.h>

#include <cstdlib>
#include <fstream>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "broadcasts.h"
#include "channels/channels_config.h"
#include "clients/infostore_grpc.h"
#include "clients/personalisation_grpc.h"
#include "clients/segmentation_grpc.h"
#include "deliveries.h"
#include "delivery_backlog.h"
#include "dispatcher.h"
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
#include "frequency_caps.h"
#include "http_server.h"
#include "metrics.h"
#include "privacy.h"
#include "profiles.h"
#include "schema.h"
#include "service.h"
#include "suppressions.h"
#include "tracking_endpoints.h"
#include "tracking_links.h"

namespace bc = ecrm::broadcast;

namespace {

// "email=100,sms=10": messages a second per channel.
absl::StatusOr<std::map<ecrm::common::v1::Channel, double>> ParseRates(absl::string_view spec) {
  std::map<ecrm::common::v1::Channel, double> out;
  for (absl::string_view entry : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(entry, absl::MaxSplits('=', 1));
    ecrm::common::v1::Channel ch;
    double rate = 0;
    for (char& c : kv.first) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (!ecrm::common::v1::Channel_Parse("CHANNEL_" + kv.first, &ch) || !absl::SimpleAtod(kv.second, &rate) ||
        rate <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--channel-rates: \"", entry, "\" is not <channel>=<messages a second, > 0>"));
    }
    out[ch] = rate;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  ecrm::server::Runner runner(
      {.name = "ecrm-broadcast",
       .engine = "broadcast",
       .summary = "ecrm broadcast: delivery over email, SMS, push and web inbox with consent and caps",
       .grpc_port = 50054,
       .metrics_port = 9104,
       .sqlite_workers = 2,
       .max_message_bytes = 64 << 20});  // CreateBroadcast lists up to 1,000,000 customer ids
  std::string infostore_address, personalisation_address, segmentation_address, caps_spec,
      exempt_spec = "transactional,service", rates_spec;
  absl::Duration infostore_timeout = absl::Seconds(2), outbox_timeout = absl::Seconds(10);
  absl::Duration segmentation_timeout = absl::Minutes(5);
  absl::Duration key_retention = absl::Hours(24), prune_every = absl::Minutes(10);
  bc::DispatcherOptions dispatch;
  int64_t workers = dispatch.workers, batch = dispatch.batch, max_attempts = dispatch.max_attempts;
  ecrm::config::Flags& f = runner.flags();
  f.AddString("infostore-address", &infostore_address,
              "information store (host:port): profiles on a cache miss, and the receiver of message_* events; "
              "empty: only cached profiles, events wait in the outbox");
  f.AddDuration("infostore-timeout", &infostore_timeout, "deadline of a profile read from the information store");
  f.AddDuration("outbox-timeout", &outbox_timeout, "deadline of each RecordEvents call that relays message events");
  f.AddString("personalisation-address", &personalisation_address,
              "personalisation engine (host:port) that renders template_id content (BatchRender); empty: template "
              "deliveries fail");
  f.AddDuration("personalisation-timeout", &dispatch.render_timeout,
                "deadline of one BatchRender call (up to 1,000 customers)");
  f.AddString("segmentation-address", &segmentation_address,
              "segmentation engine (host:port) that resolves CreateBroadcast's segment_id (StreamSegmentMembers); "
              "empty: segment_id is refused");
  f.AddDuration("segmentation-timeout", &segmentation_timeout, "deadline of reading one segment's members");
  // Email over SMTP, SMS and push through webhook providers, the file channel (development); the
  // web inbox is built in. Secrets from the environment only (channels/channels_config.h).
  bc::ChannelsConfig channels_config;
  bc::RegisterChannelFlags(f, &channels_config);
  f.AddString("frequency-caps", &caps_spec,
              "caps on rolling windows, e.g. global=3/7d,email=1/24h,category:newsletter=1/7d; empty: none");
  f.AddString("cap-exempt-purposes", &exempt_spec, "purposes neither capped nor counted");
  f.AddString("channel-rates", &rates_spec, "messages a second per channel, e.g. email=200,sms=20; empty: unlimited");
  f.AddInt("delivery-workers", &workers, "threads that claim and send due deliveries");
  f.AddInt("delivery-batch", &batch, "deliveries a worker claims at once");
  f.AddDuration("delivery-lease", &dispatch.lease,
                "how long a claim holds its deliveries before another may take "
                "them (a crashed worker's are sent again after this)");
  f.AddInt("max-attempts", &max_attempts, "attempts before a temporarily failing delivery fails");
  f.AddDuration("retry-base", &dispatch.backoff_base, "first retry delay (doubling, with jitter)");
  f.AddDuration("retry-max", &dispatch.backoff_max, "longest retry delay");
  f.AddDuration("inbox-ttl", &dispatch.inbox_ttl, "how long a web inbox message is shown");
  f.AddString("preferences-url-base", &dispatch.preferences_url_base,
              "preference centre {{preferences_url}} links to, with ?d=<delivery id>; empty: the placeholder is "
              "removed");
  f.AddString("view-in-browser-url-base", &dispatch.view_in_browser_url_base,
              "web view {{view_in_browser_url}} links to, with ?d=<delivery id>; empty: the placeholder is removed");
  // The HTTP endpoints: open pixel, signed clicks, one-click unsubscribe, provider webhooks.
  bc::HttpServerOptions http;
  http.address = "";
  std::string public_base_url, http_port_file;
  int64_t http_threads = http.threads, http_max_body = static_cast<int64_t>(http.max_body_bytes);
  absl::Duration webhook_max_age = absl::Minutes(5);
  f.AddString("http-address", &http.address,
              "host:port of the HTTP server (open pixel, clicks, one-click unsubscribe, provider webhooks; port 0 "
              "picks one); empty: no HTTP server. Needs ECRM_TRACKING_SECRET");
  f.AddString("public-base-url", &public_base_url,
              "the URL the HTTP server is reached at from outside (https://t.example.com): the base of the pixel, "
              "click and unsubscribe links in messages; empty: http://<the --http-address it bound>");
  f.AddString("http-port-file", &http_port_file,
              "once the HTTP server listens, write http_port=N to this file (replaced whole); empty: no file");
  f.AddInt("http-threads", &http_threads, "HTTP handler threads");
  f.AddInt("http-max-body", &http_max_body, "largest HTTP request body in bytes (413 above)");
  f.AddDuration("http-read-timeout", &http.read_timeout, "reading an HTTP request (per read)");
  f.AddDuration("http-write-timeout", &http.write_timeout, "writing an HTTP answer (per write)");
  f.AddDuration("webhook-max-age", &webhook_max_age,
                "how far a signed provider webhook's X-Ecrm-Timestamp may be from now");
  f.AddDuration("idempotency-retention", &key_retention,
                "how long an idempotency key replays its first response (at least 24h)");
  if (auto exit_code = runner.Start(argc, argv)) return *exit_code;
  auto fail = [&](absl::Status s) { return runner.Fail("configuration", s); };
  if (workers < 1 || workers > 64) return fail(absl::InvalidArgumentError("--delivery-workers must be 1-64"));
  if (batch < 1 || batch > 10000) return fail(absl::InvalidArgumentError("--delivery-batch must be 1-10000"));
  if (max_attempts < 1) return fail(absl::InvalidArgumentError("--max-attempts must be at least 1"));
  if (dispatch.lease < absl::Seconds(5)) return fail(absl::InvalidArgumentError("--delivery-lease must be >= 5s"));
  if (key_retention < absl::Hours(24)) {
    return fail(absl::InvalidArgumentError("--idempotency-retention must be at least 24h"));
  }
  dispatch.workers = static_cast<int>(workers);
  dispatch.batch = static_cast<int>(batch);
  dispatch.max_attempts = static_cast<int>(max_attempts);
  dispatch.profile_timeout = infostore_timeout;
  bc::CapConfig caps_config;
  absl::StatusOr<std::vector<bc::CapRule>> rules = bc::ParseCapRules(caps_spec);
  if (!rules.ok()) return fail(rules.status());
  caps_config.rules = std::move(*rules);
  absl::StatusOr<std::set<ecrm::common::v1::Purpose>> exempt = bc::ParseExemptPurposes(exempt_spec);
  if (!exempt.ok()) return fail(exempt.status());
  caps_config.exempt = std::move(*exempt);
  auto rates = ParseRates(rates_spec);
  if (!rates.ok()) return fail(rates.status());
  dispatch.channel_rate = std::move(*rates);
  bc::LoadChannelSecrets(&channels_config, [](const char* name) { return std::getenv(name); });
  absl::StatusOr<bc::Channels> channels = bc::BuildChannels(channels_config);
  if (!channels.ok()) return fail(channels.status());
  std::map<ecrm::common::v1::Channel, bc::Channel*> by_channel;
  for (const auto& [channel, implementation] : channels->by_channel) by_channel[channel] = implementation.get();
  ecrm::log::Info("delivery channels",
                  {{"channels", channels->description.empty() ? "web inbox only" : channels->description}});

  http.threads = static_cast<int>(http_threads);
  http.max_body_bytes = static_cast<size_t>(std::max<int64_t>(1024, http_max_body));
  // Secrets from the environment only: the links' key and the provider webhooks' key.
  const char* tracking_secret = std::getenv("ECRM_TRACKING_SECRET");
  const char* provider_secret = std::getenv("ECRM_PROVIDER_WEBHOOK_SECRET");
  bc::HttpMetrics http_metrics(runner.metrics());
  std::unique_ptr<bc::HttpServer> http_server;
  if (!http.address.empty()) {
    http_server = std::make_unique<bc::HttpServer>(http, http_metrics);
    absl::StatusOr<int> port = http_server->Bind();
    if (!port.ok()) return runner.Fail("HTTP server", port.status());
    if (public_base_url.empty()) {
      const std::string& host = http_server->host();
      public_base_url =
          absl::StrCat("http://", host.find(':') != std::string::npos ? "[" + host + "]" : host, ":", *port);
    }
    ecrm::log::Info("http listening", {{"http_port", *port}, {"public_base_url", public_base_url}});
    if (!http_port_file.empty()) {
      const std::string tmp = http_port_file + ".tmp";
      std::ofstream(tmp) << "http_port=" << *port << "\n";
      if (std::rename(tmp.c_str(), http_port_file.c_str()) != 0) {
        return fail(absl::InvalidArgumentError(absl::StrCat("http-port-file: cannot write ", http_port_file)));
      }
    }
  }
  std::optional<bc::TrackingLinks> links;
  if (!public_base_url.empty()) {
    absl::StatusOr<bc::TrackingLinks> made =
        bc::TrackingLinks::Create(public_base_url, tracking_secret ? tracking_secret : "");
    if (!made.ok()) return fail(made.status());
    links = std::move(*made);
    dispatch.links = &*links;
  }

  auto stores = ecrm::server::OpenStores(runner, bc::kMigrations, {.profile_cache = true});
  if (!stores.ok()) return runner.Fail("opening stores", stores.status());
  std::unique_ptr<bc::GrpcCustomerDirectory> directory;
  std::unique_ptr<ecrm::outbox::InfostoreEventSink> sink;
  if (!infostore_address.empty()) {
    std::shared_ptr<grpc::Channel> infostore = ecrm::server::OutboundChannel(infostore_address);
    directory = std::make_unique<bc::GrpcCustomerDirectory>(infostore, infostore_timeout);
    sink = std::make_unique<ecrm::outbox::InfostoreEventSink>(infostore, outbox_timeout);
  }
  std::unique_ptr<bc::GrpcTemplateRenderer> renderer;
  if (!personalisation_address.empty()) {
    renderer = std::make_unique<bc::GrpcTemplateRenderer>(ecrm::server::OutboundChannel(personalisation_address),
                                                          dispatch.render_timeout);
  }
  std::unique_ptr<bc::GrpcSegmentDirectory> segments;
  if (!segmentation_address.empty()) {
    segments = std::make_unique<bc::GrpcSegmentDirectory>(ecrm::server::OutboundChannel(segmentation_address),
                                                          segmentation_timeout);
  }
  ecrm::server::Executor& executor = *stores->executor;
  ecrm::sql::Database& db = *stores->db;
  bc::BroadcastMetrics metrics(runner.metrics());
  ecrm::idempotency::Store keys(db);
  ecrm::outbox::Outbox outbox(db);
  bc::Profiles profiles(stores->profiles.get(), directory.get());
  bc::FrequencyCaps caps(caps_config);
  bc::Dispatcher dispatcher(db, outbox, profiles, renderer.get(), caps, by_channel, metrics, dispatch);
  auto wake = [&dispatcher] { dispatcher.Wake(); };
  bc::Deliveries deliveries(
      db, keys, outbox, profiles,
      {.available = dispatcher.available(), .profile_timeout = infostore_timeout, .metrics = &metrics}, wake);
  bc::Broadcasts broadcasts(db, keys, dispatcher.available(), wake);
  broadcasts.SetSegments(segments.get(), segmentation_timeout);
  broadcasts.SetTemplates(renderer.get(), dispatch.render_timeout);
  bc::Suppressions suppressions(db);
  bc::CustomerData customer_data(db);
  std::unique_ptr<ecrm::outbox::RelayMetrics> relay_metrics;
  std::unique_ptr<ecrm::outbox::OutboxRelay> relay;
  if (sink) {
    relay_metrics = std::make_unique<ecrm::outbox::RelayMetrics>(runner.metrics(), "ecrm_broadcast_outbox");
    relay = std::make_unique<ecrm::outbox::OutboxRelay>(outbox, *sink, ecrm::outbox::RelayOptions{}, *relay_metrics);
    outbox.SetListener([r = relay.get()] { r->Notify(); });
    runner.OnScrape([r = relay.get()] { r->RefreshAge(); });
    relay->Start();
  }
  std::unique_ptr<bc::TrackingEndpoints> endpoints;
  if (http_server) {
    endpoints = std::make_unique<bc::TrackingEndpoints>(
        *links, deliveries, directory.get(),
        bc::TrackingEndpointsOptions{.webhook_secret = provider_secret ? provider_secret : "",
                                     .webhook_max_age = webhook_max_age,
                                     .consent_timeout = infostore_timeout});
  }
  bc::DeliveryBacklog backlog(db, runner.metrics());
  runner.OnScrape([&backlog] { backlog.Refresh(); });
  bc::BroadcastService service(deliveries, broadcasts, suppressions, executor);
  ecrm::server::CustomerDataService customer_data_service("broadcast", customer_data, executor);
  runner.AddService(&service, bc::v1::Broadcast::service_full_name());
  runner.AddService(&customer_data_service, ecrm::privacy::v1::CustomerData::service_full_name());

  ecrm::server::PeriodicTask pruner(
      "key-pruner", prune_every,
      [&] {
        if (absl::StatusOr<int64_t> n = keys.Prune(absl::Now() - key_retention); !n.ok()) {
          ecrm::log::Warn("idempotency key pruning failed", {{"error", n.status()}});
        }
      },
      &runner.metrics());
  pruner.Start();
  dispatcher.Start();
  if (http_server) http_server->Start(*endpoints);
  // The HTTP server stops taking requests and finishes those in hand; workers stop claiming and
  // finish the batch in hand; then the relay stops (it relays what they recorded). Also after a
  // failed start, which never reaches the shutdown hooks (each stop is idempotent).
  auto stop_background = [&] {
    if (http_server) http_server->Stop();
    dispatcher.Stop();
    pruner.Stop();
    if (relay) relay->Stop();
  };
  runner.OnShutdown(stop_background);
  const int exit_code = runner.Serve();
  stop_background();
  return exit_code;
}
