// ecrm-segmentation-bench: the segmentation engine at 10 million customers, in process over the
// domain classes (no gRPC). Seeded synthetic customers — 10 profile fields, 3 consents, order
// aggregates, ~20 events of 5 types over the last 90 days each — are loaded through the apply
// path the feed uses (Features::SetCustomer for each customer's state, Features::AddEvent for
// each event, events of 4,096 customers at a time interleaved); then it reports, as JSON lines:
//
//   load             changes applied per second into the features (generation not timed)
//   memory           RSS (from /proc/self/status) and Features::MemoryBytes() per customer
//   preview          EvaluatePopulation of a 5-predicate rule over every customer (median of --runs)
//   segments         100 varied rules each evaluated over every customer with EvaluatePopulation
//   segments_fill    (--through-segments) the same rules saved through Segments (a temp SQLite):
//                    the time of creating them (each fills) and of Refill()
//   feed             (--feed-customers) the real feed path: prepared messages streamed through a
//                    started FeedConsumer (its feed thread applies, its saver group-commits to
//                    SQLite), timed until the last position is saved; a separate population
//   baseline         a plain scan over a vector of --customers uint32 (the machine's speed)
//
// Member counts and a checksum of the members are printed, so two builds can be checked to give
// the same answers.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "bench_util.h"
#include "customer_features.h"
#include "ecrm/config/flags.h"
#include "ecrm/outbox/outbox.h"
#include "ecrm/rules/rule.h"
#include "feed.h"
#include "metrics.h"
#include "population.h"
#include "schema.h"
#include "segment_rules.h"
#include "segments.h"

namespace seg = ecrm::segmentation;
namespace iv1 = ecrm::infostore::v1;
namespace cv1 = ecrm::common::v1;

namespace {

const absl::Time kNow = absl::FromCivil(absl::CivilSecond(2026, 6, 15, 12, 0, 0), absl::UTCTimeZone());
constexpr int64_t kDay = 86400;

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}
double Millis(const std::function<void()>& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return Seconds(start) * 1000;
}

[[noreturn]] void Die(const absl::Status& status) {
  std::fprintf(stderr, "ecrm-segmentation-bench: %s\n", status.ToString().c_str());
  std::exit(1);
}

// A field of /proc/self/status in bytes (VmRSS, VmHWM).
int64_t ProcStatusBytes(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::atoll(line.c_str() + field.size() + 1) * 1024;
  }
  return 0;
}

// {"bench":…,"unit":…,"runs":[…],"median":…,<extra>}: values with one decimal.
void Emit(const std::string& name, const std::string& unit, const std::vector<double>& runs,
          const std::string& extra = "") {
  std::vector<std::string> r;
  for (double x : runs) r.push_back(absl::StrFormat("%.1f", x));
  std::printf("{\"bench\":\"%s\",\"unit\":\"%s\",\"runs\":[%s],\"median\":%.1f%s%s}\n", name.c_str(), unit.c_str(),
              absl::StrJoin(r, ",").c_str(), ecrm::bench::Median(runs), extra.empty() ? "" : ",", extra.c_str());
  std::fflush(stdout);
}

using ecrm::bench::Mix;
using ecrm::bench::Rng;
using ecrm::bench::SegmentRules;

// Synthetic customers: customer i is the same whatever the batch it is generated in.
class Population {
 public:
  Population(uint64_t seed, int64_t events_per_customer) : seed_(seed), events_(events_per_customer) {}

  static std::string Id(uint64_t seed, int64_t i) {
    return absl::StrFormat("c_%016x", Mix(static_cast<uint64_t>(i) ^ (seed * 0x632be59bd9b4e019ULL)));
  }

