// Campaigns in-process: a temporary SQLite database, customers in the features, a fake
// broadcast engine.
#include "campaigns.h"

#include <prometheus/registry.h>

#include <catch2/catch.hpp>
#include <functional>
#include <mutex>
#include <set>
#include <shared_mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ecrm/testing/process.h"
#include "fakes.h"
#include "feed.h"
#include "metrics.h"
#include "schema.h"
#include "uplift.h"

namespace ecrm::segmentation {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'780'000'000);

class FakeBroadcaster final : public Broadcaster {
 public:
  absl::StatusOr<std::string> Send(const BroadcastOrder& order) override {
    std::lock_guard lock(mu);
    calls.push_back(order);
    if (down) return absl::UnavailableError("broadcast is down");
    if (!refusal.ok()) return refusal;
    return absl::StrCat("b_", order.campaign_id);
  }
  std::mutex mu;
  std::vector<BroadcastOrder> calls;
  bool down = false;
  absl::Status refusal;  // what every order is answered with, if not OK
};

struct Engine {
  ecrm::testing::TempDir dir;
  std::unique_ptr<sql::Database> db;
  Features features;
  std::unique_ptr<Segments> segments;
  FakeBroadcaster broadcaster;
  std::unique_ptr<Campaigns> campaigns;
  absl::Time now = kNow;
  NoStore store;
  std::unique_ptr<outbox::Outbox> outbox;
  prometheus::Registry registry;
  std::unique_ptr<SegmentationMetrics> metrics;
  std::unique_ptr<FeedConsumer> feed;  // Feed()

  Engine() {
    auto opened = sql::Database::Open(absl::StrCat("sqlite://", dir.path(), "/segmentation.db"));
    REQUIRE(opened.ok());
    db = std::move(*opened);
    REQUIRE(db->Migrate("segmentation", kMigrations).ok());
    for (int i = 0; i < 1000; ++i) {
      infostore::v1::Customer c;
      c.set_id(absl::StrCat("c_", 1000 + i));
      c.mutable_profile()->mutable_address()->set_country(i % 5 < 3 ? "GB" : "FR");
      features.SetCustomer(c);
    }
    segments = std::make_unique<Segments>(*db, features, [this] { return now; });
    REQUIRE(segments->Load().ok());
    campaigns = std::make_unique<Campaigns>(*db, *segments, features, &broadcaster, [this] { return now; });
    REQUIRE(campaigns->Load().ok());
  }

  std::string Segment(const std::string& name, const std::string& rule) {
    v1::Segment s;
    s.set_name(name);
    s.set_rule(rule);
    auto created = segments->Create(s);
    REQUIRE(created.ok());
    return created->id();
  }

  v1::Campaign Draft(const std::string& segment, double control) {
    v1::Campaign c;
    c.set_name("win-back");
    c.set_type(v1::CAMPAIGN_TYPE_ONE_OFF);
    c.add_include_segment_ids(segment);
    c.mutable_channel_policy()->add_channels(common::v1::CHANNEL_EMAIL);
    c.set_template_id("t_winback");
    c.set_control_fraction(control);
    c.mutable_attribution_window()->set_seconds(7 * 86400);
    auto created = campaigns->Create(c);
    INFO(created.status());
    REQUIRE(created.ok());
    return *created;
  }

  // A triggered campaign mailing template t_thanks to each customer entering `segment`.
  static v1::Campaign Thanks(const std::string& segment) {
    v1::Campaign c;
    c.set_name("thank you");
    c.set_type(v1::CAMPAIGN_TYPE_TRIGGERED);
    c.set_trigger_segment_id(segment);
    c.mutable_channel_policy()->add_channels(common::v1::CHANNEL_EMAIL);
    c.set_template_id("t_thanks");
    return c;
  }

  v1::Campaign Launch(const std::string& id, const std::string& request_id = "launch-1") {
    v1::LaunchCampaignRequest req;
    req.set_id(id);
    req.set_request_id(request_id);
    auto launched = campaigns->Launch(req);
    INFO(launched.status());
    REQUIRE(launched.ok());
    return *launched;
  }

