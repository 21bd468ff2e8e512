// ecrm-segmentation-latency-bench: incremental membership latency of a running
// ecrm-segmentation that follows a running ecrm-infostore (issue 14): the time from the
// information store acknowledging a change to GetCustomerSegments showing its effect.
//
//   --mode=seed     creates --customers customers through the information store (UpsertCustomer
//                   with a profile, email/SMS marketing consents through UpdateConsent, ~10
//                   events each over the last 90 days through RecordEvents) and writes their ids,
//                   one a line, to --ids-file.
//   --mode=segments saves --segments segments: "everyone" (`profile.first_name != ""`, which every
//                   seeded customer matches: ecrm-load's segmentation workloads call for its
//                   members), the probe segment (below), and varied rules of 1 to 5 predicates
//                   over every kind of field (the generator of ecrm-segmentation-bench).
//   --mode=changes  --rate changes/s, open loop, over the customers of --ids-file: UpsertCustomer
//                   (a new city), UpdateConsent (email marketing granted or withdrawn) and
//                   RecordEvents of one event, in turn.
//   --mode=events   --rate events/s, open loop, in RecordEvents calls of --batch events.
//
// Every --probe-every-th write (changes) or batch (events) is a probe: it also makes a customer
// who has never been probed match the segment --probe-segment, whose rule must be
//   events.count("latency_probe", 1d) >= 1 || profile.business.company == "latency-probe"
//     || consent.phone.profiling
// (changes: a latency_probe event, that company or that consent, in turn; events: one
// latency_probe event in the batch). Probe customers are taken in order from line
// --probe-first of --ids-file, so runs given disjoint ranges never reuse one. After the write's
// acknowledgement the worker that made it polls GetCustomerSegments for that customer every
// --poll-interval until the answer lists the segment: the latency is from the acknowledgement
// to that answer. A probe not shown within --probe-timeout is a failure.
//
// Each write is one call (a RecordEvents stream of one batch: its acknowledgement is the
// stream's OK), made by one of --workers threads; the schedule is open loop, so a slow store
// delays the writes behind it (reported as write latency from the scheduled time).
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench_util.h"
#include "customer_seed.h"
#include "ecrm/config/flags.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/segmentation/v1/segmentation.grpc.pb.h"
#include "segment_rules.h"

namespace {

namespace iv1 = ecrm::infostore::v1;
namespace sv1 = ecrm::segmentation::v1;
namespace cv1 = ecrm::common::v1;
using Clock = std::chrono::steady_clock;

constexpr const char* kProbeCompany = "latency-probe";
constexpr const char* kProbeEvent = "latency_probe";

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "ecrm-segmentation-latency-bench: %s\n", what.c_str());
  std::exit(1);
}

using ecrm::bench::Context;
using ecrm::bench::Mix;
using ecrm::bench::Parallel;
using ecrm::bench::RecordBatch;
using ecrm::bench::SegmentRules;

double Percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

const char* const kEventTypes[] = {"page_view",  "page_view",  "page_view",   "product_view", "product_view",
                                   "email_open", "email_open", "add_to_cart", "add_to_cart",  "purchase"};

void FillEvent(iv1::Event& e, const std::string& id, const std::string& event_id, const char* type, int64_t occurred_s,
               uint64_t r) {
  e.set_event_id(event_id);
  e.mutable_customer()->set_customer_id(id);
  e.set_type(type);
  e.mutable_occurred_at()->set_seconds(occurred_s);
  if (std::string_view(type) == "purchase") {
    e.mutable_amount()->set_amount_minor(static_cast<int64_t>(500 + r % 20000));
    e.mutable_amount()->set_currency("GBP");
  }
}

