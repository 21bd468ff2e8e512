// ecrm-sense-respond-bench: sense-and-respond latency of a running suite (issue 17): from the
// information store acknowledging a triggering event to the SMTP server accepting the message
// the triggered campaign sends for it.
//
//   --mode=seed   creates --customers customers through the information store (an email address
//                 sr-<nonce>-<i>@bench.example, a first name, email marketing consent granted) and
//                 writes "<id> <email>" a line to --ids-file; the first --background of them take
//                 the background events, the others are trigger customers, each triggered once.
//   --mode=setup  saves the segment "abandoned-carts" (events.count("cart_abandoned", 1d) > 0), an
//                 email template in personalisation and a triggered campaign on the segment
//                 through segmentation, and launches it.
//   --mode=run    for --duration (after --warmup): --rate triggers a second, open loop, each a
//                 RecordEvents call of one cart_abandoned event for the next trigger customer from
//                 line --first, and --background-rate events a second (page_view, product_view,
//                 search) over the background customers in calls of --batch. Each trigger's
//                 acknowledgement time (system clock) is kept; then the SMTP server's store
//                 (--smtp-dir, tests/support/smtp_server.py: msg-N.json with rcpt_tos and
//                 accepted_at) is read until every measured trigger's mail is in or
//                 --settle-timeout passes. Latency = accepted_at - acknowledged, per trigger.
// Prints one JSON object: p50, p90, p99, max (ms), mails missing, write p99, achieved rates.
#include <dirent.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "customer_seed.h"
#include "ecrm/config/flags.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/personalisation/v1/personalisation.grpc.pb.h"
#include "ecrm/segmentation/v1/segmentation.grpc.pb.h"

namespace {

namespace iv1 = ecrm::infostore::v1;
namespace sv1 = ecrm::segmentation::v1;
namespace pv1 = ecrm::personalisation::v1;
namespace cv1 = ecrm::common::v1;
using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "ecrm-sense-respond-bench: %s\n", what.c_str());
  std::exit(1);
}

using ecrm::bench::Context;
using ecrm::bench::RecordBatch;

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void Seed(iv1::InformationStore::Stub& stub, int64_t customers, const std::string& ids_file, int threads) {
  const std::string nonce = absl::StrCat(absl::ToUnixSeconds(absl::Now()));
  auto email = [&](int64_t i) { return absl::StrCat("sr-", nonce, "-", i, "@bench.example"); };
  const auto start = Clock::now();
  const std::vector<std::string> ids = ecrm::bench::SeedCustomers(
      stub, customers, threads,
      [&](int64_t i) {
        iv1::UpsertCustomerRequest req;
        auto* ident = req.add_identifiers();
        ident->set_type(cv1::IDENTIFIER_TYPE_EMAIL);
        ident->set_value(email(i));
        req.mutable_profile()->set_first_name(absl::StrCat("Shopper", i));
        return req;
      },
      [](int64_t) { return true; }, cv1::TOUCHPOINT_WEB);
  std::ofstream out(ids_file);
  for (int64_t i = 0; i < customers; ++i) out << ids[static_cast<size_t>(i)] << " " << email(i) << "\n";
  if (!out) Die("cannot write " + ids_file);
  std::printf("{\"bench\":\"sense_respond_seed\",\"customers\":%lld,\"seconds\":%.1f}\n", (long long)customers,
              std::chrono::duration<double>(Clock::now() - start).count());
}