  // A feed consumer telling the campaigns of what it applies (made on first use).
  FeedConsumer& Feed() {
    if (feed == nullptr) {
      outbox = std::make_unique<outbox::Outbox>(*db);
      metrics = std::make_unique<SegmentationMetrics>(registry);
      feed = std::make_unique<FeedConsumer>(*db, features, *segments, store, *outbox, *metrics);
      feed->SetCampaigns(campaigns.get());
    }
    return *feed;
  }

  void Observe(const infostore::v1::Event& e) {
    std::vector<CampaignOutcome> outcomes = campaigns->Observe(e);
    REQUIRE(db->InTransaction([&](sql::Connection& c) { return Campaigns::SaveOutcomes(c, outcomes); }).ok());
  }
};

infostore::v1::Event Event(const std::string& id, const std::string& customer, const std::string& type, absl::Time at,
                           const std::string& campaign = "", int64_t amount = 0) {
  infostore::v1::Event e;
  e.set_event_id(id);
  e.set_customer_id(customer);
  e.set_type(type);
  e.mutable_occurred_at()->set_seconds(absl::ToUnixSeconds(at));
  if (!campaign.empty()) (*e.mutable_properties())["campaign_id"].set_string_value(campaign);
  if (amount != 0) {
    e.mutable_amount()->set_amount_minor(amount);
    e.mutable_amount()->set_currency("EUR");
  }
  return e;
}

TEST_CASE("a campaign is checked field by field before it is saved") {
  Engine e;
  const std::string gb = e.Segment("gb", "profile.address.country == \"GB\"");
  v1::Campaign c = e.Draft(gb, 0.2);
  CHECK(c.state() == v1::CAMPAIGN_STATE_DRAFT);
  CHECK(c.goal_event_type() == "purchase");
  CHECK(c.purpose() == common::v1::PURPOSE_MARKETING);

  auto refused = [&](std::function<void(v1::Campaign&)> change, absl::StatusCode code, const std::string& field) {
    v1::Campaign bad = c;
    change(bad);
    auto r = e.campaigns->Create(bad);
    INFO(field << ": " << r.status());
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == code);
    CHECK(absl::StartsWith(r.status().message(), field));
  };
  refused([](v1::Campaign& b) { b.set_control_fraction(0.6); }, absl::StatusCode::kInvalidArgument,
          "campaign.control_fraction");
  refused([](v1::Campaign& b) { b.set_control_fraction(-0.1); }, absl::StatusCode::kInvalidArgument,
          "campaign.control_fraction");
  refused([](v1::Campaign& b) { b.add_include_segment_ids("s_nope"); }, absl::StatusCode::kNotFound,
          "campaign.include_segment_ids[1]");
  refused([](v1::Campaign& b) { b.clear_include_segment_ids(); }, absl::StatusCode::kInvalidArgument,
          "campaign.include_segment_ids");
  refused([](v1::Campaign& b) { b.clear_template_id(); }, absl::StatusCode::kInvalidArgument, "campaign.template_id");
  refused([](v1::Campaign& b) { b.set_goal_event_type("Purchase!"); }, absl::StatusCode::kInvalidArgument,
          "campaign.goal_event_type");
  refused([](v1::Campaign& b) { b.mutable_attribution_window()->set_seconds(0); }, absl::StatusCode::kInvalidArgument,
          "campaign.attribution_window");
  refused([](v1::Campaign& b) { b.set_type(v1::CAMPAIGN_TYPE_UNSPECIFIED); }, absl::StatusCode::kInvalidArgument,
          "campaign.type");
  refused([](v1::Campaign& b) { b.set_placement(std::string(101, 'p')); }, absl::StatusCode::kInvalidArgument,
          "campaign.placement");

  // A placement (where the template's offers are decided) is kept and handed to broadcast.
  v1::Campaign with_offers = c;
  with_offers.set_placement("campaign_email");
  auto created = e.campaigns->Create(with_offers);
  REQUIRE(created.ok());
  CHECK(e.campaigns->Get(created->id())->placement() == "campaign_email");
  e.Launch(created->id());
  REQUIRE(e.broadcaster.calls.size() == 1);
  CHECK(e.broadcaster.calls[0].placement == "campaign_email");
}

