// ecrm-broadcast-bench: a broadcast's throughput through the real engine, end to end — the audience
// loaded (CreateBroadcast), each delivery claimed, gated on its profile (the shared Redis profile
// cache, seeded here as the information store fills it), recorded in the outbox (SQLite in a temp
// directory, or --database-url) and sent to a sink on loopback:
//
//   --sink=smtp      Postfix's smtp-sink (/usr/sbin/smtp-sink, Debian package postfix), marketing
//                    email of --body-bytes (10 KB), List-Unsubscribe and tracked links included;
//   --sink=webhook   SMS through the webhook channel to an HTTP server in this process
//                    (tests/support/webhook_sink.h) that answers 200 at once; with
//                    --webhook-profile=generic-batch one request carries --webhook-batch-size
//                    messages and the sink answers each message's result (WebhookSink::BatchReply).
//
// --render (webhook): each run sends two broadcasts, each on a fresh engine: the literal SMS, then
// the same SMS as a template rendered per customer by a real ecrm-personalisation (started here on
// loopback, reading the same Redis profile cache, --personalisation-address of the engine) —
// "Hi {{profile.first_name}}, your {{attributes.tier}} weekend …" with a per-customer shop link and
// the engine's {{unsubscribe_url}} (the literal one carries the link too). The sink checks every
// rendered body it is given (the customer's first name and tier in it, no placeholder left) and the
// run fails if one is not. Prints broadcast.webhook.render_msgs_per_s beside msgs_per_s, and a second
// baseline: broadcast.webhook.batch_render_only_per_s, personalisation's BatchRender alone (the
// bench's own calls of --batch customers from --workers threads, no engine).
//
// Each of --runs starts a fresh engine on a fresh database. Baseline, in the same run: the engine's
// own channel class (SmtpChannel / WebhookChannel) sending the same messages to the same sink from
// this process with as many threads as the engine has workers and no database — the most the
// engine could reach with that channel; the gap to it is the outbox's cost.
//
// Prints JSON lines (bench_util.h): broadcast.<sink>.msgs_per_s (the send phase: from loaded to
// COMPLETED), broadcast.<sink>.load_per_s (CreateBroadcast's rows a second),
// broadcast.<sink>.channel_only_msgs_per_s (the baseline).
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <prometheus/registry.h>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "bench_util.h"
#include "channels/smtp_channel.h"
#include "channels/webhook_channel.h"
#include "ecrm/broadcast/v1/broadcast.grpc.pb.h"
#include "ecrm/cache/profile_cache.h"
#include "ecrm/cache/redis_client.h"
#include "ecrm/config/flags.h"
#include "ecrm/infostore/v1/infostore.pb.h"
#include "ecrm/personalisation/v1/personalisation.grpc.pb.h"
#include "ecrm/testing/process.h"
#include "ecrm/testing/servers.h"
#include "ecrm/testing/service.h"
#include "webhook_sink.h"

namespace v1 = ecrm::broadcast::v1;
namespace common = ecrm::common::v1;
namespace info = ecrm::infostore::v1;
namespace bc = ecrm::broadcast;
namespace perso = ecrm::personalisation::v1;