  // Customers [first, first + count) and their events (the first returned of `events`), the
  // events of the batch interleaved. The messages are reused from batch to batch, every field
  // written again (Clear() would free and allocate their parts each time).
  size_t Batch(int64_t first, int64_t count, std::vector<iv1::Customer>& customers, std::vector<iv1::Event>& events) {
    customers.resize(static_cast<size_t>(count));
    size_t used = 0;
    for (int64_t k = 0; k < count; ++k) {
      Rng rng(seed_ * 1'000'003 + static_cast<uint64_t>(first + k) * 7919);
      iv1::Customer& c = customers[static_cast<size_t>(k)];
      Fill(Id(seed_, first + k), rng, c);
      const int64_t n = events_ <= 0 ? 0 : events_ - events_ / 4 + rng.Below(events_ / 2 + 1);
      for (int64_t e = 0; e < n; ++e) {
        if (used == events.size()) events.emplace_back();
        iv1::Event& ev = events[used++];
        ev.set_customer_id(c.id());
        const int64_t roll = rng.Below(100);
        const char* type = roll < 45   ? "page_view"
                           : roll < 65 ? "product_view"
                           : roll < 80 ? "email_open"
                           : roll < 92 ? "add_to_cart"
                                       : "purchase";
        ev.set_type(type);
        ev.mutable_occurred_at()->set_seconds(absl::ToUnixSeconds(kNow) - rng.Below(90 * kDay));
        if (roll >= 92) {
          ev.mutable_amount()->set_amount_minor(500 + rng.Below(20000));
          ev.mutable_amount()->set_currency("GBP");
        } else {
          ev.clear_amount();
        }
      }
    }
    Rng shuffle(seed_ ^ static_cast<uint64_t>(first));
    for (size_t i = used; i > 1; --i) events[i - 1].Swap(&events[shuffle.Below(static_cast<int64_t>(i))]);
    return used;
  }

 private:
  static void Fill(const std::string& id, Rng& rng, iv1::Customer& c) {
    static const char* const kCountries[] = {"GB", "GB", "GB", "GB", "FR", "DE", "ES", "IT", "NL", "BE",
                                             "IE", "PT", "SE", "DK", "PL", "AT", "CH", "US", "CA", "AU"};
    static const char* const kLocales[] = {"en-GB", "fr-FR", "de-DE", "es-ES", "it-IT", "nl-NL",
                                           "en-US", "pt-PT", "sv-SE", "pl-PL", "da-DK", "en-IE"};
    static const char* const kZones[] = {"Europe/London", "Europe/Paris",  "Europe/Berlin",    "Europe/Madrid",
                                         "Europe/Rome",   "Europe/Dublin", "America/New_York", "Australia/Sydney"};
    const int64_t now = absl::ToUnixSeconds(kNow);
    c.set_id(id);
    auto* p = c.mutable_profile();
    p->set_first_name(absl::StrCat("First", rng.Below(2000)));
    p->set_last_name(absl::StrCat("Last", rng.Below(20000)));
    p->set_gender(static_cast<iv1::Gender>(1 + rng.Below(4)));
    p->set_locale(kLocales[rng.Below(12)]);
    p->set_time_zone(kZones[rng.Below(8)]);
    if (rng.Chance(0.9)) {
      p->set_birth_date(absl::StrFormat("%04d-%02d-%02d", 1940 + rng.Below(66), 1 + rng.Below(12), 1 + rng.Below(28)));
    } else {
      p->clear_birth_date();
    }
    auto* a = p->mutable_address();
    a->set_country(kCountries[rng.Below(20)]);
    a->set_city(absl::StrCat("City", rng.Below(5000)));
    a->set_postal_code(absl::StrFormat("P%05d", rng.Below(200000)));
    c.mutable_preferences()->set_preferred_channel(static_cast<cv1::Channel>(1 + rng.Below(3)));
    const double granted[] = {0.6, 0.3, 0.4};
    c.mutable_consents()->Clear();
    for (int ch = 0; ch < 3; ++ch) {
      auto* consent = c.add_consents();
      consent->set_channel(static_cast<cv1::Channel>(ch + 1));
      consent->set_purpose(cv1::PURPOSE_MARKETING);
      consent->set_status(rng.Chance(granted[ch]) ? iv1::CONSENT_STATUS_GRANTED : iv1::CONSENT_STATUS_WITHDRAWN);
    }
    const int64_t created = now - rng.Below(3 * 365 * kDay);
    c.mutable_created_at()->set_seconds(created);
    auto* b = c.mutable_behaviour();
    b->mutable_first_seen_at()->set_seconds(created);
    b->mutable_last_seen_at()->set_seconds(now - rng.Below(120 * kDay));
    const int64_t orders = rng.Chance(0.4) ? 0 : 1 + rng.Below(8);
    b->set_order_count(orders);
    if (orders > 0) {
      b->mutable_total_spent()->set_amount_minor(orders * (1000 + rng.Below(19000)));
      b->mutable_total_spent()->set_currency("GBP");
      const int64_t last = now - rng.Below(std::min<int64_t>(now - created, 365 * kDay) + 1);
      b->mutable_last_order_at()->set_seconds(last);
      b->mutable_first_order_at()->set_seconds(created + rng.Below(last - created + 1));
    } else {
      b->clear_total_spent();
      b->clear_last_order_at();
      b->clear_first_order_at();
    }
  }