TEST_CASE("launching freezes the audience, draws the control group by hash and hands the rest to broadcast once") {
  Engine e;
  const std::string gb = e.Segment("gb", "profile.address.country == \"GB\"");
  v1::Campaign draft = e.Draft(gb, 0.2);

  // Broadcast is down at first: the audience is frozen, the launch says to try again.
  e.broadcaster.down = true;
  v1::LaunchCampaignRequest req;
  req.set_id(draft.id());
  req.set_request_id("launch-1");
  auto first = e.campaigns->Launch(req);
  REQUIRE_FALSE(first.ok());
  CHECK(first.status().code() == absl::StatusCode::kUnavailable);
  CHECK(e.campaigns->Get(draft.id())->state() == v1::CAMPAIGN_STATE_RUNNING);

  // Meanwhile the segment changes: the frozen audience does not.
  infostore::v1::Customer moved;
  moved.set_id("c_1000");
  moved.mutable_profile()->mutable_address()->set_country("FR");
  {
    std::unique_lock lock(e.features.mutex());
    const CustomerNo n = e.features.SetCustomer(moved);
    ChangedData what;
    what.profile = true;
    std::vector<MembershipChange> changes;
    e.segments->Apply({{n, what}}, changes);
    REQUIRE(changes.size() == 1);  // c_1000 left the segment
  }

  e.broadcaster.down = false;
  v1::Campaign launched = e.Launch(draft.id());
  CHECK(launched.state() == v1::CAMPAIGN_STATE_RUNNING);
  CHECK(launched.broadcast_id() == "b_" + draft.id());
  REQUIRE(e.broadcaster.calls.size() == 2);
  const BroadcastOrder& order = e.broadcaster.calls.back();
  CHECK(order.idempotency_key == "campaign:" + draft.id());
  CHECK(order.template_id == "t_winback");

  int control = 0;
  std::set<std::string> treatment;
  for (int i = 0; i < 1000; ++i) {
    if (i % 5 >= 3) continue;  // FR
    const std::string id = absl::StrCat("c_", 1000 + i);
    if (InControl(draft.id(), id, 0.2)) {
      ++control;
    } else {
      treatment.insert(id);
    }
  }
  CHECK(std::set<std::string>(order.customer_ids.begin(), order.customer_ids.end()) == treatment);
  CHECK(treatment.size() + control == 600);
  CHECK(control > 80);  // about 120
  CHECK(control < 160);

  // A launched campaign's launch returns it as it is; broadcast is not asked again.
  CHECK(e.Launch(draft.id(), "launch-2").broadcast_id() == launched.broadcast_id());
  CHECK(e.broadcaster.calls.size() == 2);
}