void Setup(const std::string& segmentation, const std::string& personalisation) {
  auto seg = sv1::Segmentation::NewStub(grpc::CreateChannel(segmentation, grpc::InsecureChannelCredentials()));
  auto pz = pv1::Personalisation::NewStub(grpc::CreateChannel(personalisation, grpc::InsecureChannelCredentials()));
  sv1::CreateSegmentRequest segment;
  segment.mutable_segment()->set_name("abandoned-carts");
  segment.mutable_segment()->set_rule("events.count(\"cart_abandoned\", 1d) > 0");
  sv1::Segment saved;
  grpc::Status s = seg->CreateSegment(Context(absl::Seconds(60)).get(), segment, &saved);
  if (!s.ok()) Die("saving the segment: " + s.error_message());
  pv1::CreateTemplateRequest tpl;
  tpl.mutable_template_()->set_name("cart reminder");
  tpl.mutable_template_()->set_channel(cv1::CHANNEL_EMAIL);
  tpl.mutable_template_()->set_subject("Your cart is waiting, {{profile.first_name}}");
  tpl.mutable_template_()->set_text_body(
      "Hi {{profile.first_name}}, your cart is still here. Leave: {{unsubscribe_url}}");
  pv1::Template t;
  s = pz->CreateTemplate(Context(absl::Seconds(30)).get(), tpl, &t);
  if (!s.ok()) Die("saving the template: " + s.error_message());
  sv1::CreateCampaignRequest create;
  sv1::Campaign* c = create.mutable_campaign();
  c->set_name("cart reminder");
  c->set_type(sv1::CAMPAIGN_TYPE_TRIGGERED);
  c->set_trigger_segment_id(saved.id());
  c->mutable_channel_policy()->add_channels(cv1::CHANNEL_EMAIL);
  c->set_template_id(t.id());
  sv1::Campaign created;
  s = seg->CreateCampaign(Context(absl::Seconds(30)).get(), create, &created);
  if (!s.ok()) Die("saving the campaign: " + s.error_message());
  sv1::LaunchCampaignRequest launch;
  launch.set_id(created.id());
  launch.set_request_id("sense-respond-bench");
  sv1::Campaign launched;
  s = seg->LaunchCampaign(Context(absl::Seconds(30)).get(), launch, &launched);
  if (!s.ok()) Die("launching the campaign: " + s.error_message());
  std::printf("{\"bench\":\"sense_respond_setup\",\"segment\":\"%s\",\"campaign\":\"%s\"}\n", saved.id().c_str(),
              launched.id().c_str());
}