void Seed(iv1::InformationStore::Stub& stub, int64_t customers, int64_t events_per_customer,
          const std::string& ids_file, int threads) {
  static const char* const kCountries[] = {"GB", "GB", "GB", "GB", "FR", "DE", "ES", "IT", "NL", "BE",
                                           "IE", "PT", "SE", "DK", "PL", "AT", "CH", "US", "CA", "AU"};
  static const char* const kLocales[] = {"en-GB", "fr-FR", "de-DE", "es-ES", "it-IT", "nl-NL",
                                         "en-US", "pt-PT", "sv-SE", "pl-PL", "da-DK", "en-IE"};
  const std::string nonce = absl::StrCat(absl::ToUnixNanos(absl::Now()));
  const auto start = Clock::now();
  const std::vector<std::string> ids = ecrm::bench::SeedCustomers(
      stub, customers, threads,
      [&](int64_t i) {
        uint64_t r = Mix(static_cast<uint64_t>(i));
        iv1::UpsertCustomerRequest req;
        auto* ident = req.add_identifiers();
        ident->set_type(cv1::IDENTIFIER_TYPE_EMAIL);
        ident->set_value(absl::StrCat("seg-", nonce, "-", i, "@example.com"));
        auto* p = req.mutable_profile();
        p->set_first_name(absl::StrCat("First", r % 2000));
        p->set_last_name(absl::StrCat("Last", (r >> 11) % 20000));
        p->set_gender(static_cast<iv1::Gender>(1 + (r >> 25) % 4));
        p->set_locale(kLocales[(r >> 27) % 12]);
        p->set_time_zone("Europe/London");
        if ((r >> 31) % 10 != 0) {
          p->set_birth_date(
              absl::StrFormat("%04d-%02d-%02d", 1940 + (r >> 35) % 66, 1 + (r >> 42) % 12, 1 + (r >> 46) % 28));
        }
        p->mutable_address()->set_country(kCountries[(r >> 51) % 20]);
        p->mutable_address()->set_city(absl::StrCat("City", (r >> 13) % 5000));
        p->mutable_address()->set_postal_code(absl::StrFormat("P%05d", (r >> 7) % 200000));
        return req;
      },
      [](int64_t) { return false; }, cv1::TOUCHPOINT_WEB);
  const double upsert_s = std::chrono::duration<double>(Clock::now() - start).count();
  // Email marketing granted for ~60%, SMS for ~30%.
  Parallel(customers, threads, [&](int64_t i) {
    uint64_t r = Mix(static_cast<uint64_t>(i) ^ 0x5eed);
    grpc::Status s;
    for (int ch = 0; ch < 2 && s.ok(); ++ch) {
      if ((r >> (8 * ch)) % 10 >= (ch == 0 ? 6u : 3u)) continue;
      s = ecrm::bench::GrantMarketing(stub, ids[static_cast<size_t>(i)],
                                      ch == 0 ? cv1::CHANNEL_EMAIL : cv1::CHANNEL_SMS, cv1::TOUCHPOINT_WEB);
    }
    return s;
  });
  // Events: batches of 1,000 over consecutive customers.
  const int64_t now_s = absl::ToUnixSeconds(absl::Now());
  const int64_t total = customers * events_per_customer;
  Parallel((total + 999) / 1000, std::min(threads, 4), [&](int64_t b) {
    iv1::RecordEventsRequest req;
    for (int64_t k = b * 1000; k < std::min(total, (b + 1) * 1000); ++k) {
      const uint64_t r = Mix(static_cast<uint64_t>(k) ^ 0xe7e7);
      const std::string& id = ids[static_cast<size_t>(k % customers)];
      FillEvent(*req.add_events(), id, absl::StrCat("seed-", nonce, "-", k), kEventTypes[r % 10],
                now_s - 3600 - static_cast<int64_t>((r >> 8) % (90 * 86400)), r >> 20);
    }
    return RecordBatch(stub, req, absl::Seconds(60));
  });
  std::ofstream out(ids_file);
  for (const std::string& id : ids) out << id << "\n";
  if (!out) Die("cannot write " + ids_file);
  std::printf(
      "{\"bench\":\"segmentation_latency_seed\",\"customers\":%lld,\"events\":%lld,\"upserts_per_s\":%.0f,"
      "\"seconds\":%.1f}\n",
      static_cast<long long>(customers), static_cast<long long>(total), static_cast<double>(customers) / upsert_s,
      std::chrono::duration<double>(Clock::now() - start).count());
}