namespace {

struct Options {
  std::string sink = "smtp";
  int64_t recipients = 20000;
  int64_t runs = 3;
  int64_t workers = 2;
  int64_t batch = 100;
  int64_t body_bytes = 10240;
  int64_t baseline_messages = 20000;
  std::string database_url;  // empty: SQLite in a temp dir per run
  std::string smtp_sink = "/usr/sbin/smtp-sink";
  std::string extra_args;  // more engine flags, space separated
  int64_t smtp_connections = 4;
  std::string webhook_profile = "generic";
  int64_t webhook_batch_size = 100;
  int64_t webhook_in_flight = 32;
  std::string engine = absl::StrCat(ECRM_BUILD_DIR, "/services/ecrm-broadcast");
  bool render = false;
  std::string personalisation = absl::StrCat(ECRM_BUILD_DIR, "/services/ecrm-personalisation");
  std::string personalisation_args;  // more ecrm-personalisation flags, space separated
};

constexpr const char* kFirstNames[] = {"Ann",  "Bob",   "Chloé", "Dev",   "Eve",   "Farid", "Grace", "Hiro",
                                       "Iris", "Jonas", "Kemal", "Lucía", "Maeve", "Nils",  "Olu",   "Priya"};
constexpr const char* kTiers[] = {"gold", "silver", "bronze"};

std::string FirstName(int64_t i) { return kFirstNames[i % 16]; }
std::string Tier(int64_t i) { return kTiers[i % 3]; }

// The SMS of --render: as a template, and its literal counterpart of about the same length.
constexpr const char* kSmsTemplate =
    "Hi {{profile.first_name}}, your {{attributes.tier}} weekend: 20% off everything until Sunday. Shop: "
    "https://shop.example.com/s/{{customer.id}} Stop: {{unsubscribe_url}}";
constexpr const char* kSmsLiteral =
    "Hi there, your member weekend: 20% off everything until Sunday. Shop: https://shop.example.com/s/weekend "
    "Stop: {{unsubscribe_url}}";

std::string CustomerId(int64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "c_bench_%07lld", static_cast<long long>(i));
  return buf;
}

// A failure unwinds to main, so that the engine, Redis and the sink this run started are stopped
// by their destructors: std::exit left them running (holding, among others, the build lock the
// bench was run under).
struct Failure {
  std::string what;
};

void Check(bool ok, const std::string& what) {
  if (!ok) throw Failure{what};
}

void SeedProfiles(const std::string& redis_url, int64_t n) {
  prometheus::Registry registry;
  ecrm::cache::CacheMetrics metrics(registry);
  auto options = ecrm::cache::ParseRedisUrl(redis_url);
  Check(options.ok(), "bad Redis URL");
  ecrm::cache::RedisClient client(*options);
  ecrm::cache::RedisProfileCache cache(client, metrics);
  std::vector<ecrm::cache::ProfileWrite> writes;
  for (int64_t i = 0; i < n; ++i) {
    info::Customer c;
    c.set_id(CustomerId(i));
    c.set_version(1);
    c.mutable_profile()->set_first_name(FirstName(i));
    c.mutable_profile()->set_last_name(absl::StrCat("Bench", i));
    c.mutable_profile()->set_locale("en-GB");
    c.mutable_profile()->set_time_zone("Europe/London");
    (*c.mutable_attributes())["tier"].set_string_value(Tier(i));
    auto* email = c.add_identifiers();
    email->set_type(common::IDENTIFIER_TYPE_EMAIL);
    email->set_value(absl::StrCat("customer", i, "@example.com"));
    auto* phone = c.add_identifiers();
    phone->set_type(common::IDENTIFIER_TYPE_PHONE);
    phone->set_value(absl::StrCat("+4477", 10000000 + i));
    for (common::Channel ch : {common::CHANNEL_EMAIL, common::CHANNEL_SMS}) {
      auto* consent = c.add_consents();
      consent->set_channel(ch);
      consent->set_purpose(common::PURPOSE_MARKETING);
      consent->set_status(info::CONSENT_STATUS_GRANTED);
      consent->set_source(common::TOUCHPOINT_WEB);
    }
    writes.push_back({c.id(), c.version(), c.SerializeAsString(), false});
    if (writes.size() == 1000 || i == n - 1) {
      Check(cache.Write(writes) == writes.size(), "seeding the profile cache failed");
      writes.clear();
    }
  }
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  Check(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "bind");
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

bool Connects(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// ~body_bytes of HTML with a few links (the engine rewrites them for click tracking).
std::string Body(int64_t bytes) {
  std::string out = "<html><body><h1>Spring sale, {{unsubscribe_url}}</h1>";
  int i = 0;
  while (static_cast<int64_t>(out.size()) < bytes - 200) {
    absl::StrAppend(&out, "<p>Item ", i, ": a fine product at a fine price, now twenty percent off for you. ",
                    i % 10 == 0 ? absl::StrCat("<a href=\"https://shop.example.com/p/", i, "\">See it</a>") : "",
                    "</p>\n");
    ++i;
  }
  absl::StrAppend(&out, "</body></html>");
  return out;
}

// Calls fn(from, to) for the slices [from, to) of [0, total), `batch` long, from `threads`
// threads; a slice for which fn returns false stops the rest.
void ForEachSlice(int64_t total, int64_t batch, int threads, const std::function<bool(int64_t, int64_t)>& fn) {
  std::atomic<int64_t> next{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int64_t from; !stop && (from = next.fetch_add(batch)) < total;) {
        if (!fn(from, std::min(total, from + batch))) stop = true;
      }
    });
  }
  for (std::thread& t : pool) t.join();
}