// Accept times of the mails in the SMTP server's store, by recipient; `seen` is the number of
// files already read (the store only grows).
void ReadMails(const std::string& dir, int64_t& seen, std::map<std::string, double>& accepted) {
  for (;;) {
    const std::string path = absl::StrFormat("%s/msg-%05d.json", dir, seen + 1);
    std::ifstream in(path);
    if (!in) return;
    std::stringstream text;
    text << in.rdbuf();
    nlohmann::json meta;
    try {
      meta = nlohmann::json::parse(text.str());
    } catch (const std::exception&) {
      return;  // written atomically; unreadable means not there yet
    }
    ++seen;
    for (const auto& rcpt : meta["rcpt_tos"])
      accepted.emplace(rcpt.get<std::string>(), meta["accepted_at"].get<double>());
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string infostore = "127.0.0.1:50051", segmentation = "127.0.0.1:50052", personalisation = "127.0.0.1:50053",
              mode = "run", ids_file, smtp_dir, acks_file;
  int64_t customers = 20000, background = 5000, first = 0, batch = 100, workers = 16;
  double rate = 200, background_rate = 5000;
  absl::Duration duration = absl::Seconds(30), warmup = absl::Seconds(5), settle = absl::Seconds(60),
                 timeout = absl::Seconds(10);
  ecrm::config::Flags flags("ecrm-sense-respond-bench",
                            "time from a triggering event's acknowledgement to the triggered mail's acceptance");
  flags.AddString("infostore", &infostore, "host:port of ecrm-infostore");
  flags.AddString("segmentation", &segmentation, "host:port of ecrm-segmentation (setup)");
  flags.AddString("personalisation", &personalisation, "host:port of ecrm-personalisation (setup)");
  flags.AddString("mode", &mode, "seed, setup or run");
  flags.AddString("ids-file", &ids_file, "\"<customer id> <email>\" a line (seed writes it; run reads it)");
  flags.AddString("smtp-dir", &smtp_dir, "run: the directory smtp_server.py stores the mail it accepts in");
  flags.AddString(
      "acks-file", &acks_file,
      "run: also write \"<customer id> <email> <acknowledged, Unix seconds>\" a measured trigger to this file "
      "(to break the latency down by stage against the engines' databases)");
  flags.AddInt("customers", &customers, "seed: customers to create");
  flags.AddInt("background", &background, "the first this many customers of --ids-file take the background events");
  flags.AddInt("first", &first, "run: line of --ids-file the first trigger customer is taken from (>= --background)");
  flags.AddDouble("rate", &rate, "run: triggers a second");
  flags.AddDouble("background-rate", &background_rate, "run: background events a second");
  flags.AddInt("batch", &batch, "run: background events per RecordEvents call");
  flags.AddInt("workers", &workers, "run: threads making the calls");
  flags.AddDuration("duration", &duration, "run: measured time");
  flags.AddDuration("warmup", &warmup, "run: time at the same load before measuring");
  flags.AddDuration("settle-timeout", &settle, "run: how long after the last trigger its mails may take to arrive");
  flags.AddDuration("timeout", &timeout, "deadline of each call");
  if (std::optional<int> exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  if (mode == "setup") {
    Setup(segmentation, personalisation);
    return 0;
  }
  if (ids_file.empty()) Die("--ids-file is required");
  auto store = iv1::InformationStore::NewStub(grpc::CreateChannel(infostore, grpc::InsecureChannelCredentials()));
  if (mode == "seed") {
    Seed(*store, customers, ids_file, 16);
    return 0;
  }
  if (mode != "run") Die("--mode must be seed, setup or run");
  if (smtp_dir.empty()) Die("--smtp-dir is required");
  if (rate <= 0 || background_rate < 0 || batch < 1 || batch > 1000 || workers < 2) {
    Die("--rate must be > 0, --background-rate >= 0, --batch 1 to 1,000, --workers >= 2");
  }
  std::vector<std::pair<std::string, std::string>> ids;
  {
    std::ifstream in(ids_file);
    for (std::string id, email; in >> id >> email;) ids.emplace_back(id, email);
  }
  const double total_s = absl::ToDoubleSeconds(warmup + duration);
  const int64_t triggers = static_cast<int64_t>(rate * total_s);
  if (background < 1 || first < background || first + triggers > static_cast<int64_t>(ids.size())) {
    Die(absl::StrCat("the run needs ", triggers, " trigger customers from line ", first, " (after ", background,
                     " background ones) but ", ids_file, " has ", ids.size()));
  }
  int64_t mails_before = 0;
  std::map<std::string, double> accepted;
  ReadMails(smtp_dir, mails_before, accepted);
  accepted.clear();

  // Two open-loop schedules on one clock: trigger i at i / rate, background call j at j * batch /
  // background_rate. Workers take the earliest due call.
  const std::string nonce = absl::StrCat(absl::ToUnixNanos(absl::Now()));
  const int64_t calls = background_rate > 0 ? static_cast<int64_t>(background_rate * total_s / batch) : 0;
  const auto start = Clock::now() + std::chrono::milliseconds(100);
  const auto measure_from = start + absl::ToChronoNanoseconds(warmup);
  auto trigger_at = [&](int64_t i) {
    return start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(i / rate));
  };
  auto call_at = [&](int64_t j) {
    return start + std::chrono::duration_cast<Clock::duration>(
                       std::chrono::duration<double>(static_cast<double>(j * batch) / background_rate));
  };
  std::mutex mu;
  int64_t next_trigger = 0, next_call = 0;
  std::vector<double> acked_at(static_cast<size_t>(triggers), 0);  // Unix seconds; 0: failed
  std::vector<double> write_ms;
  std::atomic<int64_t> trigger_errors{0}, background_errors{0}, background_events{0};
  auto worker = [&] {
    for (;;) {
      bool is_trigger;
      int64_t n;
      Clock::time_point due;
      {
        std::lock_guard lock(mu);
        const bool t_left = next_trigger < triggers, c_left = next_call < calls;
        if (!t_left && !c_left) return;
        is_trigger = t_left && (!c_left || trigger_at(next_trigger) <= call_at(next_call));
        n = is_trigger ? next_trigger++ : next_call++;
        due = is_trigger ? trigger_at(n) : call_at(n);
      }
      std::this_thread::sleep_until(due);
      const int64_t now_s = absl::ToUnixSeconds(absl::Now());
      iv1::RecordEventsRequest req;
      if (is_trigger) {
        iv1::Event* e = req.add_events();
        e->set_event_id(absl::StrCat("sr-", nonce, "-t", n));
        e->mutable_customer()->set_customer_id(ids[static_cast<size_t>(first + n)].first);
        e->set_type("cart_abandoned");
        e->mutable_occurred_at()->set_seconds(now_s);
        e->mutable_amount()->set_amount_minor(4999);
        e->mutable_amount()->set_currency("EUR");
      } else {
        static const char* const kTypes[] = {"page_view", "page_view", "product_view", "search"};
        for (int64_t k = 0; k < batch; ++k) {
          iv1::Event* e = req.add_events();
          const uint64_t r = static_cast<uint64_t>(n * batch + k) * 0x9e3779b97f4a7c15ull;
          e->set_event_id(absl::StrCat("sr-", nonce, "-b", n, "-", k));
          e->mutable_customer()->set_customer_id(ids[(r >> 17) % static_cast<uint64_t>(background)].first);
          e->set_type(kTypes[r >> 62]);
          e->mutable_occurred_at()->set_seconds(now_s);
        }
      }
      grpc::Status s = RecordBatch(*store, req, timeout);
      const double acked = static_cast<double>(absl::ToUnixMicros(absl::Now())) / 1e6;
      if (!is_trigger) {
        if (s.ok()) {
          background_events += batch;
        } else if (background_errors++ < 3) {
          std::fprintf(stderr, "background write: %s\n", s.error_message().c_str());
        }
        continue;
      }
      if (!s.ok()) {
        if (trigger_errors++ < 3) std::fprintf(stderr, "trigger write: %s\n", s.error_message().c_str());
        continue;
      }
      std::lock_guard lock(mu);
      acked_at[static_cast<size_t>(n)] = acked;
      if (due >= measure_from) {
        write_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - due).count());
      }
    }
  };
  std::vector<std::thread> pool;
  for (int i = 0; i < workers; ++i) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  const double sent_s = std::chrono::duration<double>(Clock::now() - start).count();

  // The measured triggers (scheduled after the warm-up) and their mails.
  const int64_t first_measured = static_cast<int64_t>(std::ceil(rate * absl::ToDoubleSeconds(warmup)));
  const absl::Time give_up = absl::Now() + settle;
  int64_t mails_seen = mails_before, missing = 0;
  for (;;) {
    ReadMails(smtp_dir, mails_seen, accepted);
    missing = 0;
    for (int64_t i = first_measured; i < triggers; ++i) {
      if (acked_at[static_cast<size_t>(i)] > 0 && !accepted.count(ids[static_cast<size_t>(first + i)].second))
        ++missing;
    }
    if (missing == 0 || absl::Now() > give_up) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  if (!acks_file.empty()) {
    std::ofstream acks(acks_file);
    for (int64_t i = first_measured; i < triggers; ++i) {
      const auto& [id, email] = ids[static_cast<size_t>(first + i)];
      acks << id << " " << email << " " << absl::StrFormat("%.6f", acked_at[static_cast<size_t>(i)]) << "\n";
    }
  }
  std::vector<double> latency_ms;
  for (int64_t i = first_measured; i < triggers; ++i) {
    auto it = accepted.find(ids[static_cast<size_t>(first + i)].second);
    if (acked_at[static_cast<size_t>(i)] > 0 && it != accepted.end()) {
      latency_ms.push_back((it->second - acked_at[static_cast<size_t>(i)]) * 1000);
    }
  }
  std::printf(
      "{\"bench\":\"sense_respond\",\"triggers\":%lld,\"measured\":%lld,\"mails\":%zu,\"missing\":%lld,"
      "\"trigger_errors\":%lld,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f,\"write_p99_ms\":%.1f,"
      "\"trigger_rate\":%.1f,\"background_rate\":%.0f,\"background_errors\":%lld}\n",
      (long long)triggers, (long long)(triggers - first_measured), latency_ms.size(), (long long)missing,
      (long long)trigger_errors.load(), Percentile(latency_ms, 0.5), Percentile(latency_ms, 0.9),
      Percentile(latency_ms, 0.99), Percentile(latency_ms, 1.0), Percentile(write_ms, 0.99),
      static_cast<double>(triggers) / sent_s, static_cast<double>(background_events.load()) / sent_s,
      (long long)background_errors.load());
  return missing == 0 && trigger_errors == 0 ? 0 : 1;
}