void SaveSegments(sv1::Segmentation::Stub& stub, int64_t count, const std::string& probe_segment) {
  std::vector<std::pair<std::string, std::string>> segments = {
      {"everyone", "profile.first_name != \"\""},
      {probe_segment, absl::StrCat("events.count(\"", kProbeEvent, "\", 1d) >= 1 || profile.business.company == \"",
                                   kProbeCompany, "\" || consent.phone.profiling")}};
  int64_t i = 0;
  for (const std::string& rule : SegmentRules(1, std::max<int64_t>(0, count - 2))) {
    segments.emplace_back(absl::StrFormat("varied-%03d", i++), rule);
  }
  const auto start = Clock::now();
  for (const auto& [name, rule] : segments) {
    auto ctx = Context(absl::Seconds(120));
    sv1::CreateSegmentRequest req;
    req.mutable_segment()->set_name(name);
    req.mutable_segment()->set_rule(rule);
    sv1::Segment out;
    grpc::Status s = stub.CreateSegment(ctx.get(), req, &out);
    if (!s.ok()) Die(absl::StrCat("saving segment ", name, " (", rule, "): ", s.error_message()));
  }
  std::printf("{\"bench\":\"segmentation_latency_segments\",\"segments\":%zu,\"seconds\":%.1f}\n", segments.size(),
              std::chrono::duration<double>(Clock::now() - start).count());
}

}  // namespace