  const uint64_t seed_;
  const int64_t events_;
};

// The 5-predicate rule of issue 14's preview figure.
const char kPreviewRule[] =
    "profile.address.country == \"GB\" && consent.email && orders.count >= 2 && days_since(orders.last_at) <= 90 "
    "&& events.count(\"page_view\", 30d) > 5";

class BenchSchema final : public ecrm::rules::Schema {
 public:
  explicit BenchSchema(seg::Features& f) : f_(f) {}
  std::optional<ecrm::rules::AttributeInfo> FindAttribute(absl::string_view name) const override {
    return f_.FindAttribute(name);
  }
  std::optional<int32_t> FindEventType(absl::string_view name) const override { return f_.InternEventType(name); }
  std::optional<int32_t> FindSegment(absl::string_view) const override { return std::nullopt; }

 private:
  seg::Features& f_;
};

ecrm::rules::Rule CompileOrDie(const std::string& text, seg::Features& f) {
  BenchSchema schema(f);
  absl::StatusOr<ecrm::rules::Rule> rule = ecrm::rules::Compile(text, schema);
  if (!rule.ok()) Die(absl::InvalidArgumentError(absl::StrCat(text, ": ", rule.status().message())));
  return *std::move(rule);
}

// An order-independent checksum of a set of members.
uint64_t Checksum(const Roaring& members) {
  uint64_t sum = members.cardinality();
  for (uint32_t n : members) sum += Mix(n);
  return sum;
}

// Nothing to read: the benchmark feeds FeedConsumer::Apply itself.
class NoInformationStore final : public seg::InformationStore {
 public:
  absl::Status Watch(int64_t, const std::function<absl::Status(const iv1::WatchChangesResponse&)>&) override {
    return absl::UnavailableError("no information store in the benchmark");
  }
  void StopWatching() override {}
  absl::StatusOr<iv1::ListCustomersResponse> ListCustomers(const std::string&, int) override {
    return iv1::ListCustomersResponse();
  }
  absl::StatusOr<iv1::ListEventsResponse> ListEvents(const std::string&, absl::Time, const std::string&) override {
    return iv1::ListEventsResponse();
  }
};

// The change feed as prepared messages, streamed as fast as the consumer takes them. With
// `held_from`, the messages from that index on wait for Release(), then come `per_second`
// messages a second (0: as fast as taken).
class ReplayStore final : public seg::InformationStore {
 public:
  explicit ReplayStore(const std::vector<iv1::WatchChangesResponse>& messages,
                       size_t held_from = std::numeric_limits<size_t>::max(), double per_second = 0)
      : messages_(messages), held_from_(held_from), per_second_(per_second) {}
  absl::Status Watch(int64_t from, const std::function<absl::Status(const iv1::WatchChangesResponse&)>& on) override {
    std::chrono::steady_clock::time_point released;
    for (size_t i = 0; i < messages_.size(); ++i) {
      const iv1::WatchChangesResponse& m = messages_[i];
      if (m.position() <= from) continue;
      if (i == held_from_) {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stopped_.load() || released_; });
        released = std::chrono::steady_clock::now();
      }
      if (i >= held_from_ && per_second_ > 0) {
        std::this_thread::sleep_until(released + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                     std::chrono::duration<double>((i - held_from_) / per_second_)));
      }
      if (stopped_.load()) return absl::CancelledError("stopped");
      if (absl::Status s = on(m); !s.ok()) return s;
    }
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return stopped_.load(); });
    return absl::CancelledError("stopped");
  }
  void Release() {
    {
      std::lock_guard lock(mu_);
      released_ = true;
    }
    cv_.notify_all();
  }
  void StopWatching() override {
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
    }
    cv_.notify_all();
  }
  absl::StatusOr<iv1::ListCustomersResponse> ListCustomers(const std::string&, int) override {
    return iv1::ListCustomersResponse();
  }
  absl::StatusOr<iv1::ListEventsResponse> ListEvents(const std::string&, absl::Time, const std::string&) override {
    return iv1::ListEventsResponse();
  }

 private:
  const std::vector<iv1::WatchChangesResponse>& messages_;
  const size_t held_from_;
  const double per_second_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;  // guarded by mu_
  std::atomic<bool> stopped_{false};
};

// The process's CPU time so far (every thread: the feed's, the saver's, SQLite's checkpointer).
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

