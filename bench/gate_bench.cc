// ecrm-gate-bench: the broadcast engine's send-time gate for one message, in process, as the
// outbox runs it when a delivery comes up (issue 16: gate decision p99 <= 1 ms with the profile
// from the local copies). Per decision, on a random customer of --customers:
//   profile   the customer's profile from the shared Redis profile cache, answered by this
//             process's local copies (the baseline: the floor of every decision);
//   gate      profile + the suppression entries that concern the customer and their addresses
//             (a read transaction on the engine's database) + the decision (consent for channel and
//             purpose, suppression, quiet hours in the customer's time zone);
//   gate+cap  gate + the frequency-cap admission committed (--caps rules; counted durably, as the
//             dispatcher does before a message goes to its channel).
// One thread, decisions back to back; p50/p99 per run, medians of --runs printed as JSON lines.
#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "absl/strings/str_format.h"
#include "bench_util.h"
#include "ecrm/cache/profile_cache.h"
#include "ecrm/cache/redis_client.h"
#include "ecrm/config/flags.h"
#include "ecrm/sql/sql.h"
#include "frequency_caps.h"
#include "gate.h"
#include "profiles.h"
#include "schema.h"
#include "suppressions.h"

namespace {

namespace bc = ecrm::broadcast;
namespace common = ecrm::common::v1;
namespace info = ecrm::infostore::v1;

void Check(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "ecrm-gate-bench: %s\n", what.c_str());
    std::exit(1);
  }
}
void Check(const absl::Status& s, const std::string& what) { Check(s.ok(), what + ": " + s.ToString()); }

std::string CustomerId(int64_t i) { return absl::StrCat("c_gate_", i); }
std::string Email(int64_t i) { return absl::StrCat("customer", i, "@example.com"); }

// Email and SMS, marketing consent granted on both (every 10th withdrew email), a time zone
// from a few, quiet hours 22:00–07:00 for every 4th.
info::Customer MakeCustomer(int64_t i) {
  static const char* kZones[] = {"Europe/London", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney"};
  info::Customer c;
  c.set_id(CustomerId(i));
  c.set_version(1);
  auto* email = c.add_identifiers();
  email->set_type(common::IDENTIFIER_TYPE_EMAIL);
  email->set_value(Email(i));
  auto* phone = c.add_identifiers();
  phone->set_type(common::IDENTIFIER_TYPE_PHONE);
  phone->set_value(absl::StrCat("+4477", 10000000 + i));
  c.mutable_profile()->set_first_name("Ada");
  c.mutable_profile()->set_time_zone(kZones[i % 5]);
  if (i % 4 == 0) {
    auto* q = c.mutable_preferences()->mutable_quiet_hours();
    q->mutable_start()->set_hours(22);
    q->mutable_end()->set_hours(7);
  }
  for (common::Channel ch : {common::CHANNEL_EMAIL, common::CHANNEL_SMS}) {
    auto* consent = c.add_consents();
    consent->set_channel(ch);
    consent->set_purpose(common::PURPOSE_MARKETING);
    consent->set_status(ch == common::CHANNEL_EMAIL && i % 10 == 9 ? info::CONSENT_STATUS_WITHDRAWN
                                                                   : info::CONSENT_STATUS_GRANTED);
    consent->set_source(common::TOUCHPOINT_WEB);
  }
  return c;
}

struct Percentiles {
  double p50 = 0, p99 = 0;
};
Percentiles Of(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[std::min(us.size() - 1, static_cast<size_t>(q * us.size()))]; };
  return {at(0.50), at(0.99)};
}