TEST_CASE("the report counts the funnel and the goal events of each group in the attribution window, once each") {
  Engine e;
  const std::string gb = e.Segment("gb", "profile.address.country == \"GB\"");
  v1::Campaign c = e.Launch(e.Draft(gb, 0.5).id());
  std::vector<std::string> treatment, control;
  for (int i = 0; i < 1000; ++i) {
    if (i % 5 >= 3) continue;
    const std::string id = absl::StrCat("c_", 1000 + i);
    (InControl(c.id(), id, 0.5) ? control : treatment).push_back(id);
  }
  REQUIRE(treatment.size() >= 60);
  REQUIRE(control.size() >= 20);
  const absl::Time in_window = kNow + absl::Hours(24);
  for (int i = 0; i < 40; ++i) {
    e.Observe(Event(absl::StrCat("open-", i), treatment[i], "message_opened", in_window, c.id()));
  }
  e.Observe(Event("open-0", treatment[0], "message_opened", in_window, c.id()));  // replayed: once
  e.Observe(Event("other-open", treatment[0], "message_opened", in_window, "cmp_other"));
  for (int i = 0; i < 30; ++i) {
    e.Observe(Event(absl::StrCat("buy-t-", i), treatment[i], "purchase", in_window, "", 1000));
  }
  e.Observe(Event("buy-t-again", treatment[0], "purchase", in_window, "", 500));  // a second order, same customer
  for (int i = 0; i < 10; ++i) {
    e.Observe(Event(absl::StrCat("buy-c-", i), control[i], "purchase", in_window, "", 1000));
  }
  e.Observe(Event("late", treatment[50], "purchase", kNow + absl::Hours(24 * 8), "", 1000));  // after the window
  e.Observe(Event("early", treatment[51], "purchase", kNow - absl::Hours(1), "", 1000));      // before the launch
  e.Observe(Event("outsider", "c_1003", "purchase", in_window, "", 1000));                    // FR: not a member

  e.now = kNow + absl::Hours(48);
  auto report = e.campaigns->Report(c.id());
  REQUIRE(report.ok());
  CHECK(report->audience_size() == 600);
  CHECK(report->treatment().size() == static_cast<int64_t>(treatment.size()));
  CHECK(report->control().size() == static_cast<int64_t>(control.size()));
  CHECK(report->funnel().opened() == 40);
  CHECK(report->treatment().converted() == 30);
  CHECK(report->control().converted() == 10);
  CHECK(report->treatment().revenue().amount_minor() == 30 * 1000 + 500);
  CHECK(report->control().revenue().amount_minor() == 10 * 1000);
  CHECK(report->window_open());

  auto stats = ComputeCampaignStatistics({static_cast<int64_t>(treatment.size()), 30, 30500},
                                         {static_cast<int64_t>(control.size()), 10, 10000});
  REQUIRE(stats.ok());
  CHECK(report->absolute_uplift() == Approx(*stats->absolute_uplift));
  CHECK(report->uplift_ci_low() == Approx(stats->uplift_ci->low));
  CHECK(report->uplift_ci_high() == Approx(stats->uplift_ci->high));
  CHECK(report->p_value() == Approx(*stats->p_value));
  CHECK(report->incremental_revenue().amount_minor() == *stats->incremental_revenue);

  e.now = kNow + absl::Hours(24 * 8);
  CHECK_FALSE(e.campaigns->Report(c.id())->window_open());
}

TEST_CASE("a campaign with an empty control group reports no uplift rather than a made-up one") {
  Engine e;
  const std::string gb = e.Segment("gb", "profile.address.country == \"GB\"");
  v1::Campaign c = e.Launch(e.Draft(gb, 0).id());
  auto report = e.campaigns->Report(c.id());
  REQUIRE(report.ok());
  CHECK(report->control().size() == 0);
  CHECK_FALSE(report->has_absolute_uplift());
  CHECK_FALSE(report->has_p_value());
  CHECK_FALSE(report->has_uplift_ci_low());
}

}  // namespace
}  // namespace ecrm::segmentation