// The baseline: the channel class alone, `threads` threads sending batches of `batch`.
double ChannelOnly(bc::Channel& channel, const Options& o, common::Channel ch, const std::string& body) {
  std::atomic<int64_t> failed{0};
  const absl::Time began = absl::Now();
  ForEachSlice(o.baseline_messages, o.batch, o.workers, [&](int64_t from, int64_t to) {
    std::vector<bc::OutgoingMessage> msgs;
    for (int64_t i = from; i < to; ++i) {
      bc::OutgoingMessage m;
      m.delivery_id = absl::StrCat("dl_base_", i);
      m.customer_id = CustomerId(i);
      m.channel = ch;
      m.purpose = common::PURPOSE_MARKETING;
      m.address = ch == common::CHANNEL_EMAIL ? absl::StrCat("customer", i, "@example.com")
                                              : absl::StrCat("+4477", 10000000 + i);
      m.subject = "Spring sale";
      m.text_body = ch == common::CHANNEL_EMAIL ? "" : "Spring sale: 20% off today";
      m.html_body = ch == common::CHANNEL_EMAIL ? body : "";
      m.unsubscribe_url = "http://127.0.0.1:1/u?d=" + m.delivery_id;
      msgs.push_back(std::move(m));
    }
    for (const bc::SendResult& r : channel.Send(msgs)) {
      if (r.outcome != bc::SendOutcome::kAccepted && failed.fetch_add(1) == 0)
        std::fprintf(stderr, "# baseline: a message not accepted: %s\n", r.error.c_str());
    }
    return true;
  });
  // Not fatal: a loaded machine can time a few out; the rate counts accepted messages only.
  if (failed.load() > 0)
    std::fprintf(stderr, "# baseline: %lld messages not accepted\n", static_cast<long long>(failed.load()));
  return static_cast<double>(o.baseline_messages - failed.load()) / absl::ToDoubleSeconds(absl::Now() - began);
}

// Personalisation alone, the second baseline of --render: BatchRender of the template for every
// recipient from `workers` threads in calls of `batch` customers (as the engine's workers ask it),
// nothing else. Customers rendered a second.
double RenderOnly(const std::shared_ptr<grpc::Channel>& channel, const std::string& template_id, const Options& o) {
  auto stub = perso::Personalisation::NewStub(channel);
  std::atomic<int64_t> rendered{0};
  std::string error;
  std::mutex mu;
  const absl::Time began = absl::Now();
  ForEachSlice(o.recipients, o.batch, o.workers, [&](int64_t from, int64_t to) {
    perso::BatchRenderRequest req;
    req.set_template_id(template_id);
    for (int64_t i = from; i < to; ++i) req.add_customer_ids(CustomerId(i));
    perso::BatchRenderResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    grpc::Status st = stub->BatchRender(&ctx, req, &resp);
    if (!st.ok() || !resp.failed().empty()) {
      std::lock_guard lock(mu);
      if (error.empty()) {
        error = st.ok() ? absl::StrCat(resp.failed().size(), " customers not rendered") : st.error_message();
      }
      return false;
    }
    rendered.fetch_add(resp.messages_size());
    return true;
  });
  Check(error.empty(), "BatchRender alone: " + error);
  return static_cast<double>(rendered.load()) / absl::ToDoubleSeconds(absl::Now() - began);
}

