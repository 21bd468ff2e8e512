#include "scores.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <shared_mutex>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "ecrm/log/log.h"

namespace ecrm::segmentation {
namespace {

using rules::Field;
using rules::FieldRef;
using rules::Value;

constexpr int64_t kSecondsPerDay = 86400;

int64_t DayOf(absl::Time t) {
  const int64_t s = absl::ToUnixSeconds(t);
  return s >= 0 ? s / kSecondsPerDay : -((-s + kSecondsPerDay - 1) / kSecondsPerDay);
}

bool Unset(double v) { return std::isnan(v); }
// An RFM score as the features hold it: 0 is none.
double Score(uint8_t v) { return v == 0 ? std::numeric_limits<double>::quiet_NaN() : v; }

// How an event type counts towards engagement.
enum class Counts : uint8_t { kEvent, kOpen, kClick, kPurchase, kNot };

// What the refit reads of a customer with an order.
struct Buyer {
  size_t entry = 0;  // in ScoreUpdate::customers
  int64_t orders = 0;
  int64_t total = 0;  // minor units
  absl::Time last_at;
  int64_t first_day = 0, last_day = 0;
};

// Weeks, as the lifetime-value models count time, between two UTC days.
double Weeks(int64_t days) { return static_cast<double>(days) / 7; }

struct Expected {
  bool ok = false;
  double probability_alive = 0, near = 0, year = 0;
};

}  // namespace

Scores::Scores(Features& features, Clock clock, ScoreOptions options)
    : features_(features), clock_(std::move(clock)), options_(std::move(options)) {}

ScoreUpdate Scores::Compute() const {
  ScoreUpdate u;
  const absl::Time now = clock_();
  const int64_t today = DayOf(now);
  u.computed_at = now;

  // Read: every live customer's engagement (a reduction of its event days, done while reading
  // rather than copying them) and, for customers with an order, what RFM and the models read.
  const absl::Time read_start = absl::Now();
  std::vector<Buyer> buyers;
  std::vector<EngagementEvent> events;
  CustomerNo end = 0;
  {
    std::shared_lock lock(features_.mutex());
    end = features_.end();
    u.customers.reserve(features_.live().cardinality());
    u.purchases = purchases_;
    u.spend = spend_;
  }
  for (CustomerNo lo = 0; lo < end;) {
    const CustomerNo hi = static_cast<CustomerNo>(
        std::min<int64_t>(end, static_cast<int64_t>(lo) + std::max<int64_t>(1, options_.read_batch)));
    std::shared_lock lock(features_.mutex());
    // Event types may be numbered between batches: classify them again under this hold.
    std::vector<Counts> counts;
    auto classify = [&](absl::string_view name, Counts c) {
      if (std::optional<int32_t> t = features_.FindEventType(name)) {
        if (static_cast<size_t>(*t) >= counts.size()) counts.resize(*t + 1, Counts::kEvent);
        counts[*t] = c;
      }
    };
    for (const std::string& name : options_.not_engagement) classify(name, Counts::kNot);
    classify("purchase", Counts::kPurchase);
    classify("message_opened", Counts::kOpen);
    classify("message_clicked", Counts::kClick);

    RoaringSetBitForwardIterator it = features_.live().begin();
    it.equalorlarger(lo);
    for (; it != features_.live().end() && *it < hi; ++it) {
      const CustomerNo n = *it;
      ScoreUpdate::Entry& e = u.customers.emplace_back();
      e.customer = n;
      events.clear();
      features_.ForEachEventDay(n, [&](int32_t type, int64_t day, int64_t count) {
        const Counts c = static_cast<size_t>(type) < counts.size() ? counts[type] : Counts::kEvent;
        if (c == Counts::kNot || day < today - absl::ToInt64Hours(options_.engagement.horizon) / 24 - 1) return;
        // Events are kept by UTC day: each is taken to happen at the day's noon.
        events.push_back({c == Counts::kPurchase ? EngagementKind::kPurchase
                          : c == Counts::kOpen   ? EngagementKind::kMessageOpen
                          : c == Counts::kClick  ? EngagementKind::kMessageClick
                                                 : EngagementKind::kEvent,
                          absl::FromUnixSeconds(day * kSecondsPerDay + kSecondsPerDay / 2), count});
      });
      e.engagement = EngagementScore(events, now, options_.engagement);

      const Value orders = features_.Field(n, FieldRef::Builtin(Field::kOrdersCount));
      const Value last = features_.Field(n, FieldRef::Builtin(Field::kOrdersLastAt));
      if (orders.kind != Value::Kind::kNumber || orders.number < 1 || last.kind != Value::Kind::kTime) continue;
      const Value first = features_.Field(n, FieldRef::Builtin(Field::kOrdersFirstAt));
      const Value total = features_.Field(n, FieldRef::Builtin(Field::kOrdersTotal));
      Buyer& b = buyers.emplace_back();
      b.entry = u.customers.size() - 1;
      b.orders = static_cast<int64_t>(orders.number);
      b.total = total.kind == Value::Kind::kNumber ? static_cast<int64_t>(total.number) : 0;
      b.last_at = last.time;
      // Orders dated after the refit's clock count as today's; the first order as the last when
      // the store has no date for it.
      b.last_day = std::min(DayOf(last.time), today);
      b.first_day = std::min(first.kind == Value::Kind::kTime ? DayOf(first.time) : b.last_day, b.last_day);
    }
    lo = hi;
  }
  u.read_time = absl::Now() - read_start;
  u.buyers = static_cast<int64_t>(buyers.size());
  if (buyers.empty()) {
    u.purchases_fit = absl::FailedPreconditionError("no customer has an order");
    u.spend_fit = absl::FailedPreconditionError("no customer has an order");
    return u;
  }

  // RFM over the customers with an order.
  std::vector<RfmInput> rfm;
  rfm.reserve(buyers.size());
  for (const Buyer& b : buyers)
    rfm.push_back({b.last_at, b.orders, static_cast<double>(std::max<int64_t>(b.total, 0))});
  absl::StatusOr<RfmScorer> scorer = RfmScorer::Build(rfm);
  if (scorer.ok()) {
    for (size_t i = 0; i < buyers.size(); ++i) {
      const RfmScore s = scorer->Score(rfm[i]);
      ScoreUpdate::Entry& e = u.customers[buyers[i].entry];
      e.r = static_cast<uint8_t>(s.r);
      e.f = static_cast<uint8_t>(s.f);
      e.m = static_cast<uint8_t>(s.m);
      e.cell = s.cell;
    }
  } else {
    log::Warn("RFM not scored", {{"error", scorer.status()}});
  }

  // Lifetime value: each customer's orders as the models' purchase summary, in weeks.
  const absl::Time fit_start = absl::Now();
  std::vector<CustomerSummary> summaries;
  summaries.reserve(buyers.size());
  for (const Buyer& b : buyers) {
    CustomerSummary& s = summaries.emplace_back();
    s.x = b.orders - 1;
    s.t_x = s.x > 0 ? Weeks(b.last_day - b.first_day) : 0;
    s.T = Weeks(today - b.first_day);
    s.monetary = s.x > 0 ? static_cast<double>(std::max<int64_t>(b.total, 0)) / static_cast<double>(b.orders) : 0;
  }
  u.purchases_fit = FitBgNbd(summaries, options_.fit);
  if (u.purchases_fit.ok()) {
    u.purchases = u.purchases_fit->params;
  } else {
    log::Warn("purchase model (BG/NBD) not fitted; the last fitted model, if any, is kept",
              {{"error", u.purchases_fit.status()}, {"customers", u.buyers}});
  }
  u.spend_fit = FitGammaGamma(summaries, options_.fit);
  if (u.spend_fit.ok() && u.spend_fit->params.q <= 1) {
    u.spend_fit = absl::FailedPreconditionError(
        absl::StrCat("Gamma-Gamma q = ", u.spend_fit->params.q, " ≤ 1: the population's mean spend is infinite"));
  }
  if (u.spend_fit.ok()) {
    u.spend = u.spend_fit->params;
  } else {
    log::Warn("spend model (Gamma-Gamma) not fitted; the last fitted model, if any, is kept",
              {{"error", u.spend_fit.status()}, {"customers", u.buyers}});
  }
  u.fit_time = absl::Now() - fit_start;

  // Predictions. The purchase model's depend only on (x, t_x, T), which many customers share
  // (days, not instants): each distinct history is evaluated once.
  const absl::Time predict_start = absl::Now();
  if (u.purchases) {
    absl::flat_hash_map<std::tuple<int64_t, int64_t, int64_t>, Expected> cache;
    for (size_t i = 0; i < buyers.size(); ++i) {
      const Buyer& b = buyers[i];
      const CustomerSummary& s = summaries[i];
      auto [it, added] = cache.try_emplace(std::make_tuple(s.x, b.last_day - b.first_day, today - b.first_day));
      Expected& x = it->second;
      if (added) {
        absl::StatusOr<double> near =
            ConditionalExpectedPurchases(*u.purchases, s, options_.value.purchases_horizon_weeks);
        absl::StatusOr<double> year = ConditionalExpectedPurchases(*u.purchases, s, options_.value.value_horizon_weeks);
        x.ok = near.ok() && year.ok();
        if (x.ok) {
          x.probability_alive = ProbabilityAlive(*u.purchases, s);
          x.near = *near;
          x.year = *year;
        }
      }
      if (!x.ok) continue;
      ScoreUpdate::Entry& e = u.customers[b.entry];
      e.probability_alive = static_cast<float>(x.probability_alive);
      e.expected_purchases = static_cast<float>(x.near);
      if (u.spend) {
        const double spend = ExpectedAverageSpend(*u.spend, s);
        e.expected_order_value = static_cast<float>(spend);
        e.value = x.year * spend;
        ++u.valued;
      }
    }
  }
  u.predict_time = absl::Now() - predict_start;
  return u;
}

std::vector<CustomerNo> Scores::Write(const ScoreUpdate& u) {
  std::vector<CustomerNo> changed;
  auto number = [&](CustomerNo n, Field f) {
    const Value v = features_.Field(n, FieldRef::Builtin(f));
    return v.kind == Value::Kind::kNumber ? v.number : std::numeric_limits<double>::quiet_NaN();
  };
  auto same = [](double a, double b) { return (Unset(a) && Unset(b)) || a == b; };
  for (const ScoreUpdate::Entry& e : u.customers) {
    const CustomerNo n = e.customer;
    if (!features_.IsLive(n)) {  // erased or merged away since the read
      if (n < details_.size()) details_[n] = Details{};
      continue;
    }
    bool moved = false;
    const Value cell = features_.Field(n, FieldRef::Builtin(Field::kRfmCell));
    const absl::string_view new_cell = e.r == 0 ? absl::string_view() : RfmCellName(e.cell);
    const absl::string_view old_cell = cell.kind == Value::Kind::kString ? cell.string : absl::string_view();
    if (old_cell != new_cell || !same(number(n, Field::kRfmR), Score(e.r)) ||
        !same(number(n, Field::kRfmF), Score(e.f)) || !same(number(n, Field::kRfmM), Score(e.m))) {
      features_.SetRfm(n, e.r, e.f, e.m, new_cell);
      moved = true;
    }
    if (!same(number(n, Field::kClv), e.value)) {
      features_.SetClv(n, e.value);
      moved = true;
    }
    if (!same(number(n, Field::kEngagement), e.engagement)) {
      features_.SetEngagement(n, e.engagement);
      moved = true;
    }
    if (moved) changed.push_back(n);
    const bool valued = !Unset(e.probability_alive) || !Unset(e.expected_order_value);
    if (valued && n >= details_.size()) details_.resize(n + 1);
    if (n < details_.size()) details_[n] = {e.probability_alive, e.expected_purchases, e.expected_order_value};
  }
  // Nothing is kept on customers this refit did not score (gone before it read them, or new
  // since): the entries are in customer-number order.
  auto next = u.customers.begin();
  for (CustomerNo n = 0; n < details_.size(); ++n) {
    while (next != u.customers.end() && next->customer < n) ++next;
    if (next == u.customers.end() || next->customer != n) details_[n] = Details{};
  }
  computed_at_ = u.computed_at;
  purchases_ = u.purchases;
  spend_ = u.spend;
  return changed;
}

void Scores::Forget(CustomerNo n) {
  if (n < details_.size()) details_[n] = Details{};
}

absl::StatusOr<CustomerScoreReport> Scores::Report(absl::string_view customer_id) const {
  if (customer_id.empty()) return absl::InvalidArgumentError("customer_id: is required");
  std::shared_lock lock(features_.mutex());
  std::optional<CustomerNo> n = features_.Find(customer_id);
  if (!n || !features_.IsLive(*n)) {
    return absl::NotFoundError(absl::StrCat("customer \"", customer_id,
                                            "\" is not held by segmentation: not received from the information "
                                            "store yet, erased, or merged into another"));
  }
  return ReportLocked(*n);
}

CustomerScoreReport Scores::ReportLocked(CustomerNo n) const {
  CustomerScoreReport out;
  out.customer_id = std::string(features_.Id(n));
  auto number = [&](Field f) -> std::optional<double> {
    const Value v = features_.Field(n, FieldRef::Builtin(f));
    if (v.kind != Value::Kind::kNumber) return std::nullopt;
    return v.number;
  };
  // Every customer a refit scored has an engagement (a resync or a restart clears the scores
  // until the next refit).
  out.engagement = number(Field::kEngagement);
  if (!out.engagement) return out;
  out.computed_at = computed_at_;
  out.currency = features_.currency();
  if (std::optional<double> r = number(Field::kRfmR)) {
    RfmScore s;
    s.r = static_cast<int>(*r);
    s.f = static_cast<int>(number(Field::kRfmF).value_or(0));
    s.m = static_cast<int>(number(Field::kRfmM).value_or(0));
    s.fm = (s.f + s.m + 1) / 2;
    s.cell = RfmCellOf(s.r, s.fm);
    out.rfm = s;
  }
  out.value = number(Field::kClv);
  if (n < details_.size()) {
    const Details& d = details_[n];
    auto set = [](std::optional<double>& to, float v) {
      if (!std::isnan(v)) to = v;
    };
    set(out.probability_alive, d.probability_alive);
    set(out.expected_purchases, d.expected_purchases);
    set(out.expected_order_value, d.expected_order_value);
  }
  return out;
}

absl::Status SerializeScoreUpdate(const ScoreUpdate& u, size_t per_part,
                                  absl::FunctionRef<absl::Status(int64_t part, const std::string& bytes)> write) {
  internal::ScoresRecord head;
  head.set_computed_at_us(absl::ToUnixMicros(u.computed_at));
  if (u.purchases) {
    head.set_has_purchases(true);
    head.set_r(u.purchases->r);
    head.set_alpha(u.purchases->alpha);
    head.set_a(u.purchases->a);
    head.set_b(u.purchases->b);
  }
  if (u.spend) {
    head.set_has_spend(true);
    head.set_p(u.spend->p);
    head.set_q(u.spend->q);
    head.set_gamma(u.spend->gamma);
  }
  if (absl::Status s = write(0, head.SerializeAsString()); !s.ok()) return s;
  per_part = std::max<size_t>(per_part, 1);
  int64_t part = 0;
  for (size_t first = 0; first < u.customers.size(); first += per_part) {
    const size_t last = std::min(u.customers.size(), first + per_part);
    internal::ScoresRecord r;
    const auto n = static_cast<int>(last - first);
    r.mutable_customer_delta()->Reserve(n);
    r.mutable_rfm()->Reserve(n);
    r.mutable_cell()->Reserve(n);
    r.mutable_engagement()->Reserve(n);
    r.mutable_probability_alive()->Reserve(n);
    r.mutable_expected_purchases()->Reserve(n);
    r.mutable_expected_order_value()->Reserve(n);
    r.mutable_value()->Reserve(n);
    CustomerNo previous = 0;
    for (size_t i = first; i < last; ++i) {
      const ScoreUpdate::Entry& e = u.customers[i];
      r.add_customer_delta(e.customer - previous);
      previous = e.customer;
      r.add_rfm(uint32_t{e.r} << 16 | uint32_t{e.f} << 8 | e.m);
      r.add_cell(static_cast<uint32_t>(e.cell));
      r.add_engagement(e.engagement);
      r.add_probability_alive(e.probability_alive);
      r.add_expected_purchases(e.expected_purchases);
      r.add_expected_order_value(e.expected_order_value);
      r.add_value(e.value);
    }
    if (absl::Status s = write(++part, r.SerializeAsString()); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<ScoreUpdate> ParseScoreUpdate(absl::Span<const absl::string_view> parts) {
  ScoreUpdate u;
  for (size_t part = 0; part < parts.size(); ++part) {
    internal::ScoresRecord r;
    if (!r.ParseFromArray(parts[part].data(), static_cast<int>(parts[part].size()))) {
      return absl::DataLossError(absl::StrCat("saved scores: part ", part, " does not parse"));
    }
    if (part == 0) {
      u.computed_at = absl::FromUnixMicros(r.computed_at_us());
      if (r.has_purchases()) u.purchases = BgNbdParams{.r = r.r(), .alpha = r.alpha(), .a = r.a(), .b = r.b()};
      if (r.has_spend()) u.spend = GammaGammaParams{.p = r.p(), .q = r.q(), .gamma = r.gamma()};
      continue;
    }
    const int n = r.customer_delta_size();
    if (r.rfm_size() != n || r.cell_size() != n || r.engagement_size() != n || r.probability_alive_size() != n ||
        r.expected_purchases_size() != n || r.expected_order_value_size() != n || r.value_size() != n) {
      return absl::DataLossError(absl::StrCat("saved scores: the columns of part ", part, " differ in length"));
    }
    CustomerNo customer = 0;
    for (int i = 0; i < n; ++i) {
      customer += r.customer_delta(i);
      if (!u.customers.empty() && customer <= u.customers.back().customer) {
        return absl::DataLossError(absl::StrCat("saved scores: part ", part, " is not in customer order"));
      }
      ScoreUpdate::Entry& e = u.customers.emplace_back();
      e.customer = customer;
      e.r = static_cast<uint8_t>(r.rfm(i) >> 16);
      e.f = static_cast<uint8_t>(r.rfm(i) >> 8);
      e.m = static_cast<uint8_t>(r.rfm(i));
      if (r.cell(i) > static_cast<uint32_t>(RfmCell::kLost)) {
        return absl::DataLossError(absl::StrCat("saved scores: unknown RFM cell ", r.cell(i)));
      }
      e.cell = static_cast<RfmCell>(r.cell(i));
      e.engagement = r.engagement(i);
      e.probability_alive = r.probability_alive(i);
      e.expected_purchases = r.expected_purchases(i);
      e.expected_order_value = r.expected_order_value(i);
      e.value = r.value(i);
      if (e.r != 0) ++u.buyers;
      if (!Unset(e.value)) ++u.valued;
    }
  }
  if (parts.empty()) return absl::NotFoundError("no scores saved");
  return u;
}

}  // namespace ecrm::segmentation
