// Scores over a Features filled in-process: RFM cells of a known population, engagement from
// the event days, lifetime values equal to clv.h's functions on the same histories, customers
// without orders, fit failures; and the feed consumer's refit, which re-evaluates the segments
// that read scores and publishes their entries and exits (not on the first refit).
#include "scores.h"

#include <prometheus/registry.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "clv_simulation.h"
#include "ecrm/outbox/outbox.h"
#include "ecrm/testing/process.h"
#include "fakes.h"
#include "feed.h"
#include "schema.h"
#include "segments.h"

namespace ecrm::segmentation {
namespace {

using rules::Field;
using rules::FieldRef;
using rules::Value;

const absl::Time kNow = absl::FromCivil(absl::CivilSecond(2026, 6, 15, 12, 0, 0), absl::UTCTimeZone());
const int64_t kToday = absl::ToUnixSeconds(kNow) / 86400;

infostore::v1::Customer Customer(const std::string& id) {
  infostore::v1::Customer c;
  c.set_id(id);
  c.mutable_profile()->mutable_address()->set_country("GB");
  return c;
}

// 10:00 UTC, `days` days before today.
absl::Time DaysAgo(int64_t days) { return kNow - absl::Hours(24 * days + 2); }
// The noon of a UTC day, where the scores place that day's events.
absl::Time Noon(int64_t days_ago) { return absl::FromUnixSeconds((kToday - days_ago) * 86400 + 43200); }

std::string Text(const Features& f, CustomerNo n, Field field) {
  const Value v = f.Field(n, FieldRef::Builtin(field));
  return v.kind == Value::Kind::kString ? std::string(v.string) : "<missing>";
}
double Number(const Features& f, CustomerNo n, Field field) {
  const Value v = f.Field(n, FieldRef::Builtin(field));
  return v.kind == Value::Kind::kNumber ? v.number : -1;
}

ScoreUpdate Refit(Scores& scores, Features& f, std::vector<CustomerNo>* changed = nullptr) {
  ScoreUpdate u = scores.Compute();
  std::unique_lock lock(f.mutex());
  std::vector<CustomerNo> c = scores.Write(u);
  if (changed != nullptr) *changed = std::move(c);
  return u;
}

// b0 … b9: customer i has i + 1 orders of 10.00, the last one 10 − i days ago: recency,
// frequency and spend all rank i, so r = f = m = 1 + ⌊5i / 10⌋. "browser" only looks around,
// "idle" has done nothing.
void TenBuyers(Features& f) {
  for (int i = 0; i < 10; ++i) {
    const std::string id = absl::StrCat("b", i);
    f.SetCustomer(Customer(id));
    for (int k = 0; k <= i; ++k) f.AddEvent(Event(id, "purchase", DaysAgo(10 - i + 7 * k), 1000));
  }
  f.SetCustomer(Customer("browser"));
  f.AddEvent(Event("browser", "page_view", DaysAgo(2)));
  f.SetCustomer(Customer("idle"));
}

TEST_CASE("RFM quintiles and cells over the customers with an order, none for customers without one") {
  Features f;
  TenBuyers(f);
  Scores scores(f, [] { return kNow; });
  const ScoreUpdate u = Refit(scores, f);
  CHECK(u.customers.size() == 12);
  CHECK(u.buyers == 10);
  const std::vector<std::string> cells = {"lost",           "lost",  "hibernating", "hibernating", "need_attention",
                                          "need_attention", "loyal", "loyal",       "champions",   "champions"};
  for (int i = 0; i < 10; ++i) {
    INFO("b" << i);
    const CustomerNo n = *f.Find(absl::StrCat("b", i));
    const double s = 1 + (5 * i) / 10;
    CHECK(Number(f, n, Field::kRfmR) == s);
    CHECK(Number(f, n, Field::kRfmF) == s);
    CHECK(Number(f, n, Field::kRfmM) == s);
    CHECK(Text(f, n, Field::kRfmCell) == cells[i]);
    absl::StatusOr<CustomerScoreReport> report = scores.Report(absl::StrCat("b", i));
    REQUIRE(report.ok());
    REQUIRE(report->rfm);
    CHECK(report->rfm->r == s);
    CHECK(RfmCellName(report->rfm->cell) == cells[i]);
    CHECK(report->computed_at == kNow);
    CHECK(report->currency == "EUR");
  }
  // The same scores as RfmScorer's over the same inputs.
  std::vector<RfmInput> inputs;
  for (int i = 0; i < 10; ++i) inputs.push_back({DaysAgo(10 - i), i + 1, 1000.0 * (i + 1)});
  absl::StatusOr<RfmScorer> scorer = RfmScorer::Build(inputs);
  REQUIRE(scorer.ok());
  for (int i = 0; i < 10; ++i) {
    CHECK(Number(f, *f.Find(absl::StrCat("b", i)), Field::kRfmR) == scorer->Score(inputs[i]).r);
  }

  for (const std::string id : {"browser", "idle"}) {
    INFO(id);
    const CustomerNo n = *f.Find(id);
    CHECK(f.Field(n, FieldRef::Builtin(Field::kRfmCell)).kind == Value::Kind::kMissing);
    CHECK(f.Field(n, FieldRef::Builtin(Field::kRfmR)).kind == Value::Kind::kMissing);
    CHECK(f.Field(n, FieldRef::Builtin(Field::kClv)).kind == Value::Kind::kMissing);
    absl::StatusOr<CustomerScoreReport> report = scores.Report(id);
    REQUIRE(report.ok());
    CHECK(report->computed_at == kNow);
    CHECK_FALSE(report->rfm);
    CHECK_FALSE(report->probability_alive);
    CHECK_FALSE(report->value);
    REQUIRE(report->engagement);
  }
  CHECK(*scores.Report("browser")->engagement > 0);
  CHECK(*scores.Report("idle")->engagement == 0);

  // Ten customers are too few for the lifetime-value models here (fewer than ten repeat
  // buyers): no value, and that is not an error of the refit.
  CHECK_FALSE(u.spend_fit.ok());
  CHECK(u.valued == 0);

  CHECK(scores.Report("nobody").status().code() == absl::StatusCode::kNotFound);
  CHECK(scores.Report("").status().code() == absl::StatusCode::kInvalidArgument);
  // A customer seen after the refit is known but not scored yet.
  f.SetCustomer(Customer("late"));
  absl::StatusOr<CustomerScoreReport> late = scores.Report("late");
  REQUIRE(late.ok());
  CHECK(late->computed_at == absl::InfinitePast());
  CHECK_FALSE(late->engagement);
  // Erased: gone.
  f.Remove("b9");
  CHECK(scores.Report("b9").status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("engagement is rfm.h's score of the customer's event days, each at its noon, without the engine's own") {
  Features f;
  f.SetCustomer(Customer("e"));
  f.AddEvent(Event("e", "purchase", DaysAgo(0), 1000));
  for (int i = 0; i < 2; ++i) f.AddEvent(Event("e", "message_clicked", DaysAgo(3)));
  for (int i = 0; i < 5; ++i) f.AddEvent(Event("e", "message_opened", DaysAgo(3)));
  f.AddEvent(Event("e", "page_view", DaysAgo(10)));
  f.AddEvent(Event("e", "login", DaysAgo(40)));
  f.AddEvent(Event("e", "page_view", DaysAgo(200)));        // past the 180-day horizon
  f.AddEvent(Event("e", "segment_entered", DaysAgo(1)));    // the engine's own
  f.AddEvent(Event("e", "message_delivered", DaysAgo(3)));  // not the customer's doing
  Scores scores(f, [] { return kNow; });
  Refit(scores, f);
  const std::vector<EngagementEvent> want = {{EngagementKind::kPurchase, Noon(0), 1},
                                             {EngagementKind::kMessageClick, Noon(3), 2},
                                             {EngagementKind::kMessageOpen, Noon(3), 5},
                                             {EngagementKind::kEvent, Noon(10), 1},
                                             {EngagementKind::kEvent, Noon(40), 1}};
  const double expected = EngagementScore(want, kNow);
  CHECK(expected > 60);
  CHECK(Number(f, *f.Find("e"), Field::kEngagement) == expected);
  CHECK(*scores.Report("e")->engagement == expected);
}

// 2,000 customers drawn from the two models, their orders placed on whole days.
struct Simulated {
  std::vector<std::string> ids;
  std::vector<CustomerSummary> summaries;  // as the scores must build them
};

Simulated Simulate(Features& f, int64_t customers, uint64_t seed) {
  SimulationOptions options;
  options.customers = customers;
  options.seed = seed;
  const std::vector<CustomerSummary> drawn =
      SimulateCustomers({.r = 0.25, .alpha = 4, .a = 0.8, .b = 2.5}, {.p = 6, .q = 4, .gamma = 15}, options);
  Simulated out;
  for (size_t i = 0; i < drawn.size(); ++i) {
    const std::string id = absl::StrCat("s", i);
    f.SetCustomer(Customer(id));
    const int64_t first = std::llround(drawn[i].T * 7), last = first - std::llround(drawn[i].t_x * 7);
    const int64_t amount = drawn[i].x > 0 ? std::max<int64_t>(1, std::llround(drawn[i].monetary * 100)) : 2500;
    f.AddEvent(Event(id, "purchase", DaysAgo(first), amount));
    for (int64_t k = 0; k < drawn[i].x; ++k) f.AddEvent(Event(id, "purchase", DaysAgo(last), amount));
    CustomerSummary s;
    s.x = drawn[i].x;
    s.t_x = s.x > 0 ? static_cast<double>(first - last) / 7 : 0;
    s.T = static_cast<double>(first) / 7;
    s.monetary = s.x > 0 ? static_cast<double>(amount) : 0;  // total / orders
    out.ids.push_back(id);
    out.summaries.push_back(s);
  }
  return out;
}

TEST_CASE("lifetime values are clv.h's functions of each customer's history under the models fitted on all") {
  Features f;
  const Simulated sim = Simulate(f, 2000, 7);
  Scores scores(f, [] { return kNow; });
  const ScoreUpdate u = Refit(scores, f);
  REQUIRE(u.purchases_fit.ok());
  REQUIRE(u.spend_fit.ok());
  CHECK(u.buyers == 2000);
  CHECK(u.valued == 2000);

  // The fits over the same histories.
  absl::StatusOr<BgNbdFit> bgnbd = FitBgNbd(sim.summaries);
  absl::StatusOr<GammaGammaFit> gg = FitGammaGamma(sim.summaries);
  REQUIRE(bgnbd.ok());
  REQUIRE(gg.ok());
  CHECK(u.purchases_fit->customers == 2000);
  CHECK(u.purchases->r == Approx(bgnbd->params.r).epsilon(1e-9));
  CHECK(u.purchases->alpha == Approx(bgnbd->params.alpha).epsilon(1e-9));
  CHECK(u.purchases->a == Approx(bgnbd->params.a).epsilon(1e-9));
  CHECK(u.purchases->b == Approx(bgnbd->params.b).epsilon(1e-9));
  CHECK(u.spend->p == Approx(gg->params.p).epsilon(1e-9));
  CHECK(u.spend->q == Approx(gg->params.q).epsilon(1e-9));
  CHECK(u.spend->gamma == Approx(gg->params.gamma).epsilon(1e-9));

  // Each customer's values: the functions at the models the refit used.
  int alive_below_half = 0;
  for (size_t i = 0; i < sim.ids.size(); ++i) {
    INFO(sim.ids[i] << " x=" << sim.summaries[i].x << " t_x=" << sim.summaries[i].t_x << " T=" << sim.summaries[i].T);
    const CustomerSummary& s = sim.summaries[i];
    const double alive = ProbabilityAlive(*u.purchases, s);
    const double near = *ConditionalExpectedPurchases(*u.purchases, s, 90.0 / 7);
    const double year = *ConditionalExpectedPurchases(*u.purchases, s, 52);
    const double spend = ExpectedAverageSpend(*u.spend, s);
    CHECK(Number(f, *f.Find(sim.ids[i]), Field::kClv) == year * spend);
    absl::StatusOr<CustomerScoreReport> r = scores.Report(sim.ids[i]);
    REQUIRE(r.ok());
    REQUIRE(r->probability_alive);
    REQUIRE(r->expected_purchases);
    REQUIRE(r->expected_order_value);
    REQUIRE(r->value);
    CHECK(*r->probability_alive == Approx(alive).epsilon(1e-6));
    CHECK(*r->expected_purchases == Approx(near).epsilon(1e-6));
    CHECK(*r->expected_order_value == Approx(spend).epsilon(1e-6));
    CHECK(*r->value == year * spend);
    if (alive < 0.5) ++alive_below_half;
  }
  CHECK(alive_below_half > 0);  // the population has customers who have probably left
}

TEST_CASE("a failed fit keeps the last model, and a refit of unchanged data changes nothing") {
  Features f;
  const Simulated sim = Simulate(f, 500, 11);
  Scores scores(f, [] { return kNow; });
  std::vector<CustomerNo> changed;
  const ScoreUpdate first = Refit(scores, f, &changed);
  REQUIRE(first.purchases_fit.ok());
  REQUIRE(first.spend_fit.ok());
  CHECK(changed.size() == 500);
  Refit(scores, f, &changed);
  CHECK(changed.empty());

  // Five customers left: too few to fit, the last models are used.
  for (size_t i = 5; i < sim.ids.size(); ++i) f.Remove(sim.ids[i]);
  const ScoreUpdate second = Refit(scores, f, &changed);
  CHECK(second.purchases_fit.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_FALSE(second.spend_fit.ok());
  REQUIRE(second.purchases);
  CHECK(second.purchases->r == first.purchases->r);
  CHECK(second.valued == 5);
  const double value = Number(f, *f.Find(sim.ids[0]), Field::kClv);
  CHECK(value == ExpectedAverageSpend(*first.spend, sim.summaries[0]) *
                     *ConditionalExpectedPurchases(*first.purchases, sim.summaries[0], 52));

  // Never fitted: no value at all.
  Features few;
  Simulate(few, 5, 3);
  Scores none(few, [] { return kNow; });
  const ScoreUpdate u = Refit(none, few);
  CHECK_FALSE(u.purchases_fit.ok());
  CHECK_FALSE(u.purchases);
  CHECK(u.valued == 0);
  CHECK(few.Field(*few.Find("s0"), FieldRef::Builtin(Field::kClv)).kind == Value::Kind::kMissing);
  CHECK_FALSE(none.Report("s0")->probability_alive);
  CHECK(none.Report("s0")->rfm);
}

// Feed changes: a customer's profile, an event `days_ago`.
infostore::v1::Change ProfileChange(const std::string& id) {
  infostore::v1::Change c;
  c.set_kind(infostore::v1::CHANGE_KIND_PROFILE);
  c.set_customer_id(id);
  *c.mutable_customer() = Customer(id);
  return c;
}
infostore::v1::Change EventChange(const std::string& id, const std::string& type, int64_t days_ago,
                                  int64_t amount = 0) {
  infostore::v1::Change c;
  c.set_kind(infostore::v1::CHANGE_KIND_EVENT);
  c.set_customer_id(id);
  *c.mutable_event() = Event(id, type, DaysAgo(days_ago), amount);
  return c;
}
infostore::v1::Change PurchaseChange(const std::string& id, int64_t days_ago) {
  return EventChange(id, "purchase", days_ago, 1000);
}

// TenBuyers' b0 … b9 as feed changes.
std::vector<infostore::v1::Change> TenBuyerChanges() {
  std::vector<infostore::v1::Change> changes;
  for (int i = 0; i < 10; ++i) {
    const std::string id = absl::StrCat("b", i);
    changes.push_back(ProfileChange(id));
    for (int k = 0; k <= i; ++k) changes.push_back(PurchaseChange(id, 10 - i + 7 * k));
  }
  return changes;
}

// One engine's objects over a database, started as main.cc starts them.
struct Engine {
  std::unique_ptr<sql::Database> db;
  Features f;
  std::unique_ptr<Segments> segments;
  NoStore store;
  std::unique_ptr<outbox::Outbox> outbox;
  prometheus::Registry registry;
  std::unique_ptr<SegmentationMetrics> metrics;
  std::unique_ptr<FeedConsumer> feed;
  std::unique_ptr<Scores> scores;
  std::vector<MembershipChange> restored;

  Engine(const std::string& url, const Segments::Clock& clock, FeedOptions options = {}) {
    auto opened = sql::Database::Open(url);
    REQUIRE(opened.ok());
    db = *std::move(opened);
    REQUIRE(db->Migrate("segmentation", kMigrations).ok());
    segments = std::make_unique<Segments>(*db, f, clock);
    outbox = std::make_unique<outbox::Outbox>(*db);
    metrics = std::make_unique<SegmentationMetrics>(registry);
    feed = std::make_unique<FeedConsumer>(*db, f, *segments, store, *outbox, *metrics, options);
    scores = std::make_unique<Scores>(f, clock);
    REQUIRE(feed->Load().ok());
    REQUIRE(feed->LoadScores(*scores).ok());
    REQUIRE(segments->Load(&restored, feed->saved_at()).ok());
  }
  ~Engine() {
    feed.reset();  // before what it uses
  }
  std::vector<std::string> Members(const std::string& segment_id) {
    std::shared_lock lock(f.mutex());
    std::vector<std::string> out;
    for (CustomerNo n : *segments->Members(segment_id)) out.emplace_back(f.Id(n));
    std::sort(out.begin(), out.end());
    return out;
  }
  std::vector<std::string> Restored() {
    std::vector<std::string> out;
    for (const MembershipChange& m : restored) {
      out.push_back(absl::StrCat(m.entered ? "+" : "-", segments->Get(m.segment_id)->name(), " ", f.Id(m.customer)));
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  std::vector<std::string> Published() {
    std::vector<std::string> out;
    absl::StatusOr<std::vector<outbox::OutboxEvent>> pending = outbox->PendingEvents(100);
    if (!pending.ok()) return {pending.status().ToString()};
    for (const auto& e : *pending) out.push_back(absl::StrCat(e.event.type(), " ", e.event.customer().customer_id()));
    std::sort(out.begin(), out.end());
    return out;
  }
};

// Applies `changes` as the feed's next message (`position` counts them across restarts).
void Apply(FeedConsumer& feed, int64_t* position, const std::vector<infostore::v1::Change>& changes) {
  infostore::v1::WatchChangesResponse m;
  for (const auto& c : changes) *m.add_changes() = c;
  m.set_position(++*position);
  REQUIRE(feed.Apply(m).ok());
}

TEST_CASE("a refit moves customers between segments that read scores and publishes it, after the first") {
  testing::TempDir dir;
  const Segments::Clock clock = [] { return kNow; };
  Engine e(absl::StrCat("sqlite://", dir.path(), "/segmentation.db"), clock);
  // Through the feed, as the engine receives them.
  int64_t position = 0;
  Apply(*e.feed, &position, TenBuyerChanges());

  v1::Segment request;
  request.set_name("champions");
  request.set_rule("rfm.cell == \"champions\"");
  absl::StatusOr<v1::Segment> champions = e.segments->Create(request);
  REQUIRE(champions.ok());
  CHECK(champions->size() == 0);  // nobody scored yet
  request.set_name("engaged");
  request.set_rule("engagement > 0 && orders.count >= 1");
  REQUIRE(e.segments->Create(request).ok());

  // The first refit after a start fills them without publishing.
  REQUIRE(e.feed->ApplyScores(*e.scores).ok());
  CHECK(e.Members(champions->id()) == std::vector<std::string>{"b8", "b9"});
  CHECK(e.segments->Get(champions->id())->size() == 2);
  CHECK(e.Published().empty());
  CHECK(e.metrics->score_refits.Value() == 1);
  CHECK(e.metrics->scored_rfm.Value() == 10);

  // b7 buys three times more today: its recency, frequency and spend now rank first, b9's
  // second and b8's third, so b7 becomes a champion (5, 5) and b8 loyal (4, 4).
  Apply(*e.feed, &position, {PurchaseChange("b7", 0), PurchaseChange("b7", 0), PurchaseChange("b7", 0)});
  REQUIRE(e.feed->ApplyScores(*e.scores).ok());
  CHECK(e.Members(champions->id()) == std::vector<std::string>{"b7", "b9"});
  CHECK(e.Published() == std::vector<std::string>{"segment_entered b7", "segment_exited b8"});
  CHECK(e.metrics->score_refits.Value() == 2);
}

TEST_CASE("a restart loads the members and scores saved and publishes only what changed while it was down") {
  testing::TempDir dir;
  const std::string url = absl::StrCat("sqlite://", dir.path(), "/segmentation.db");
  absl::Time now = kNow;
  const Segments::Clock clock = [&now] { return now; };
  int64_t position = 0;
  auto apply = [&](Engine& e, const std::vector<infostore::v1::Change>& changes) {
    Apply(*e.feed, &position, changes);
  };

  std::string champions, recent, gb;
  std::vector<std::string> champions_before, recent_before;
  {
    Engine a(url, clock);
    CHECK(a.restored.empty());
    // b0 … b9: b_i last bought 10 - i days ago.
    apply(a, TenBuyerChanges());
    v1::Segment request;
    for (auto [name, rule, id] : {std::tuple{"champions", "rfm.cell == \"champions\"", &champions},
                                  std::tuple{"recent", "days_since(orders.last_at) <= 12", &recent},
                                  std::tuple{"gb", "profile.address.country == \"GB\"", &gb}}) {
      request.set_name(name);
      request.set_rule(rule);
      absl::StatusOr<v1::Segment> created = a.segments->Create(request);
      REQUIRE(created.ok());
      *id = created->id();
    }
    REQUIRE(a.feed->ApplyScores(*a.scores).ok());
    champions_before = a.Members(champions);
    recent_before = a.Members(recent);
    CHECK(champions_before == std::vector<std::string>{"b8", "b9"});
    CHECK(recent_before.size() == 10);
    // The highest number, then erased: not given out again after the restart.
    apply(a, {ProfileChange("z")});
    CHECK(*a.f.Find("z") == 10);
    infostore::v1::Change erase;
    erase.set_kind(infostore::v1::CHANGE_KIND_ERASE);
    erase.set_customer_id("z");
    apply(a, {erase});
    CHECK(a.Published().empty());
  }

  // Five days pass while it is down: b0, b1 and b2 last bought more than 12 days ago.
  now += absl::Hours(24 * 5);
  {
    Engine b(url, clock);
    CHECK(b.Restored() == std::vector<std::string>{"-recent b0", "-recent b1", "-recent b2"});
    // Each dated when it happened, not when found: when its last purchase became 13 days old.
    for (const MembershipChange& m : b.restored) {
      const std::string id(b.f.Id(m.customer));
      INFO(id);
      CHECK(m.at == kNow + absl::Hours(24 * (3 + (id[1] - '0')) - 2));
    }
    // The scores saved answer at once: no refit since the start.
    CHECK(b.Members(champions) == champions_before);
    absl::StatusOr<CustomerScoreReport> report = b.scores->Report("b9");
    REQUIRE(report.ok());
    CHECK(report->computed_at == kNow);
    REQUIRE(report->rfm);
    CHECK(report->rfm->cell == RfmCell::kChampions);
    CHECK(report->engagement.has_value());
    CHECK(b.Members(gb).size() == 10);
    CHECK(b.Members(recent).size() == 7);
    REQUIRE(b.feed->PublishRestored(b.restored).ok());
    CHECK(b.Published() == std::vector<std::string>{"segment_exited b0", "segment_exited b1", "segment_exited b2"});
    absl::StatusOr<std::vector<outbox::OutboxEvent>> pending = b.outbox->PendingEvents(100);
    REQUIRE(pending.ok());
    for (const auto& e : *pending) {
      if (e.event.customer().customer_id() != "b0") continue;
      CHECK(e.event.occurred_at().seconds() == absl::ToUnixSeconds(kNow + absl::Hours(70)));
    }
    CHECK(b.metrics->exited.Value() == 3);
    apply(b, {ProfileChange("y")});
    CHECK(*b.f.Find("y") == 11);
    CHECK(b.Published().size() == 4);  // and y's entry into gb
  }

  // Published once: a second start finds nothing more, and the customers keep their numbers.
  {
    Engine c(url, clock);
    CHECK(c.restored.empty());
    CHECK(*c.f.Find("b0") == 0);
    CHECK(*c.f.Find("y") == 11);
    CHECK_FALSE(c.f.Find("z"));
    CHECK(c.Members(recent).size() == 7);
    CHECK(c.Members(gb).size() == 11);
    CHECK(c.Members(champions) == champions_before);
    REQUIRE(c.feed->PublishRestored(c.restored).ok());
    CHECK(c.Published().size() == 4);
    // The first refit after the start publishes (the scores were there before it).
    apply(c, {PurchaseChange("b7", 0), PurchaseChange("b7", 0), PurchaseChange("b7", 0)});
    REQUIRE(c.feed->ApplyScores(*c.scores).ok());
    CHECK(c.Members(champions) == std::vector<std::string>{"b7", "b9"});
    CHECK(c.Published().size() == 6);
  }
}

TEST_CASE("events saved apart from the records: a restart loads every customer exactly, old records included") {
  testing::TempDir dir;
  const std::string url = absl::StrCat("sqlite://", dir.path(), "/segmentation.db");
  const Segments::Clock clock = [] { return kNow; };
  int64_t position = 0;
  auto apply = [&](Engine& e, const std::vector<infostore::v1::Change>& changes) {
    Apply(*e.feed, &position, changes);
  };
  auto records = [](Engine& e) {
    std::map<std::string, std::string> out;
    std::shared_lock lock(e.f.mutex());
    for (CustomerNo n : e.f.live()) out[std::string(e.f.Id(n))] = e.f.ToRecord(n).SerializeAsString();
    return out;
  };
  auto count = [](Engine& e, const std::string& table) {
    absl::StatusOr<sql::Result> r = e.db->Execute(absl::StrCat("SELECT COUNT(*) FROM ", table));
    REQUIRE(r.ok());
    return r->front().Int(0);
  };

  std::map<std::string, std::string> before;
  {
    Engine a(url, clock);
    apply(a, {ProfileChange("p1"), ProfileChange("p2")});
    // Events alone: appended to the events log.
    apply(a,
          {EventChange("p1", "page_view", 1), EventChange("p1", "page_view", 2), EventChange("p2", "email_open", 3)});
    apply(a, {EventChange("p3", "page_view", 1)});       // first seen by an event: its record too
    apply(a, {EventChange("p1", "purchase", 4, 2500)});  // the order aggregates: its record too
    apply(a, {EventChange("p1", "page_view", 0), EventChange("p3", "add_to_cart", 0)});
    CHECK(count(a, "customers") == 3);
    CHECK(count(a, "customer_events") == 3);
    infostore::v1::Change erase;
    erase.set_kind(infostore::v1::CHANGE_KIND_ERASE);
    erase.set_customer_id("p2");
    apply(a, {erase});
    CHECK(count(a, "customers") == 2);
    CHECK(count(a, "customer_events") == 2);
    before = records(a);
    CHECK(before.size() == 2);
    // A record saved before the events were kept apart (its events inside, no row of its own).
    Features old;
    old.SetCustomer(Customer("old"));
    old.AddEvent(Event("old", "page_view", DaysAgo(5)));
    const std::string record = old.ToRecord(0).SerializeAsString();
    REQUIRE(a.db->Execute("INSERT INTO customers (customer_id, number, record) VALUES ('old', 10, $1)",
                          {sql::BlobRef{record}})
                .ok());
    before["old"] = record;
  }
  {
    Engine b(url, clock);
    CHECK(records(b) == before);
    CHECK_FALSE(b.f.Find("p2"));
    const CustomerNo p1 = *b.f.Find("p1");
    CHECK(b.f.EventCount(p1, *b.f.FindEventType("page_view"), absl::Hours(24 * 7), kNow) == 3);
    CHECK(b.f.Field(p1, FieldRef::Builtin(Field::kOrdersCount)).number > 0);
    // The old customer's events alone change: logged, and loaded over its record's.
    apply(b, {EventChange("old", "page_view", 0)});
    CHECK(count(b, "customer_events") == 2);
    CHECK(count(b, "customer_events_log") >= 1);
    before = records(b);
  }
  {
    Engine c(url, clock);
    CHECK(records(c) == before);
    CHECK(c.f.EventCount(*c.f.Find("old"), *c.f.FindEventType("page_view"), absl::Hours(24 * 7), kNow) == 2);
  }
}

}  // namespace
}  // namespace ecrm::segmentation

namespace ecrm::segmentation {
namespace {

TEST_CASE("events alone are logged and folded into the customers' rows a slice at a time, and a restart loads them") {
  testing::TempDir dir;
  const std::string url = absl::StrCat("sqlite://", dir.path(), "/segmentation.db");
  const Segments::Clock clock = [] { return kNow; };
  // A round once 12 events are logged, 3 customers' rows a transaction.
  const FeedOptions options{.fold_logged_events = 12, .fold_slice = 3};
  int64_t position = 0;
  auto records = [](Engine& e) {
    std::map<std::string, std::string> out;
    std::shared_lock lock(e.f.mutex());
    for (CustomerNo n : e.f.live()) out[std::string(e.f.Id(n))] = e.f.ToRecord(n).SerializeAsString();
    return out;
  };
  auto count = [](Engine& e, const std::string& sql) {
    absl::StatusOr<sql::Result> r = e.db->Execute(sql);
    REQUIRE(r.ok());
    return r->front().Int(0);
  };
  auto logged = [](Engine& e) {
    absl::StatusOr<std::set<CustomerNo>> numbers = LoggedCustomers(*e.db);
    REQUIRE(numbers.ok());
    return *numbers;
  };

  {
    Engine e(url, clock, options);
    std::vector<infostore::v1::Change> profiles;
    for (int i = 0; i < 8; ++i) profiles.push_back(ProfileChange(absl::StrCat("p", i)));
    Apply(*e.feed, &position, profiles);
  }
  const std::vector<std::string> types = {"page_view", "email_open", "add_to_cart"};
  auto step_changes = [&](int step) {
    std::vector<infostore::v1::Change> changes;
    for (int k = 0; k < 3; ++k) {
      const int i = (step * 5 + k * 3) % 8;
      changes.push_back(EventChange(absl::StrCat("p", i), types[(step + k) % 3], (step + k) % 20));
    }
    if (step % 7 == 3) changes.push_back(PurchaseChange(absl::StrCat("p", step % 8), 1));  // saved whole
    return changes;
  };
  // A restart after every transaction: rows, log and rounds as they were left.
  for (int step = 0; step < 30; ++step) {
    std::map<std::string, std::string> before;
    {
      Engine e(url, clock, options);
      Apply(*e.feed, &position, step_changes(step));
      before = records(e);
    }
    Engine restarted(url, clock, options);
    INFO("step " << step);
    REQUIRE(records(restarted) == before);
  }
  // Running on, the rounds keep the log short.
  {
    Engine e(url, clock, options);
    int64_t most_rows = 0;
    bool dropped = false;  // a round deleted the log rows it covered
    for (int step = 30; step < 70; ++step) {
      const int64_t rows_before = count(e, "SELECT COUNT(*) FROM customer_events_log");
      Apply(*e.feed, &position, step_changes(step));
      const int64_t rows_after = count(e, "SELECT COUNT(*) FROM customer_events_log");
      dropped = dropped || rows_after < rows_before;
      most_rows = std::max(most_rows, rows_after);
    }
    CHECK(dropped);
    CHECK(most_rows <= 12);
    const std::map<std::string, std::string> before = records(e);
    Engine restarted(url, clock, options);
    CHECK(records(restarted) == before);
  }

  // An erasure deletes the customer's events from the log in its transaction.
  Engine e(url, clock, options);
  Apply(*e.feed, &position, {EventChange("p5", "page_view", 0), EventChange("p6", "page_view", 0)});
  const CustomerNo p5 = *e.f.Find("p5");
  REQUIRE(logged(e).contains(p5));
  infostore::v1::Change erase;
  erase.set_kind(infostore::v1::CHANGE_KIND_ERASE);
  erase.set_customer_id("p5");
  Apply(*e.feed, &position, {erase});
  CHECK_FALSE(logged(e).contains(p5));
  CHECK(logged(e).contains(*e.f.Find("p6")));
  const std::map<std::string, std::string> before = records(e);
  Engine restarted(url, clock, options);
  CHECK(records(restarted) == before);
  CHECK_FALSE(restarted.f.Find("p5"));
}

}  // namespace
}  // namespace ecrm::segmentation