// What the sink checks in the bodies of a rendered broadcast: each customer's own first name and
// tier, their shop link, and no placeholder left unfilled (personalisation's or the engine's).
struct RenderCheck {
  std::atomic<bool> on{false};
  std::atomic<int64_t> checked{0}, bad{0};
  std::mutex mu;
  std::string first_bad;

  void Check(const nlohmann::json& message) {
    if (!on.load(std::memory_order_relaxed)) return;
    checked.fetch_add(1, std::memory_order_relaxed);
    const bool object = message.is_object();
    const std::string customer = object ? message.value("customer_id", "") : "";
    const std::string body = object ? message.value("body", "") : message.dump();
    int64_t i = -1;
    absl::string_view digits = customer;
    const bool known = absl::ConsumePrefix(&digits, "c_bench_") && absl::SimpleAtoi(digits, &i);
    const bool ok =
        known && i >= 0 && absl::StartsWith(body, absl::StrCat("Hi ", FirstName(i), ", your ", Tier(i), " weekend")) &&
        absl::StrContains(body, absl::StrCat("/s/", customer, " Stop: http")) && !absl::StrContains(body, "{{");
    if (ok) return;
    if (bad.fetch_add(1) == 0) {
      std::lock_guard lock(mu);
      first_bad = absl::StrCat(customer, ": \"", body, "\"");
    }
  }
};

}  // namespace