std::unique_ptr<ecrm::sql::Database> TempDatabase(const std::string& dir, const std::string& name) {
  const std::string path = absl::StrCat(dir, "/", name, ".db");
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove(absl::StrCat(path, suffix).c_str());
  absl::StatusOr<std::unique_ptr<ecrm::sql::Database>> db = ecrm::sql::Database::Open(absl::StrCat("sqlite://", path));
  if (!db.ok()) Die(db.status());
  if (absl::Status s = (*db)->Migrate("segmentation", seg::kMigrations); !s.ok()) Die(s);
  return *std::move(db);
}

void RemoveDatabase(const std::string& dir, const std::string& name) {
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove(absl::StrCat(dir, "/", name, ".db", suffix).c_str());
}

// FeedConsumer::Apply over `customers` fresh customers, in messages of `batch` changes;
// returns changes/s (message building not timed).
double FeedApply(int64_t customers, int64_t batch, uint64_t seed, int64_t events, const std::string& dir,
                 const std::vector<std::string>& rules, bool per_message, std::string& extra) {
  seg::Features features;
  auto db = TempDatabase(dir, "feed");
  seg::Segments segments(*db, features, [] { return kNow; });
  for (size_t i = 0; i < rules.size(); ++i) {
    ecrm::segmentation::v1::Segment s;
    s.set_name(absl::StrCat("s", i));
    s.set_rule(rules[i]);
    if (auto created = segments.Create(s); !created.ok()) Die(created.status());
  }
  // Every message prepared first (not timed), then streamed through the consumer's own feed and
  // saver threads, timed until the last position is saved.
  Population population(seed + 1, events);
  std::vector<iv1::Customer> cs;
  std::vector<iv1::Event> es;
  std::vector<iv1::WatchChangesResponse> messages(1);
  int64_t position = 0, changes = 0;
  auto add = [&]() -> iv1::Change& {
    if (messages.back().changes_size() >= batch) messages.emplace_back();
    iv1::Change& c = *messages.back().add_changes();
    c.set_sequence(++position);
    messages.back().set_position(position);
    return c;
  };
  constexpr int64_t kBlock = 4096;
  for (int64_t first = 0; first < customers; first += kBlock) {
    const size_t events_in_batch = population.Batch(first, std::min(kBlock, customers - first), cs, es);
    for (const iv1::Customer& c : cs) {
      iv1::Change& change = add();
      change.set_kind(iv1::CHANGE_KIND_PROFILE);
      change.set_customer_id(c.id());
      *change.mutable_customer() = c;
    }
    for (size_t i = 0; i < events_in_batch; ++i) {
      const iv1::Event& e = es[i];
      iv1::Change& change = add();
      change.set_kind(iv1::CHANGE_KIND_EVENT);
      change.set_customer_id(e.customer_id());
      *change.mutable_event() = e;
    }
  }
  changes = position;
  ReplayStore infostore(messages);
  ecrm::outbox::Outbox outbox(*db);
  prometheus::Registry registry;
  seg::SegmentationMetrics metrics(registry);
  seg::FeedConsumer consumer(*db, features, segments, infostore, outbox, metrics);
  if (absl::Status s = consumer.Load(); !s.ok()) Die(s);
  const auto start = std::chrono::steady_clock::now();
  if (per_message) {
    // The baseline: one transaction per message, on the caller's thread (FeedConsumer::Apply).
    for (const iv1::WatchChangesResponse& m : messages) {
      if (absl::Status s = consumer.Apply(m); !s.ok()) Die(s);
    }
  } else {
    consumer.Start();
    if (!consumer.WaitForPosition(position, absl::Hours(1))) Die(absl::DeadlineExceededError("feed not saved"));
  }
  const double seconds = Seconds(start);
  consumer.Stop();
  auto pending = outbox.PendingCount();
  extra = absl::StrCat("\"customers\":", customers, ",\"changes\":", changes, ",\"segments\":", rules.size(),
                       ",\"published\":", pending.ok() ? *pending : -1);
  db.reset();
  RemoveDatabase(dir, "feed");
  return static_cast<double>(changes) / seconds;
}