int main(int argc, char** argv) {
  std::string infostore = "127.0.0.1:50051", segmentation = "127.0.0.1:50052", mode = "changes", ids_file, probes_file,
              probe_segment = "latency-probe";
  int64_t segments = 100, customers = 100000, events_per_customer = 10, batch = 100, probe_every = 20, probe_first = 0,
          workers = 64, threads = 16;
  double rate = 1500;
  absl::Duration duration = absl::Seconds(60), warmup = absl::Seconds(2), poll = absl::Milliseconds(1),
                 probe_timeout = absl::Seconds(10), timeout = absl::Seconds(10);
  ecrm::config::Flags flags("ecrm-segmentation-latency-bench",
                            "time from an information store write's acknowledgement to GetCustomerSegments showing it");
  flags.AddString("infostore", &infostore, "host:port of ecrm-infostore");
  flags.AddString("segmentation", &segmentation, "host:port of ecrm-segmentation (following that information store)");
  flags.AddString("mode", &mode, "seed, segments, changes or events");
  flags.AddString("ids-file", &ids_file, "customer ids, one a line (seed writes it; changes and events read it)");
  flags.AddInt("segments", &segments, "segments: how many to save (everyone, the probe segment and varied ones)");
  flags.AddInt("customers", &customers, "seed: customers to create");
  flags.AddInt("events-per-customer", &events_per_customer, "seed: events per customer");
  flags.AddInt("threads", &threads, "seed: concurrent calls");
  flags.AddDouble("rate", &rate, "changes: changes per second; events: events per second");
  flags.AddInt("batch", &batch, "events: events per RecordEvents call");
  flags.AddDuration("duration", &duration, "measured time (probes scheduled in it are measured)");
  flags.AddDuration("warmup", &warmup, "time at the same load before measuring");
  flags.AddInt("probe-every", &probe_every, "every this many writes (changes) or batches (events) is a probe");
  flags.AddInt("probe-first", &probe_first, "line of --ids-file the first probe customer is taken from");
  flags.AddString("probe-segment", &probe_segment, "name of the segment the probes enter (rule above)");
  flags.AddDuration("poll-interval", &poll, "how often a probe customer's segments are read");
  flags.AddDuration("probe-timeout", &probe_timeout, "a probe not shown by then is a failure");
  flags.AddDuration("timeout", &timeout, "deadline of each call");
  flags.AddString(
      "probes-file", &probes_file,
      "changes and events: writes each measured probe as \"<customer id> <scheduled> <acknowledged> <shown>\" "
      "(Unix microseconds; shown 0 if never) to this file");
  flags.AddInt("workers", &workers, "threads making the writes and polling");
  if (std::optional<int> exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  auto seg = sv1::Segmentation::NewStub(grpc::CreateChannel(segmentation, grpc::InsecureChannelCredentials()));
  if (mode == "segments") {
    SaveSegments(*seg, segments, probe_segment);
    return 0;
  }
  if (ids_file.empty()) Die("--ids-file is required");

  auto store = iv1::InformationStore::NewStub(grpc::CreateChannel(infostore, grpc::InsecureChannelCredentials()));
  if (mode == "seed") {
    Seed(*store, customers, events_per_customer, ids_file, static_cast<int>(threads));
    return 0;
  }
  if (mode != "changes" && mode != "events") Die("--mode must be seed, changes or events");
  if (rate <= 0 || batch < 1 || batch > 1000 || probe_every < 1 || workers < 1) {
    Die("--rate must be > 0, --batch 1 to 1,000, --probe-every and --workers >= 1");
  }

  std::vector<std::string> ids;
  {
    std::ifstream in(ids_file);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) ids.push_back(line);
  }
  if (ids.empty()) Die("no customer ids in " + ids_file);

  // The probe segment's id.
  std::string segment_id;
  {
    sv1::ListSegmentsRequest req;
    req.set_page_size(1000);
    do {
      auto ctx = Context(timeout);
      sv1::ListSegmentsResponse resp;
      grpc::Status s = seg->ListSegments(ctx.get(), req, &resp);
      if (!s.ok()) Die("listing segments: " + s.error_message());
      for (const auto& sg : resp.segments())
        if (sg.name() == probe_segment) segment_id = sg.id();
      req.set_page_token(resp.next_page_token());
    } while (!req.page_token().empty());
  }
  if (segment_id.empty()) Die("no segment named " + probe_segment);

  // Writes per second and how many probe customers the run needs.
  const bool events_mode = mode == "events";
  const double calls_per_s = events_mode ? rate / static_cast<double>(batch) : rate;
  const auto interval = std::chrono::duration<double>(1.0 / calls_per_s);
  const auto measure_from = Clock::now() + absl::ToChronoNanoseconds(warmup);
  const auto measure_to = measure_from + absl::ToChronoNanoseconds(duration);
  const auto start = Clock::now();
  const int64_t total_calls = static_cast<int64_t>(calls_per_s * absl::ToDoubleSeconds(warmup + duration));
  const int64_t probes_needed = total_calls / probe_every + 1;
  if (probe_first + probes_needed > static_cast<int64_t>(ids.size())) {
    Die(absl::StrCat("the run needs ", probes_needed, " probe customers from line ", probe_first, " but ", ids_file,
                     " has ", ids.size()));
  }
  const std::string nonce = absl::StrCat(absl::ToUnixNanos(absl::Now()));

  std::mutex mu;
  std::vector<double> write_ms, probe_ms;
  std::vector<std::string> probe_lines;
  // Unix microseconds of a steady clock point.
  const auto steady0 = Clock::now();
  const int64_t unix0 = absl::ToUnixMicros(absl::Now());
  auto unix_us = [&](Clock::time_point t) {
    return unix0 + std::chrono::duration_cast<std::chrono::microseconds>(t - steady0).count();
  };
  int64_t write_errors = 0, probe_write_errors = 0, probe_failures = 0, probes = 0, writes = 0;

  auto work = [&](int64_t n, Clock::time_point scheduled) {
    const bool probe = n % probe_every == 0;
    const int64_t probe_index = probe_first + n / probe_every;
    const std::string& probe_id = ids[static_cast<size_t>(probe_index)];
    const uint64_t r = Mix(static_cast<uint64_t>(n) ^ 0xc4a9);
    const std::string& id = probe ? probe_id : ids[r % ids.size()];
    const int64_t now_s = absl::ToUnixSeconds(absl::Now());
    grpc::Status s;
    // What the write is: changes take the kinds in turn (a probe its own turn of three).
    const int kind = static_cast<int>((probe ? n / probe_every : n) % 3);
    if (events_mode) {
      iv1::RecordEventsRequest req;
      for (int64_t k = 0; k < batch; ++k) {
        const uint64_t rk = Mix(r + static_cast<uint64_t>(k));
        if (probe && k == 0) {
          FillEvent(*req.add_events(), probe_id, absl::StrCat("lat-", nonce, "-", n, "-p"), kProbeEvent, now_s, rk);
        } else {
          FillEvent(*req.add_events(), ids[rk % ids.size()], absl::StrCat("lat-", nonce, "-", n, "-", k),
                    kEventTypes[(rk >> 32) % 10], now_s, rk >> 8);
        }
      }
      s = RecordBatch(*store, req, timeout);
    } else if (kind == 0) {
      iv1::RecordEventsRequest req;
      FillEvent(*req.add_events(), id, absl::StrCat("lat-", nonce, "-", n), probe ? kProbeEvent : kEventTypes[r % 10],
                now_s, r >> 8);
      s = RecordBatch(*store, req, timeout);
    } else if (kind == 1) {
      auto ctx = Context(timeout);
      iv1::UpsertCustomerRequest req;
      req.set_customer_id(id);
      if (probe) {
        req.mutable_profile()->mutable_business()->set_company(kProbeCompany);
      } else {
        req.mutable_profile()->mutable_address()->set_city(absl::StrCat("City", (r >> 16) % 5000));
      }
      iv1::UpsertCustomerResponse resp;
      s = store->UpsertCustomer(ctx.get(), req, &resp);
    } else {
      auto ctx = Context(timeout);
      iv1::UpdateConsentRequest req;
      req.mutable_customer()->set_customer_id(id);
      req.set_channel(probe ? cv1::CHANNEL_PHONE : cv1::CHANNEL_EMAIL);
      req.set_purpose(probe ? cv1::PURPOSE_PROFILING : cv1::PURPOSE_MARKETING);
      req.set_status(probe || (r >> 20) % 2 == 0 ? iv1::CONSENT_STATUS_GRANTED : iv1::CONSENT_STATUS_WITHDRAWN);
      req.set_source(cv1::TOUCHPOINT_WEB);
      req.set_evidence("latency bench");
      iv1::Customer out;
      s = store->UpdateConsent(ctx.get(), req, &out);
    }
    const auto acked = Clock::now();
    const bool measured = scheduled >= measure_from && scheduled < measure_to;
    if (measured) {
      std::lock_guard lock(mu);
      ++writes;
      write_ms.push_back(std::chrono::duration<double, std::milli>(acked - scheduled).count());
      if (!s.ok()) {
        ++write_errors;
        if (write_errors <= 5) std::fprintf(stderr, "write: %s\n", s.error_message().c_str());
      }
    }
    if (!probe) return;
    if (!s.ok()) {
      if (measured) {
        std::lock_guard lock(mu);
        ++probe_write_errors;
      }
      return;
    }
    // Poll until the segment shows.
    const auto give_up = acked + absl::ToChronoNanoseconds(probe_timeout);
    bool shown = false;
    Clock::time_point seen;
    while (!shown) {
      const auto sent = Clock::now();
      if (sent >= give_up) break;
      auto ctx = Context(timeout);
      sv1::GetCustomerSegmentsRequest req;
      req.set_customer_id(probe_id);
      sv1::GetCustomerSegmentsResponse resp;
      grpc::Status ps = seg->GetCustomerSegments(ctx.get(), req, &resp);
      seen = Clock::now();
      if (ps.ok()) {
        for (const std::string& sid : resp.segment_ids()) shown = shown || sid == segment_id;
      }
      if (!shown) std::this_thread::sleep_until(sent + absl::ToChronoNanoseconds(poll));
    }
    if (!measured) return;
    std::lock_guard lock(mu);
    ++probes;
    if (!probes_file.empty()) {
      probe_lines.push_back(
          absl::StrCat(probe_id, " ", unix_us(scheduled), " ", unix_us(acked), " ", shown ? unix_us(seen) : 0));
    }
    if (shown) {
      probe_ms.push_back(std::chrono::duration<double, std::milli>(seen - acked).count());
    } else {
      ++probe_failures;
    }
  };

  const int64_t max_queue = ecrm::bench::OpenLoopPool(start, measure_to, interval, workers, work);

  if (!probes_file.empty()) {
    std::ofstream out(probes_file);
    for (const std::string& line : probe_lines) out << line << "\n";
    if (!out) Die("cannot write " + probes_file);
  }
  const double secs = absl::ToDoubleSeconds(duration);
  const double achieved = static_cast<double>(writes - write_errors) * (events_mode ? batch : 1) / secs;
  const size_t shown = probe_ms.size();
  double p50 = Percentile(probe_ms, 0.5), p90 = Percentile(probe_ms, 0.9), p99 = Percentile(probe_ms, 0.99);
  double max = probe_ms.empty() ? 0 : probe_ms.back();
  double w99 = Percentile(write_ms, 0.99);
  std::printf(
      "{\"bench\":\"segmentation_latency_%s\",\"unit\":\"ms\",\"target_rate\":%.0f,\"achieved_rate\":%.0f,"
      "\"writes\":%lld,\"write_errors\":%lld,\"write_p99_ms\":%.2f,\"max_queue\":%lld,\"probes\":%lld,\"shown\":%zu,"
      "\"failed\":%lld,\"probe_write_errors\":%lld,\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"max\":%.2f}\n",
      mode.c_str(), rate, achieved, static_cast<long long>(writes), static_cast<long long>(write_errors), w99,
      static_cast<long long>(max_queue), static_cast<long long>(probes), shown, static_cast<long long>(probe_failures),
      static_cast<long long>(probe_write_errors), p50, p90, p99, max);
  return probe_failures > 0 || probe_write_errors > 0 ? 2 : 0;
}