int Run(int argc, char** argv) {
  Options o;
  ecrm::config::Flags flags("ecrm-broadcast-bench", "a broadcast's throughput through ecrm-broadcast to a local sink");
  flags.AddString("sink", &o.sink, "smtp (Postfix smtp-sink) or webhook (an HTTP server in this process)");
  flags.AddInt("recipients", &o.recipients, "audience of each broadcast");
  flags.AddInt("runs", &o.runs, "broadcasts, each on a fresh engine and database");
  flags.AddInt("workers", &o.workers, "--delivery-workers of the engine (and the baseline's threads)");
  flags.AddInt("batch", &o.batch, "--delivery-batch of the engine (and the baseline's batch)");
  flags.AddInt("body-bytes", &o.body_bytes, "size of the email's HTML body");
  flags.AddInt("baseline-messages", &o.baseline_messages, "messages the channel-only baseline sends");
  flags.AddString("database-url", &o.database_url, "the engine's database; empty: SQLite in a temp dir per run");
  flags.AddString("smtp-sink", &o.smtp_sink, "Postfix's smtp-sink binary");
  flags.AddInt("smtp-connections", &o.smtp_connections, "--smtp-connections of the engine (and the baseline's)");
  flags.AddString("engine", &o.engine, "the ecrm-broadcast binary (an older build, to compare)");
  flags.AddString("extra-args", &o.extra_args, "more ecrm-broadcast flags, space separated");
  flags.AddString("webhook-profile", &o.webhook_profile,
                  "--sms-webhook-profile of the engine (and the baseline's): generic or generic-batch");
  flags.AddInt("webhook-batch-size", &o.webhook_batch_size, "--webhook-batch-size (generic-batch)");
  flags.AddInt("webhook-in-flight", &o.webhook_in_flight, "--webhook-max-in-flight of the engine (and the baseline's)");
  flags.AddBool("render", &o.render,
                "webhook: also send each run's broadcast as a template rendered by a real ecrm-personalisation, "
                "beside the literal one");
  flags.AddString("personalisation", &o.personalisation, "the ecrm-personalisation binary (--render)");
  flags.AddString("personalisation-args", &o.personalisation_args,
                  "more ecrm-personalisation flags, space separated (--render)");
  if (auto code = flags.ParseCommandLine(argc, argv)) return *code;
  Check(o.sink == "smtp" || o.sink == "webhook", "--sink must be smtp or webhook");
  Check(!o.render || o.sink == "webhook", "--render is for --sink=webhook (SMS)");

  auto redis = ecrm::testing::RedisServer::Start();
  Check(redis.ok(), "starting Redis: " + redis.status().ToString());
  const absl::Time seed_began = absl::Now();
  SeedProfiles((*redis)->url(), o.recipients);
  std::fprintf(stderr, "# %lld profiles seeded in %.1f s\n", static_cast<long long>(o.recipients),
               absl::ToDoubleSeconds(absl::Now() - seed_began));

  ecrm::testing::TempDir dir;
  std::unique_ptr<ecrm::testing::Process> smtp_sink;
  std::unique_ptr<ecrm::testing::WebhookSink> webhook;
  std::atomic<int64_t> webhook_count{0};
  RenderCheck render_check;
  std::vector<std::string> args = {"--redis-url=" + (*redis)->url(), absl::StrCat("--delivery-workers=", o.workers),
                                   absl::StrCat("--delivery-batch=", o.batch), "--log-level=warn"};
  // The baseline's channel, made for each run and destroyed before the engine starts: its
  // kept-alive connections would otherwise hold sink threads during the engine's run.
  std::function<std::unique_ptr<bc::Channel>()> baseline_channel;
  common::Channel channel = common::CHANNEL_EMAIL;
  const std::string body = Body(o.body_bytes);
  if (o.sink == "smtp") {
    const int port = FreePort();
    std::vector<std::string> argv = {o.smtp_sink};
    if (getuid() == 0) argv.insert(argv.end(), {"-u", "nobody"});
    argv.insert(argv.end(), {absl::StrCat("127.0.0.1:", port), "1024"});
    auto p = ecrm::testing::Process::Spawn(argv, dir.path() + "/smtp-sink.log");
    Check(p.ok(), "starting smtp-sink: " + p.status().ToString());
    smtp_sink = std::move(*p);
    for (int i = 0; i < 100 && !Connects(port); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    Check(Connects(port), "smtp-sink does not listen: " + smtp_sink->Output());
    const std::string url = absl::StrCat("smtp://127.0.0.1:", port, "/bench.example.com");
    args.insert(args.end(),
                {"--smtp-url=" + url, "--smtp-from=news@shop.example.com", "--public-base-url=http://127.0.0.1:1"});
    // An older engine has no --smtp-connections: 0 leaves the flag out.
    if (o.smtp_connections > 0) args.push_back(absl::StrCat("--smtp-connections=", o.smtp_connections));
    setenv("ECRM_TRACKING_SECRET", "bench-tracking-secret-0123456789", 1);
    baseline_channel = [url, &o]() -> std::unique_ptr<bc::Channel> {
      auto smtp = bc::SmtpChannel::Create({.url = url,
                                           .identity = {.from_address = "news@shop.example.com"},
                                           .connections = static_cast<int>(std::max<int64_t>(1, o.smtp_connections))});
      Check(smtp.ok(), smtp.status().ToString());
      return std::move(*smtp);
    };
  } else {
    channel = common::CHANNEL_SMS;
    Check(o.webhook_profile == "generic" || o.webhook_profile == "generic-batch",
          "--webhook-profile must be generic or generic-batch");
    // A sink thread for each connection the engine's workers keep open (each worker's Send opens
    // up to --webhook-max-in-flight), twice over, so that no connection waits in the sink's queue.
    webhook = std::make_unique<ecrm::testing::WebhookSink>(static_cast<int>(2 * o.workers * o.webhook_in_flight + 16));
    webhook->KeepRequests(false);
    if (o.webhook_profile == "generic-batch") {
      webhook->SetResponder([&](const ecrm::testing::WebhookSink::Request& r, int n) {
        return ecrm::testing::WebhookSink::BatchReply(r, [&](const nlohmann::json& m, int i) {
          webhook_count.fetch_add(1);
          render_check.Check(m);
          return ecrm::testing::WebhookSink::Result{.id = absl::StrCat("sink-", n, "-", i)};
        });
      });
    } else {
      webhook->SetResponder([&](const ecrm::testing::WebhookSink::Request& r, int n) {
        webhook_count.fetch_add(1);
        if (render_check.on.load()) {
          render_check.Check(nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false));
        }
        return ecrm::testing::WebhookSink::Reply{200, absl::StrCat("{\"id\":\"sink-", n, "\"}"), {}};
      });
    }
    args.insert(args.end(), {"--sms-webhook-url=" + webhook->Url("/sms"),
                             absl::StrCat("--webhook-max-in-flight=", o.webhook_in_flight)});
    // An older engine has no generic-batch: the default profile leaves the flags out.
    if (o.webhook_profile != "generic") {
      args.insert(args.end(), {"--sms-webhook-profile=" + o.webhook_profile,
                               absl::StrCat("--webhook-batch-size=", o.webhook_batch_size)});
    }
    const std::string url = webhook->Url("/sms");
    baseline_channel = [url, &o]() -> std::unique_ptr<bc::Channel> {
      auto wh = bc::WebhookChannel::Create({.url = url,
                                            .profile = o.webhook_profile,
                                            .max_in_flight = static_cast<int>(o.webhook_in_flight),
                                            .batch_size = static_cast<int>(o.webhook_batch_size)},
                                           common::CHANNEL_SMS);
      Check(wh.ok(), wh.status().ToString());
      return std::move(*wh);
    };
  }
  // --render: personalisation on the same Redis profile cache (its SQLite in its own temp dir), the
  // SMS template created there, the engine pointed at it; the engine's links (unsubscribe) on, for
  // the literal broadcast too.
  std::unique_ptr<ecrm::testing::ServiceProcess> personalisation;
  std::string template_id;
  if (o.render) {
    std::vector<std::string> pargs = {"--redis-url=" + (*redis)->url(), "--log-level=warn"};
    for (absl::string_view a : absl::StrSplit(o.personalisation_args, ' ', absl::SkipEmpty())) pargs.emplace_back(a);
    auto p = ecrm::testing::ServiceProcess::Start(o.personalisation, pargs, absl::Seconds(60));
    Check(p.ok(), "starting ecrm-personalisation: " + p.status().ToString());
    personalisation = std::move(*p);
    perso::CreateTemplateRequest req;
    perso::Template* t = req.mutable_template_();
    t->set_name("weekend-sms");
    t->set_channel(common::CHANNEL_SMS);
    t->set_text_body(kSmsTemplate);
    perso::Template created;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    grpc::Status st = perso::Personalisation::NewStub(personalisation->channel())->CreateTemplate(&ctx, req, &created);
    Check(st.ok(), "CreateTemplate: " + st.error_message());
    template_id = created.id();
    args.insert(args.end(), {"--personalisation-address=" + personalisation->grpc_address(),
                             "--public-base-url=http://127.0.0.1:1"});
    setenv("ECRM_TRACKING_SECRET", "bench-tracking-secret-0123456789", 1);
  }
  for (absl::string_view a : absl::StrSplit(o.extra_args, ' ', absl::SkipEmpty())) args.emplace_back(a);

  // One broadcast on a fresh engine and database: its load and send times.
  auto broadcast = [&](int64_t run, bool rendered) -> std::pair<double, double> {
    ecrm::testing::TempDir run_dir;
    std::vector<std::string> run_args = args;
    run_args.push_back(o.database_url.empty() ? absl::StrCat("--database-url=sqlite://", run_dir.path(), "/bc.db")
                                              : "--database-url=" + o.database_url);
    auto engine = ecrm::testing::ServiceProcess::Start(o.engine, run_args, absl::Seconds(60));
    Check(engine.ok(), "starting ecrm-broadcast: " + engine.status().ToString());
    auto stub = v1::Broadcast::NewStub((*engine)->channel());
    v1::CreateBroadcastRequest create;
    create.set_campaign_id("camp-bench");
    for (int64_t i = 0; i < o.recipients; ++i) create.add_customer_ids(CustomerId(i));
    create.add_channels(channel);
    create.set_purpose(common::PURPOSE_MARKETING);
    if (rendered) {
      create.mutable_content()->set_template_id(template_id);
    } else {
      create.mutable_content()->mutable_literal()->set_subject("Spring sale");
      if (channel == common::CHANNEL_EMAIL) {
        create.mutable_content()->mutable_literal()->set_html_body(body);
      } else {
        create.mutable_content()->mutable_literal()->set_text_body(o.render ? kSmsLiteral
                                                                            : "Spring sale: 20% off today");
      }
    }
    create.set_idempotency_key(absl::StrCat("bench-", run, rendered ? "-render" : ""));
    render_check.checked = 0;
    render_check.on = rendered;
    v1::BroadcastJob job;
    const absl::Time load_began = absl::Now();
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(30)));
      grpc::Status st = stub->CreateBroadcast(&ctx, create, &job);
      Check(st.ok(), "CreateBroadcast: " + st.error_message());
    }
    const absl::Time loaded = absl::Now();
    // Polled every 200 ms (GetBroadcast counts the deliveries by state: not free on a big audience).
    v1::GetBroadcastRequest get;
    get.set_id(job.id());
    for (;;) {
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
      grpc::Status st = stub->GetBroadcast(&ctx, get, &job);
      Check(st.ok(), "GetBroadcast: " + st.error_message());
      if (job.state() == v1::BROADCAST_STATE_COMPLETED) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    const absl::Time done = absl::Now();
    render_check.on = false;
    auto sent = job.by_state().find("SENT");
    Check(sent != job.by_state().end() && sent->second == o.recipients,
          "not every delivery SENT: " + absl::StrJoin(job.by_state(), ", ", absl::PairFormatter("=")));
    if (rendered) {
      Check(
          render_check.bad.load() == 0,
          absl::StrCat(render_check.bad.load(), " of the rendered SMS were not (first: ", render_check.first_bad, ")"));
      Check(render_check.checked.load() >= o.recipients,
            absl::StrCat("the sink checked ", render_check.checked.load(), " rendered SMS of ", o.recipients));
    }
    (*engine)->process().Signal(SIGTERM);
    (*engine)->process().Wait(absl::Seconds(60));
    return {absl::ToDoubleSeconds(loaded - load_began), absl::ToDoubleSeconds(done - loaded)};
  };

  std::vector<double> sends, loads, baselines, render_sends, render_loads, render_only;
  const double n = static_cast<double>(o.recipients);
  for (int64_t run = 0; run < o.runs; ++run) {
    baselines.push_back(ChannelOnly(*baseline_channel(), o, channel, body));
    auto [load_s, send_s] = broadcast(run, false);
    loads.push_back(n / load_s);
    sends.push_back(n / send_s);
    std::fprintf(stderr, "# run %lld: load %.1f s, send %.1f s (%.0f msgs/s), baseline %.0f msgs/s\n",
                 static_cast<long long>(run + 1), load_s, send_s, sends.back(), baselines.back());
    if (o.render) {
      render_only.push_back(RenderOnly(personalisation->channel(), template_id, o));
      std::fprintf(stderr, "# run %lld: BatchRender alone %.0f customers/s\n", static_cast<long long>(run + 1),
                   render_only.back());
      auto [rload_s, rsend_s] = broadcast(run, true);
      render_loads.push_back(n / rload_s);
      render_sends.push_back(n / rsend_s);
      std::fprintf(stderr, "# run %lld, rendered: load %.1f s, send %.1f s (%.0f msgs/s), every body checked\n",
                   static_cast<long long>(run + 1), rload_s, rsend_s, render_sends.back());
    }
  }
  const std::string prefix = absl::StrCat("broadcast.", o.sink, ".");
  ecrm::bench::PrintResult(prefix + "channel_only_msgs_per_s", "msgs/s", baselines);
  ecrm::bench::PrintResult(prefix + "load_per_s", "rows/s", loads);
  ecrm::bench::PrintResult(prefix + "msgs_per_s", "msgs/s", sends);
  if (o.render) {
    ecrm::bench::PrintResult(prefix + "batch_render_only_per_s", "customers/s", render_only);
    ecrm::bench::PrintResult(prefix + "render_load_per_s", "rows/s", render_loads);
    ecrm::bench::PrintResult(prefix + "render_msgs_per_s", "msgs/s", render_sends);
  }
  if (smtp_sink) smtp_sink->Signal(SIGTERM);
  return 0;
}

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const Failure& f) {
    std::fprintf(stderr, "ecrm-broadcast-bench: %s\n", f.what.c_str());
    return 1;
  }
}