// Events to customers already saved, as at 20,000 events/s into a live population: `customers`
// fresh customers applied and saved first (not timed), then the `rules` saved as segments (their
// first fill publishes nothing), then `events` events to customers drawn uniformly, in messages of
// `batch`, streamed at `rate` events/s (0: as fast as the consumer takes them), timed until the
// last position is saved. Reports events/s and the process's CPU time per event over that phase.
void FeedEvents(int64_t customers, int64_t batch, uint64_t seed, int64_t events_per_customer, const std::string& dir,
                const std::vector<std::string>& rules, int64_t events, double rate, absl::Duration save_interval) {
  seg::Features features;
  auto db = TempDatabase(dir, "feed_events");
  seg::Segments segments(*db, features, [] { return kNow; });
  Population population(seed + 1, events_per_customer);
  std::vector<iv1::Customer> cs;
  std::vector<iv1::Event> es;
  std::vector<iv1::WatchChangesResponse> messages(1);
  int64_t position = 0;
  auto add = [&]() -> iv1::Change& {
    if (messages.back().changes_size() >= batch) messages.emplace_back();
    iv1::Change& c = *messages.back().add_changes();
    c.set_sequence(++position);
    messages.back().set_position(position);
    return c;
  };
  constexpr int64_t kBlock = 4096;
  std::vector<std::string> ids;
  for (int64_t first = 0; first < customers; first += kBlock) {
    const size_t events_in_batch = population.Batch(first, std::min(kBlock, customers - first), cs, es);
    for (const iv1::Customer& c : cs) {
      iv1::Change& change = add();
      change.set_kind(iv1::CHANGE_KIND_PROFILE);
      change.set_customer_id(c.id());
      *change.mutable_customer() = c;
      ids.push_back(c.id());
    }
    for (size_t i = 0; i < events_in_batch; ++i) {
      iv1::Change& change = add();
      change.set_kind(iv1::CHANGE_KIND_EVENT);
      change.set_customer_id(es[i].customer_id());
      *change.mutable_event() = es[i];
    }
  }
  const int64_t loaded = position;
  messages.emplace_back();  // the events start a message of their own
  const size_t held_from = messages.size() - 1;
  // The latency bench's mix (10% purchases), dated in the last day.
  static const char* const kTypes[] = {"page_view",  "page_view",  "page_view",   "product_view", "product_view",
                                       "email_open", "email_open", "add_to_cart", "add_to_cart",  "purchase"};
  Rng rng(seed ^ 0x5eed);
  for (int64_t i = 0; i < events; ++i) {
    iv1::Change& change = add();
    const std::string& id = ids[static_cast<size_t>(rng.Below(static_cast<int64_t>(ids.size())))];
    const char* type = kTypes[rng.Below(10)];
    change.set_kind(iv1::CHANGE_KIND_EVENT);
    change.set_customer_id(id);
    iv1::Event& e = *change.mutable_event();
    e.set_event_id(absl::StrCat("e", i));
    e.set_customer_id(id);
    e.set_type(type);
    e.mutable_occurred_at()->set_seconds(absl::ToUnixSeconds(kNow) - rng.Below(kDay));
    if (std::string_view(type) == "purchase") {
      e.mutable_amount()->set_amount_minor(500 + rng.Below(20000));
      e.mutable_amount()->set_currency("GBP");
    }
  }
  ReplayStore infostore(messages, held_from, rate > 0 ? rate / static_cast<double>(batch) : 0);
  ecrm::outbox::Outbox outbox(*db);
  prometheus::Registry registry;
  seg::SegmentationMetrics metrics(registry);
  seg::FeedConsumer consumer(*db, features, segments, infostore, outbox, metrics,
                             seg::FeedOptions{.save_interval = save_interval});
  if (absl::Status s = consumer.Load(); !s.ok()) Die(s);
  consumer.Start();
  if (!consumer.WaitForPosition(loaded, absl::Hours(1))) Die(absl::DeadlineExceededError("load not saved"));
  for (size_t i = 0; i < rules.size(); ++i) {
    ecrm::segmentation::v1::Segment s;
    s.set_name(absl::StrCat("s", i));
    s.set_rule(rules[i]);
    if (auto created = segments.Create(s); !created.ok()) Die(created.status());
  }
  auto published_before = outbox.PendingCount();
  const double cpu_start = CpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  infostore.Release();
  if (!consumer.WaitForPosition(position, absl::Hours(1))) Die(absl::DeadlineExceededError("events not saved"));
  const double seconds = Seconds(start), cpu = CpuSeconds() - cpu_start;
  consumer.Stop();
  auto published = outbox.PendingCount();
  const std::string extra =
      absl::StrCat("\"customers\":", customers, ",\"events\":", events, ",\"segments\":", rules.size(),
                   ",\"rate\":", rate, ",\"save_interval_ms\":", absl::ToInt64Milliseconds(save_interval),
                   ",\"seconds\":", absl::StrFormat("%.2f", seconds), ",\"cpu_seconds\":", absl::StrFormat("%.2f", cpu),
                   ",\"published\":", published.ok() && published_before.ok() ? *published - *published_before : -1);
  const std::string name = absl::StrCat("segmentation_feed_events_sqlite", rules.empty() ? "" : "_segments");
  Emit(name, "events/s", {static_cast<double>(events) / seconds}, extra);
  Emit(name + "_cpu", "us/event", {cpu * 1e6 / static_cast<double>(events)}, extra);
  db.reset();
  RemoveDatabase(dir, "feed_events");
}

}  // namespace