namespace ecrm::segmentation {
namespace {

// A feed message of events, one per customer.
infostore::v1::WatchChangesResponse Events(int64_t position, const std::vector<infostore::v1::Event>& events) {
  infostore::v1::WatchChangesResponse m;
  for (const infostore::v1::Event& ev : events) {
    infostore::v1::Change* change = m.add_changes();
    change->set_kind(infostore::v1::CHANGE_KIND_EVENT);
    change->set_customer_id(ev.customer_id());
    *change->mutable_event() = ev;
  }
  m.set_position(position);
  return m;
}

// A feed message erasing a customer.
infostore::v1::WatchChangesResponse Erase(int64_t position, const std::string& customer) {
  infostore::v1::WatchChangesResponse m;
  infostore::v1::Change* gone = m.add_changes();
  gone->set_kind(infostore::v1::CHANGE_KIND_ERASE);
  gone->set_customer_id(customer);
  m.set_position(position);
  return m;
}

TEST_CASE("the feed consumer tells campaigns of the events it applies, and an erasure forgets the customer's part") {
  Engine e;
  const std::string gb = e.Segment("gb", "profile.address.country == \"GB\"");
  v1::Campaign c = e.Launch(e.Draft(gb, 0.5).id());
  FeedConsumer& feed = e.Feed();

  std::string buyer;
  for (int i = 0; i < 1000 && buyer.empty(); ++i) {
    const std::string id = absl::StrCat("c_", 1000 + i);
    if (i % 5 < 3 && !InControl(c.id(), id, 0.5)) buyer = id;
  }
  const infostore::v1::WatchChangesResponse m =
      Events(1, {Event("open-1", buyer, "message_opened", kNow + absl::Hours(1), c.id()),
                 Event("buy-1", buyer, "purchase", kNow + absl::Hours(2), "", 2500)});
  REQUIRE(feed.Apply(m).ok());
  REQUIRE(feed.Apply(m).ok());  // the same message again (a restart before the position was saved)
  auto report = e.campaigns->Report(c.id());
  REQUIRE(report.ok());
  CHECK(report->funnel().opened() == 1);
  CHECK(report->treatment().converted() == 1);
  CHECK(report->treatment().revenue().amount_minor() == 2500);

  REQUIRE(feed.Apply(Erase(2, buyer)).ok());
  report = e.campaigns->Report(c.id());
  REQUIRE(report.ok());
  CHECK(report->treatment().converted() == 0);
  CHECK(report->audience_size() == 599);
  auto left = e.db->Execute("SELECT COUNT(*) FROM campaign_members WHERE customer_id = $1", {buyer});
  REQUIRE(left.ok());
  CHECK(left->front().Int(0) == 0);
}

TEST_CASE(
    "a triggered campaign sends once per entry into its segment, holds out its control group, and retries "
    "a hand-over with the same key") {
  Engine e;
  const std::string buyers = e.Segment("buyers", "orders.count >= 1");
  v1::Campaign draft = e.Thanks(buyers);
  draft.set_control_fraction(0.2);
  draft.set_goal_event_type("purchase");
  draft.mutable_attribution_window()->set_seconds(7 * 86400);
  auto created = e.campaigns->Create(draft);
  REQUIRE(created.ok());
  const v1::Campaign c = e.Launch(created->id());
  CHECK(c.state() == v1::CAMPAIGN_STATE_RUNNING);
  CHECK(e.broadcaster.calls.empty());  // nothing to send until someone enters

  FeedConsumer& feed = e.Feed();
  int woken = 0;
  e.campaigns->SetOnEntries([&] { ++woken; });

  // 100 customers buy: they enter "buyers" when the engine sees it, an hour later.
  e.now = kNow + absl::Hours(2);
  std::vector<infostore::v1::Event> purchases;
  std::set<std::string> treatment, control;
  for (int i = 0; i < 100; ++i) {
    const std::string id = absl::StrCat("c_", 1000 + i);
    purchases.push_back(Event(absl::StrCat("buy-", i), id, "purchase", kNow + absl::Hours(1), "", 1000));
    (InControl(c.id(), id, 0.2) ? control : treatment).insert(id);
  }
  REQUIRE(feed.Apply(Events(1, purchases)).ok());
  REQUIRE(feed.Apply(Events(1, purchases)).ok());  // the same message again: no new entry
  CHECK(woken == 1);

  e.broadcaster.down = true;
  auto sent = e.campaigns->SendTriggered();
  CHECK(sent.status().code() == absl::StatusCode::kUnavailable);
  e.broadcaster.down = false;
  sent = e.campaigns->SendTriggered();
  REQUIRE(sent.ok());
  CHECK(sent->handed_over == static_cast<int64_t>(treatment.size()));
  REQUIRE(e.broadcaster.calls.size() == 2);
  CHECK(e.broadcaster.calls[0].idempotency_key == e.broadcaster.calls[1].idempotency_key);  // the same batch
  const BroadcastOrder& order = e.broadcaster.calls[1];
  CHECK(std::set<std::string>(order.customer_ids.begin(), order.customer_ids.end()) == treatment);
  CHECK(order.template_id == "t_thanks");
  CHECK(order.campaign_id == c.id());
  sent = e.campaigns->SendTriggered();
  REQUIRE(sent.ok());
  CHECK(sent->handed_over == 0);  // nothing owed twice
  CHECK(e.broadcaster.calls.size() == 2);

  auto report = e.campaigns->Report(c.id());
  REQUIRE(report.ok());
  CHECK(report->treatment().size() == static_cast<int64_t>(treatment.size()));
  CHECK(report->control().size() == static_cast<int64_t>(control.size()));
  // The purchase that made a customer enter is not its conversion (it came before the entry,
  // even when replayed); a purchase a day later converts, in both groups, in the member's window.
  const std::string t = *treatment.begin(), k = *control.begin();
  REQUIRE(feed.Apply(Events(2, {Event("again-t", t, "purchase", kNow + absl::Hours(25), "", 500),
                                Event("again-k", k, "purchase", kNow + absl::Hours(26), "", 700)}))
              .ok());
  report = e.campaigns->Report(c.id());
  REQUIRE(report.ok());
  CHECK(report->treatment().converted() == 1);
  CHECK(report->control().converted() == 1);
  CHECK(report->control().revenue().amount_minor() == 700);

  // The treatment customer leaves (its orders cancelled) and enters again: a second message.
  infostore::v1::WatchChangesResponse out;
  infostore::v1::Change* profile = out.add_changes();
  profile->set_kind(infostore::v1::CHANGE_KIND_PROFILE);
  profile->set_customer_id(t);
  profile->mutable_customer()->set_id(t);  // the store's summary now has no orders
  out.set_position(3);
  REQUIRE(feed.Apply(out).ok());
  REQUIRE(feed.Apply(Events(4, {Event("back", t, "purchase", kNow + absl::Hours(40), "", 900)})).ok());
  sent = e.campaigns->SendTriggered();
  REQUIRE(sent.ok());
  CHECK(sent->handed_over == 1);
  REQUIRE(e.broadcaster.calls.size() == 3);
  CHECK(e.broadcaster.calls[2].customer_ids == std::vector<std::string>{t});
  CHECK(e.broadcaster.calls[2].idempotency_key != e.broadcaster.calls[1].idempotency_key);

  // An entry erased before it was handed over is never sent.
  const std::string late = "c_1500";
  REQUIRE(feed.Apply(Events(5, {Event("late", late, "purchase", kNow + absl::Hours(50), "", 100)})).ok());
  REQUIRE(feed.Apply(Erase(6, late)).ok());
  sent = e.campaigns->SendTriggered();
  REQUIRE(sent.ok());
  CHECK(sent->handed_over == 0);
}

TEST_CASE("triggered messages broadcast refuses for good are kept with the reason and not handed over again") {
  Engine e;
  const std::string buyers = e.Segment("buyers", "orders.count >= 1");
  v1::Campaign draft = e.Thanks(buyers);
  auto created = e.campaigns->Create(draft);
  REQUIRE(created.ok());
  e.Launch(created->id());
  FeedConsumer& feed = e.Feed();
  e.now = kNow + absl::Hours(2);
  auto buy = [&](int64_t position, const std::string& customer) {
    REQUIRE(feed.Apply(Events(position, {Event(absl::StrCat("buy-", customer), customer, "purchase",
                                               kNow + absl::Hours(1), "", 1000)}))
                .ok());
  };

  // Overloaded is for now: the batch is tried again, and taken once broadcast can.
  buy(1, "c_1000");
  e.broadcaster.refusal = absl::ResourceExhaustedError("too many broadcasts at once");
  auto sent = e.campaigns->SendTriggered();
  CHECK(sent.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(absl::StrContains(sent.status().message(), created->id()));
  e.broadcaster.refusal = absl::OkStatus();
  sent = e.campaigns->SendTriggered();
  REQUIRE(sent.ok());
  CHECK(sent->handed_over == 1);
  CHECK(e.broadcaster.calls.size() == 2);

  // A template broadcast does not know is for good: counted, kept with the reason, never again.
  buy(2, "c_1001");
  buy(3, "c_1002");
  e.broadcaster.refusal = absl::NotFoundError("content.template_id: no template \"t_thanks\"");
  sent = e.campaigns->SendTriggered();
  REQUIRE(sent.ok());
  CHECK(sent->refused == 2);
  CHECK(sent->handed_over == 0);
  CHECK(e.broadcaster.calls.size() == 3);
  auto kept = e.db->Execute("SELECT customer_id, refused FROM campaign_sends WHERE refused IS NOT NULL ORDER BY 1");
  REQUIRE(kept.ok());
  REQUIRE(kept->size() == 2);
  CHECK(kept->front().Text(0) == "c_1001");
  CHECK(absl::StrContains(kept->front().Text(1), "no template"));
  e.broadcaster.refusal = absl::OkStatus();
  sent = e.campaigns->SendTriggered();
  REQUIRE(sent.ok());
  CHECK(sent->handed_over + sent->refused == 0);
  CHECK(e.broadcaster.calls.size() == 3);

  // A later entry is handed over as any other.
  buy(4, "c_1003");
  sent = e.campaigns->SendTriggered();
  REQUIRE(sent.ok());
  CHECK(sent->handed_over == 1);
  REQUIRE(e.broadcaster.calls.size() == 4);
  CHECK(e.broadcaster.calls[3].customer_ids == std::vector<std::string>{"c_1003"});
}

TEST_CASE("an offer-only campaign hands its offer to broadcast, launched and triggered") {
  Engine e;
  const std::string gb = e.Segment("gb", "profile.address.country == \"GB\"");
  v1::Campaign c;
  c.set_name("ten off");
  c.set_type(v1::CAMPAIGN_TYPE_ONE_OFF);
  c.add_include_segment_ids(gb);
  c.mutable_channel_policy()->add_channels(common::v1::CHANNEL_EMAIL);
  c.set_offer_id("off_10");
  c.set_control_fraction(0.1);
  auto created = e.campaigns->Create(c);
  INFO(created.status());
  REQUIRE(created.ok());
  CHECK(created->offer_id() == "off_10");
  CHECK(created->template_id().empty());
  // A placement decides a template's offers: not with an offer alone.
  v1::Campaign placed = c;
  placed.set_placement("campaign_email");
  CHECK(e.campaigns->Create(placed).status().code() == absl::StatusCode::kInvalidArgument);
  e.Launch(created->id());
  REQUIRE(e.broadcaster.calls.size() == 1);
  CHECK(e.broadcaster.calls[0].offer_id == "off_10");
  CHECK(e.broadcaster.calls[0].template_id.empty());
  CHECK(e.broadcaster.calls[0].placement.empty());
  CHECK_FALSE(e.broadcaster.calls[0].customer_ids.empty());

  // Triggered: each entry's hand-over carries the offer too.
  const std::string buyers = e.Segment("buyers", "orders.count >= 1");
  v1::Campaign t = c;
  t.set_type(v1::CAMPAIGN_TYPE_TRIGGERED);
  t.clear_include_segment_ids();
  t.set_trigger_segment_id(buyers);
  t.set_control_fraction(0);
  auto trig = e.campaigns->Create(t);
  REQUIRE(trig.ok());
  e.Launch(trig->id(), "launch-t");
  FeedConsumer& feed = e.Feed();
  e.now = kNow + absl::Hours(2);
  REQUIRE(feed.Apply(Events(1, {Event("buy-1", "c_1000", "purchase", kNow + absl::Hours(1), "", 1000)})).ok());
  auto sent = e.campaigns->SendTriggered();
  REQUIRE(sent.ok());
  CHECK(sent->handed_over == 1);
  REQUIRE(e.broadcaster.calls.size() == 2);
  CHECK(e.broadcaster.calls[1].campaign_id == trig->id());
  CHECK(e.broadcaster.calls[1].offer_id == "off_10");
  CHECK(e.broadcaster.calls[1].customer_ids == std::vector<std::string>{"c_1000"});
}

}  // namespace
}  // namespace ecrm::segmentation