void Print(const std::string& name, const std::vector<double>& runs) {
  std::vector<std::string> r;
  for (double x : runs) r.push_back(absl::StrFormat("%.1f", x));
  std::printf("{\"bench\":\"%s\",\"unit\":\"us\",\"runs\":[%s],\"median\":%.1f}\n", name.c_str(),
              absl::StrJoin(r, ",").c_str(), ecrm::bench::Median(runs));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string redis_url = "redis://127.0.0.1:6379", database_url, caps_spec = "global=3/7d,email=1/24h";
  int64_t customers = 100000, suppressed = 10000, decisions = 20000, runs = 3;
  ecrm::config::Flags flags("ecrm-gate-bench",
                            "the broadcast gate for one message, in process: profile from the local copies, "
                            "suppressions, decision, cap admission");
  flags.AddString("redis-url", &redis_url, "Redis to use (its keys under ecrm:gatebench are overwritten)");
  flags.AddString("database-url", &database_url, "the engine's database; empty: SQLite in a temporary directory");
  flags.AddString("caps", &caps_spec, "frequency cap rules for the gate+cap figure (as --frequency-caps)");
  flags.AddInt("customers", &customers, "customers in the profile cache (and in the local copies)");
  flags.AddInt("suppressed", &suppressed, "suppressed addresses (hard bounces), spread over the customers");
  flags.AddInt("decisions", &decisions, "decisions per run and figure");
  flags.AddInt("runs", &runs, "runs (the median of each figure is reported)");
  if (std::optional<int> exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;

  auto redis_options = ecrm::cache::ParseRedisUrl(redis_url);
  Check(redis_options.ok(), "bad --redis-url");
  ecrm::cache::RedisClient redis(*redis_options);
  prometheus::Registry registry;
  ecrm::cache::CacheMetrics metrics(registry);
  ecrm::cache::ProfileCacheOptions cache_options;
  cache_options.prefix = "ecrm:gatebench";
  cache_options.local_copies = static_cast<size_t>(customers);
  ecrm::cache::RedisProfileCache cache(redis, metrics, cache_options);
  std::vector<ecrm::cache::ProfileWrite> writes;
  for (int64_t i = 0; i < customers; ++i) {
    info::Customer c = MakeCustomer(i);
    writes.push_back({c.id(), c.version(), c.SerializeAsString(), false});
    if (writes.size() == 1000 || i == customers - 1) {
      cache.Write(writes);  // a rerun finds them stored already (same version): not an error
      writes.clear();
    }
  }
  Check(cache.local_copies_on(), "Redis does not track keys for local copies (CLIENT TRACKING)");

  std::filesystem::path tmp;
  if (database_url.empty()) {
    tmp = std::filesystem::temp_directory_path() / absl::StrCat("ecrm-gate-bench-", getpid());
    std::filesystem::create_directories(tmp);
    database_url = "sqlite://" + (tmp / "broadcast.db").string();
  }
  auto db = ecrm::sql::Database::Open(database_url);
  Check(db.status(), "opening the database");
  Check((*db)->Migrate("broadcast", bc::kMigrations), "migrating");
  Check((*db)->InTransaction([&](ecrm::sql::Connection& c) -> absl::Status {
    for (int64_t i = 0; i < suppressed; ++i) {
      const int64_t who = (i * 7919) % customers;  // spread over the population
      bc::SuppressionEntry e{common::CHANNEL_EMAIL, bc::NormaliseAddress(common::CHANNEL_EMAIL, Email(who)), "",
                             "hard_bounce", 1};
      ECRM_RETURN_IF_ERROR(bc::Suppressions::AddIn(c, e));
    }
    return absl::OkStatus();
  }),
        "adding suppressions");
  auto rules = bc::ParseCapRules(caps_spec);
  Check(rules.status(), "--caps");
  bc::FrequencyCaps caps(bc::CapConfig{*rules});

  bc::Profiles profiles(&cache, nullptr);
  const std::set<common::Channel> available = {common::CHANNEL_EMAIL, common::CHANNEL_SMS, common::CHANNEL_WEB};
  // Email only: a suppressed address or a withdrawn consent suppresses (no other channel to fall to).
  bc::GateRequest request{
      {common::CHANNEL_EMAIL}, common::PURPOSE_MARKETING, ecrm::broadcast::v1::QUIET_HOURS_POLICY_DEFER};
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int64_t> pick(0, customers - 1);
  using Clock = std::chrono::steady_clock;
  auto micros = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::micro>(b - a).count();
  };
  int64_t sequence = 0;
  std::map<int, int64_t> kinds;  // decisions by GateDecision::Kind, over every run
  // One decision; `admit`: the cap admission committed too.
  auto decide = [&](bool admit) {
    common::CustomerRef ref;
    ref.set_customer_id(CustomerId(pick(rng)));
    absl::StatusOr<info::Customer> customer = profiles.Get(ref, absl::Now() + absl::Seconds(1));
    Check(customer.status(), "reading a profile");
    std::vector<std::string> addresses;
    for (common::Channel ch : {common::CHANNEL_EMAIL, common::CHANNEL_SMS}) {
      addresses.push_back(bc::AddressFor(*customer, ch));
    }
    const absl::Time now = absl::Now();
    bc::GateDecision decision;
    Check((*db)->InTransaction(
              [&](ecrm::sql::Connection& c) -> absl::Status {
                ECRM_ASSIGN_OR_RETURN(std::vector<bc::SuppressionEntry> entries,
                                      bc::Suppressions::ForCustomer(c, customer->id(), addresses));
                decision = bc::Decide(*customer, request, entries, available, now);
                return absl::OkStatus();
              },
              ecrm::sql::TxMode::kReadOnly),
          "reading suppressions");
    ++kinds[static_cast<int>(decision.kind)];
    if (!admit || decision.kind != bc::GateDecision::Kind::kSend) return;
    Check((*db)->InTransaction([&](ecrm::sql::Connection& c) -> absl::Status {
      return caps
          .Admit(c, absl::StrCat("d_gate_", getpid(), "_", ++sequence), customer->id(), decision.channel,
                 common::PURPOSE_MARKETING, "newsletter", now)
          .status();
    }),
          "admitting under the caps");
  };
  // Every profile read once: the local copies hold the population, as in an engine that has run.
  for (int64_t i = 0; i < customers; ++i) {
    common::CustomerRef ref;
    ref.set_customer_id(CustomerId(i));
    Check(profiles.Get(ref, absl::Now() + absl::Seconds(1)).status(), "warming the local copies");
  }

  std::vector<double> profile_p50, profile_p99, gate_p50, gate_p99, cap_p50, cap_p99;
  std::vector<double> lat(static_cast<size_t>(decisions));
  // Times `one` over a run's decisions; adds its p50 and p99.
  auto measure = [&](const std::function<void()>& one, std::vector<double>& p50s, std::vector<double>& p99s) {
    for (auto& l : lat) {
      const auto t0 = Clock::now();
      one();
      l = micros(t0, Clock::now());
    }
    const Percentiles p = Of(lat);
    p50s.push_back(p.p50);
    p99s.push_back(p.p99);
  };
  for (int64_t r = 0; r < runs; ++r) {
    measure(
        [&] {
          common::CustomerRef ref;
          ref.set_customer_id(CustomerId(pick(rng)));
          Check(profiles.Get(ref, absl::Now() + absl::Seconds(1)).status(), "reading a profile");
        },
        profile_p50, profile_p99);
    measure([&] { decide(false); }, gate_p50, gate_p99);
    measure([&] { decide(true); }, cap_p50, cap_p99);
    std::fprintf(stderr, "run %lld: profile p99 %.1f us, gate p99 %.1f us, gate+cap p99 %.1f us\n",
                 static_cast<long long>(r + 1), profile_p99.back(), gate_p99.back(), cap_p99.back());
  }
  std::fprintf(stderr, "decisions: send %lld, suppress %lld, defer %lld, fail %lld; local-copy hits %.0f\n",
               static_cast<long long>(kinds[0]), static_cast<long long>(kinds[1]), static_cast<long long>(kinds[2]),
               static_cast<long long>(kinds[3]), metrics.local_hits.Value());
  Print("gate_profile_local_copy_p50", profile_p50);
  Print("gate_profile_local_copy_p99", profile_p99);
  Print("gate_decision_p50", gate_p50);
  Print("gate_decision_p99", gate_p99);
  Print("gate_decision_with_cap_admission_p50", cap_p50);
  Print("gate_decision_with_cap_admission_p99", cap_p99);
  db->reset();
  if (!tmp.empty()) std::filesystem::remove_all(tmp);
  return 0;
}