int main(int argc, char** argv) {
  int64_t customers = 10'000'000, events = 20, runs = 5, segment_runs = 3, seed = 42, segment_count = 100;
  int64_t feed_customers = 0, feed_batch = 1000, threads = 1, more_threads = 0, feed_events = 0;
  double feed_events_rate = 0;
  absl::Duration feed_save_interval = seg::FeedOptions().save_interval;
  bool through_segments = false, feed_with_segments = false, feed_per_message = false, compact = false;
  std::string dir = "/tmp", extra_rules;
  ecrm::config::Flags flags("ecrm-segmentation-bench", "segmentation features, previews and segments at scale");
  flags.AddInt("customers", &customers, "synthetic customers loaded into the features");
  flags.AddInt("events", &events, "events per customer on average (uniform in ±25%), 5 types, last 90 days");
  flags.AddInt("runs", &runs, "runs of the preview (the median is reported)");
  flags.AddInt("segment-runs", &segment_runs, "runs of the 100-segment evaluation");
  flags.AddInt("segments", &segment_count, "saved segments (varied rules)");
  flags.AddInt("seed", &seed, "seed of the synthetic population and rules");
  flags.AddBool("through-segments", &through_segments,
                "also save the rules through Segments on a temp SQLite database and time its fills and Refill()");
  flags.AddInt("feed-customers", &feed_customers,
               "also apply this many fresh customers through FeedConsumer::Apply (saves to SQLite); 0: skip");
  flags.AddInt("feed-batch", &feed_batch, "changes per feed message");
  flags.AddBool("feed-per-message", &feed_per_message,
                "the feed run saves each message in a transaction of its own on the caller's thread "
                "(FeedConsumer::Apply), the baseline of the started consumer's group commit");
  flags.AddBool("feed-with-segments", &feed_with_segments,
                "the feed run has the segments saved (evaluated per change)");
  flags.AddInt("feed-events", &feed_events,
               "also stream this many events to --feed-customers customers already saved (uniformly drawn, the "
               "latency bench's types, dated today) through a started FeedConsumer, after the segments are saved "
               "(with --feed-with-segments); reports events/s and CPU µs per event; 0: skip");
  flags.AddDouble("feed-events-rate", &feed_events_rate, "events/s of the --feed-events phase; 0: as fast as taken");
  flags.AddDuration("feed-save-interval", &feed_save_interval,
                    "FeedOptions::save_interval of the --feed-events phase (the engine's default otherwise)");
  flags.AddInt("threads", &threads, "threads of each population evaluation (PopulationOptions::threads)");
  flags.AddInt("more-threads", &more_threads, "also measure the preview and the segments on this many threads");
  flags.AddBool("compact", &compact, "compact the events after loading");
  flags.AddString("dir", &dir, "directory for the temporary SQLite databases");
  flags.AddString("rules", &extra_rules, "more rules to preview, separated by ';' (each timed like the preview)");
  if (std::optional<int> exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;

  const int64_t rss_start = ProcStatusBytes("VmRSS");
  uint64_t sink = 0;

  // --- baseline: a plain scan over `customers` uint32 ------------------------------------------
  {
    std::vector<uint32_t> column(static_cast<size_t>(customers));
    Rng rng(static_cast<uint64_t>(seed));
    for (uint32_t& v : column) v = static_cast<uint32_t>(rng.Below(20));
    std::vector<double> ms;
    for (int64_t r = 0; r < std::max<int64_t>(runs, 3); ++r) {
      ms.push_back(Millis([&] {
        int64_t hits = 0;
        for (uint32_t v : column) hits += v == 7 ? 1 : 0;
        sink += static_cast<uint64_t>(hits);
      }));
    }
    Emit("segmentation_baseline_scan_uint32", "ms", ms, absl::StrCat("\"values\":", customers));
  }

  // --- load ---------------------------------------------------------------------------------
  seg::Features features;
  Population population(static_cast<uint64_t>(seed), events);
  int64_t changes = 0, event_count = 0;
  double customer_seconds = 0, event_seconds = 0, generate_seconds = 0;
  {
    std::vector<iv1::Customer> cs;
    std::vector<iv1::Event> es;
    constexpr int64_t kBlock = 4096;
    for (int64_t first = 0; first < customers; first += kBlock) {
      const auto generating = std::chrono::steady_clock::now();
      const size_t events_in_batch = population.Batch(first, std::min(kBlock, customers - first), cs, es);
      generate_seconds += Seconds(generating);
      std::unique_lock lock(features.mutex());
      auto start = std::chrono::steady_clock::now();
      for (const iv1::Customer& c : cs) features.SetCustomer(c);
      customer_seconds += Seconds(start);
      start = std::chrono::steady_clock::now();
      for (size_t i = 0; i < events_in_batch; ++i) features.AddEvent(es[i]);
      event_seconds += Seconds(start);
      changes += static_cast<int64_t>(cs.size() + events_in_batch);
      event_count += static_cast<int64_t>(events_in_batch);
    }
  }
  if (compact) {
    std::unique_lock lock(features.mutex());
    features.CompactEvents();
  }
  const double apply_seconds = customer_seconds + event_seconds;
  Emit("segmentation_load_apply", "changes/s", {static_cast<double>(changes) / apply_seconds},
       absl::StrCat("\"customers\":", customers, ",\"events\":", event_count,
                    ",\"seconds\":", absl::StrFormat("%.1f", apply_seconds),
                    ",\"generate_seconds\":", absl::StrFormat("%.1f", generate_seconds),
                    ",\"customers_per_s\":", absl::StrFormat("%.0f", static_cast<double>(customers) / customer_seconds),
                    ",\"events_per_s\":", absl::StrFormat("%.0f", static_cast<double>(event_count) / event_seconds)));

  // --- memory -------------------------------------------------------------------------------
  {
    const int64_t rss = ProcStatusBytes("VmRSS"), peak = ProcStatusBytes("VmHWM");
    size_t bytes;
    {
      std::shared_lock lock(features.mutex());
      bytes = features.MemoryBytes();
    }
    const auto n = static_cast<double>(customers);
    Emit("segmentation_rss_per_customer", "bytes", {static_cast<double>(rss - rss_start) / n},
         absl::StrCat("\"customers\":", customers, ",\"rss\":", rss, ",\"rss_at_start\":", rss_start,
                      ",\"peak_rss\":", peak, ",\"features_memory_bytes\":", bytes,
                      ",\"features_bytes_per_customer\":", absl::StrFormat("%.1f", static_cast<double>(bytes) / n)));
  }

  // With --more-threads, the preview and the segments are measured again on that many threads.
  std::vector<std::pair<int, std::string>> thread_runs = {{static_cast<int>(threads), ""}};
  if (more_threads > 0)
    thread_runs.emplace_back(static_cast<int>(more_threads), absl::StrCat("_threads", more_threads));

  // --- preview: the 5-predicate rule ----------------------------------------------------------
  for (const auto& [thread_count, suffix] : thread_runs) {
    const ecrm::rules::Rule rule = CompileOrDie(kPreviewRule, features);
    std::vector<double> ms;
    seg::PopulationResult result;
    std::shared_lock lock(features.mutex());
    for (int64_t r = 0; r < runs; ++r) {
      ms.push_back(
          Millis([&] { result = seg::EvaluatePopulation(rule, features, nullptr, kNow, {.threads = thread_count}); }));
    }
    Emit("segmentation_preview_5_predicates" + suffix, "ms", ms,
         absl::StrCat("\"customers\":", customers, ",\"members\":", result.members.cardinality(),
                      ",\"evaluated_one_by_one\":", result.evaluated_one_by_one,
                      ",\"checksum\":", Checksum(result.members)));
  }

  // --- any other rules asked for -------------------------------------------------------------
  for (absl::string_view text : absl::StrSplit(extra_rules, ';', absl::SkipWhitespace())) {
    const ecrm::rules::Rule rule = CompileOrDie(std::string(text), features);
    std::vector<double> ms;
    seg::PopulationResult result;
    std::shared_lock lock(features.mutex());
    for (int64_t r = 0; r < runs; ++r) {
      ms.push_back(Millis([&] {
        result = seg::EvaluatePopulation(rule, features, nullptr, kNow, {.threads = static_cast<int>(threads)});
      }));
    }
    Emit("segmentation_preview_rule", "ms", ms,
         absl::StrCat("\"rule\":\"", absl::StrReplaceAll(text, {{"\"", "\\\""}}), "\",\"members\":",
                      result.members.cardinality(), ",\"evaluated_one_by_one\":", result.evaluated_one_by_one));
  }

  // --- 100 segments through the population evaluator ----------------------------------------
  const std::vector<std::string> texts = SegmentRules(static_cast<uint64_t>(seed), static_cast<int>(segment_count));
  for (const auto& [thread_count, suffix] : thread_runs) {
    std::vector<ecrm::rules::Rule> rules;
    for (const std::string& t : texts) rules.push_back(CompileOrDie(t, features));
    std::vector<double> total_ms, slowest_ms;
    uint64_t checksum = 0, members = 0, one_by_one = 0;
    std::shared_lock lock(features.mutex());
    for (int64_t r = 0; r < segment_runs; ++r) {
      checksum = members = one_by_one = 0;
      double slowest = 0;
      total_ms.push_back(Millis([&] {
        for (const ecrm::rules::Rule& rule : rules) {
          const auto start = std::chrono::steady_clock::now();
          seg::PopulationResult result =
              seg::EvaluatePopulation(rule, features, nullptr, kNow, {.threads = thread_count});
          slowest = std::max(slowest, Seconds(start) * 1000);
          members += result.members.cardinality();
          one_by_one += static_cast<uint64_t>(result.evaluated_one_by_one);
          checksum = checksum * 31 + Checksum(result.members);
        }
      }));
      slowest_ms.push_back(slowest);
    }
    Emit("segmentation_segments_population" + suffix, "ms", total_ms,
         absl::StrCat("\"customers\":", customers, ",\"segments\":", rules.size(), ",\"members\":", members,
                      ",\"evaluated_one_by_one\":", one_by_one, ",\"checksum\":", checksum));
    Emit("segmentation_segments_population_slowest" + suffix, "ms", slowest_ms);
  }

  // --- the same rules saved through Segments ----------------------------------------------
  if (through_segments) {
    auto db = TempDatabase(dir, "segments");
    seg::Segments segments(*db, features, [] { return kNow; });
    std::vector<std::string> ids;
    const double create_ms = Millis([&] {
      for (size_t i = 0; i < texts.size(); ++i) {
        ecrm::segmentation::v1::Segment s;
        s.set_name(absl::StrCat("s", i));
        s.set_rule(texts[i]);
        auto created = segments.Create(s);
        if (!created.ok()) Die(created.status());
        ids.push_back(created->id());
      }
    });
    std::vector<double> refill_ms;
    for (int64_t r = 0; r < segment_runs; ++r) {
      std::unique_lock lock(features.mutex());
      refill_ms.push_back(Millis([&] { segments.Refill(); }));
    }
    uint64_t checksum = 0, members = 0;
    {
      std::shared_lock lock(features.mutex());
      for (const std::string& id : ids) {
        members += segments.Members(id)->cardinality();
        checksum = checksum * 31 + Checksum(*segments.Members(id));
      }
    }
    Emit("segmentation_segments_create", "ms", {create_ms},
         absl::StrCat("\"customers\":", customers, ",\"segments\":", ids.size()));
    Emit("segmentation_segments_refill", "ms", refill_ms,
         absl::StrCat("\"customers\":", customers, ",\"segments\":", ids.size(), ",\"members\":", members,
                      ",\"checksum\":", checksum));
    RemoveDatabase(dir, "segments");
  }

  // --- the real feed path ---------------------------------------------------------------------
  if (feed_customers > 0 && feed_events > 0) {
    FeedEvents(feed_customers, feed_batch, static_cast<uint64_t>(seed), events, dir,
               feed_with_segments ? texts : std::vector<std::string>{}, feed_events, feed_events_rate,
               feed_save_interval);
  } else if (feed_customers > 0) {
    std::string extra;
    const double rate = FeedApply(feed_customers, feed_batch, static_cast<uint64_t>(seed), events, dir,
                                  feed_with_segments ? texts : std::vector<std::string>{}, feed_per_message, extra);
    Emit(absl::StrCat(feed_with_segments ? "segmentation_feed_apply_sqlite_segments" : "segmentation_feed_apply_sqlite",
                      feed_per_message ? "_per_message" : ""),
         "changes/s", {rate}, extra);
  }
  return sink == 42 ? 1 : 0;  // keeps the timed loops from being optimised away
}
