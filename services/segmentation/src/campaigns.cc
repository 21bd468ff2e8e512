#include "campaigns.h"

#include <algorithm>
#include <shared_mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/page_token.h"
#include "ecrm/util/util.h"
#include "uplift.h"

namespace ecrm::segmentation {
namespace {

constexpr absl::Duration kDefaultWindow = absl::Hours(24 * 7);
constexpr absl::Duration kMaxWindow = absl::Hours(24 * 365);

bool ValidEventType(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_'; });
}

google::protobuf::Timestamp Ts(int64_t us) { return util::Ts(us); }

// The delivery stage a broadcast event stands for; "" for any other event.
std::string StageOf(const std::string& type) {
  static const std::map<std::string, std::string> kStages = {{"message_sent", "sent"},
                                                             {"message_delivered", "delivered"},
                                                             {"message_failed", "failed"},
                                                             {"message_bounced", "failed"},
                                                             {"message_opened", "opened"},
                                                             {"message_clicked", "clicked"},
                                                             {"message_unsubscribed", "unsubscribed"},
                                                             {"message_suppressed", "suppressed"}};
  auto it = kStages.find(type);
  return it == kStages.end() ? "" : it->second;
}

common::v1::Money Money(int64_t minor, const std::string& currency) {
  common::v1::Money m;
  m.set_amount_minor(minor);
  m.set_currency(currency);
  return m;
}

}  // namespace

BroadcastOrder OrderFor(const internal::CampaignRecord& record) {
  BroadcastOrder order;
  order.campaign_id = record.id();
  for (int ch : record.channels()) order.channels.push_back(static_cast<common::v1::Channel>(ch));
  order.purpose = static_cast<common::v1::Purpose>(record.purpose());
  order.template_id = record.template_id();
  order.offer_id = record.offer_id();
  order.placement = record.placement();
  return order;
}

v1::Campaign ToCampaign(const internal::CampaignRecord& r) {
  v1::Campaign c;
  c.set_id(r.id());
  c.set_name(r.name());
  c.set_type(static_cast<v1::CampaignType>(r.type()));
  c.mutable_include_segment_ids()->CopyFrom(r.include_segment_ids());
  c.mutable_exclude_segment_ids()->CopyFrom(r.exclude_segment_ids());
  c.set_trigger_segment_id(r.trigger_segment_id());
  for (int32_t ch : r.channels()) c.mutable_channel_policy()->add_channels(static_cast<common::v1::Channel>(ch));
  c.mutable_channel_policy()->set_honour_preferred_channel(r.honour_preferred_channel());
  c.set_template_id(r.template_id());
  c.set_offer_id(r.offer_id());
  c.set_control_fraction(r.control_fraction());
  c.set_goal_event_type(r.goal_event_type());
  c.mutable_attribution_window()->set_seconds(r.attribution_window_seconds());
  c.set_state(static_cast<v1::CampaignState>(r.state()));
  if (r.launched_at_us() != 0) *c.mutable_launched_at() = Ts(r.launched_at_us());
  *c.mutable_created_at() = Ts(r.created_at_us());
  c.set_broadcast_id(r.broadcast_id());
  c.set_purpose(static_cast<common::v1::Purpose>(r.purpose()));
  c.set_placement(r.placement());
  return c;
}

Campaigns::Campaigns(sql::Database& db, Segments& segments, Features& features, Broadcaster* broadcaster, Clock clock,
                     Partition partition)
    : db_(db),
      segments_(segments),
      features_(features),
      broadcaster_(broadcaster),
      clock_(std::move(clock)),
      partition_(partition) {}

absl::Status Campaigns::Load() {
  ECRM_ASSIGN_OR_RETURN(sql::Result rows, db_.Execute("SELECT record FROM campaigns WHERE state = $1",
                                                      {static_cast<int>(v1::CAMPAIGN_STATE_RUNNING)}));
  std::lock_guard lock(mu_);
  for (const sql::Row& row : rows) {
    internal::CampaignRecord r;
    if (!r.ParseFromString(std::string(row.Text(0)))) return absl::DataLossError("a saved campaign does not parse");
    Running& running = Track(r);
    ECRM_ASSIGN_OR_RETURN(
        sql::Result members,
        db_.Execute("SELECT customer_id, entered_at FROM campaign_members WHERE campaign_id = $1", {r.id()}));
    std::shared_lock features_lock(features_.mutex());
    for (const sql::Row& m : members) {
      std::optional<CustomerNo> n = features_.Find(m.Text(0));
      if (!n) continue;
      running.members.add(*n);
      if (!running.trigger_segment_id.empty()) running.entered_at_us[*n] = m.Int(1);
    }
  }
  return absl::OkStatus();
}

Campaigns::Running& Campaigns::Track(const internal::CampaignRecord& r) {
  Running& running = running_[r.id()];
  running.goal_event_type = r.goal_event_type();
  running.launched_at_us = r.launched_at_us();
  running.window_us = r.attribution_window_seconds() * 1'000'000;
  if (r.type() == v1::CAMPAIGN_TYPE_TRIGGERED) {
    running.trigger_segment_id = r.trigger_segment_id();
    running.control_fraction = r.control_fraction();
  }
  return running;
}

absl::StatusOr<v1::Campaign> Campaigns::Create(const v1::Campaign& in) {
  if (in.name().empty() || in.name().size() > 200) return util::Invalid("campaign.name", "is required (1-200 bytes)");
  if (in.type() != v1::CAMPAIGN_TYPE_ONE_OFF && in.type() != v1::CAMPAIGN_TYPE_TRIGGERED) {
    return util::Invalid("campaign.type", "must be CAMPAIGN_TYPE_ONE_OFF or CAMPAIGN_TYPE_TRIGGERED");
  }
  if (in.type() == v1::CAMPAIGN_TYPE_ONE_OFF && in.include_segment_ids().empty()) {
    return util::Invalid("campaign.include_segment_ids", "a one-off campaign needs at least one segment");
  }
  if (in.type() == v1::CAMPAIGN_TYPE_TRIGGERED && in.trigger_segment_id().empty()) {
    return util::Invalid("campaign.trigger_segment_id",
                         "a triggered campaign needs the segment whose entry triggers it");
  }
  auto check_segment = [&](const std::string& id, const std::string& field) -> absl::Status {
    if (segments_.Get(id).ok()) return absl::OkStatus();
    return absl::NotFoundError(absl::StrCat(field, ": segment \"", id, "\" does not exist"));
  };
  for (int i = 0; i < in.include_segment_ids_size(); ++i) {
    ECRM_RETURN_IF_ERROR(
        check_segment(in.include_segment_ids(i), absl::StrCat("campaign.include_segment_ids[", i, "]")));
  }
  for (int i = 0; i < in.exclude_segment_ids_size(); ++i) {
    ECRM_RETURN_IF_ERROR(
        check_segment(in.exclude_segment_ids(i), absl::StrCat("campaign.exclude_segment_ids[", i, "]")));
  }
  if (!in.trigger_segment_id().empty()) {
    ECRM_RETURN_IF_ERROR(check_segment(in.trigger_segment_id(), "campaign.trigger_segment_id"));
  }
  if (!(in.control_fraction() >= 0 && in.control_fraction() <= 0.5)) {
    return util::Invalid("campaign.control_fraction", "must be between 0 and 0.5");
  }
  if (in.template_id().empty() == in.offer_id().empty()) {
    return util::Invalid("campaign.template_id", "give a template_id or an offer_id (one of them)");
  }
  if (in.channel_policy().channels().empty() && !in.channel_policy().honour_preferred_channel()) {
    return util::Invalid("campaign.channel_policy", "name at least one channel, or honour the preferred channel");
  }
  for (int i = 0; i < in.channel_policy().channels_size(); ++i) {
    if (in.channel_policy().channels(i) == common::v1::CHANNEL_UNSPECIFIED ||
        !common::v1::Channel_IsValid(in.channel_policy().channels(i))) {
      return util::Invalid(absl::StrCat("campaign.channel_policy.channels[", i, "]"), "is not a channel");
    }
  }
  const std::string goal = in.goal_event_type().empty() ? "purchase" : in.goal_event_type();
  if (!ValidEventType(goal)) return util::Invalid("campaign.goal_event_type", "event types are [a-z0-9_]{1,64}");
  absl::Duration window = kDefaultWindow;
  if (in.has_attribution_window()) {
    window = absl::Seconds(in.attribution_window().seconds()) + absl::Nanoseconds(in.attribution_window().nanos());
    if (window <= absl::ZeroDuration() || window > kMaxWindow) {
      return util::Invalid("campaign.attribution_window", "must be more than 0 and at most 365 days");
    }
  }
  if (!in.placement().empty() && (in.template_id().empty() || in.placement().size() > 100)) {
    return util::Invalid("campaign.placement", "at most 100 bytes, and only with a template_id");
  }
  if (in.purpose() != common::v1::PURPOSE_UNSPECIFIED && !common::v1::Purpose_IsValid(in.purpose())) {
    return util::Invalid("campaign.purpose", "is not a purpose");
  }

  internal::CampaignRecord r;
  r.set_id(util::NewId("cmp_"));
  r.set_name(in.name());
  r.set_type(in.type());
  r.mutable_include_segment_ids()->CopyFrom(in.include_segment_ids());
  r.mutable_exclude_segment_ids()->CopyFrom(in.exclude_segment_ids());
  r.set_trigger_segment_id(in.trigger_segment_id());
  for (int ch : in.channel_policy().channels()) r.add_channels(ch);
  r.set_honour_preferred_channel(in.channel_policy().honour_preferred_channel());
  r.set_template_id(in.template_id());
  r.set_offer_id(in.offer_id());
  r.set_control_fraction(in.control_fraction());
  r.set_goal_event_type(goal);
  r.set_attribution_window_seconds(absl::ToInt64Seconds(window));
  r.set_state(v1::CAMPAIGN_STATE_DRAFT);
  r.set_created_at_us(absl::ToUnixMicros(clock_()));
  r.set_purpose(in.purpose() == common::v1::PURPOSE_UNSPECIFIED ? common::v1::PURPOSE_MARKETING : in.purpose());
  r.set_placement(in.placement());
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) {
    return c
        .Execute("INSERT INTO campaigns (id, state, created_at, record) VALUES ($1, $2, $3, $4)",
                 {r.id(), r.state(), r.created_at_us(), sql::Blob{r.SerializeAsString()}})
        .status();
  }));
  return ToCampaign(r);
}

absl::StatusOr<internal::CampaignRecord> Campaigns::Load(sql::Connection& c, const std::string& id) {
  const std::string lock = c.dialect() == sql::Dialect::kPostgres ? " FOR UPDATE" : "";
  ECRM_ASSIGN_OR_RETURN(sql::Result rows, c.Execute("SELECT record FROM campaigns WHERE id = $1" + lock, {id}));
  if (rows.empty()) return absl::NotFoundError(absl::StrCat("campaign \"", id, "\" does not exist"));
  internal::CampaignRecord r;
  if (!r.ParseFromString(std::string(rows.front().Text(0))))
    return absl::DataLossError("a saved campaign does not parse");
  return r;
}

absl::Status Campaigns::Save(sql::Connection& c, const internal::CampaignRecord& r) {
  return c
      .Execute("UPDATE campaigns SET state = $2, record = $3 WHERE id = $1",
               {r.id(), r.state(), sql::Blob{r.SerializeAsString()}})
      .status();
}

absl::StatusOr<v1::Campaign> Campaigns::Get(const std::string& id) {
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  ECRM_ASSIGN_OR_RETURN(internal::CampaignRecord r, Load(*conn, id));
  return ToCampaign(r);
}

absl::StatusOr<v1::ListCampaignsResponse> Campaigns::List(const v1::ListCampaignsRequest& request) {
  ECRM_ASSIGN_OR_RETURN(std::optional<util::PageCursor> before,
                        util::DecodePageToken("ListCampaigns", request.page_token()));
  const int limit = util::PageSize(request.page_size());
  ECRM_ASSIGN_OR_RETURN(
      sql::Result rows,
      db_.Execute("SELECT record, created_at, id FROM campaigns WHERE ($1 = 0 OR state = $1) AND (created_at < $2 OR "
                  "(created_at = $2 AND id < $3)) ORDER BY created_at DESC, id DESC LIMIT $4",
                  {static_cast<int>(request.state()), before ? before->number : std::numeric_limits<int64_t>::max(),
                   before ? before->text : std::string("\x7f"), limit + 1}));
  v1::ListCampaignsResponse out;
  for (size_t i = 0; i < rows.size() && static_cast<int>(i) < limit; ++i) {
    internal::CampaignRecord r;
    if (!r.ParseFromString(std::string(rows.row(i).Text(0))))
      return absl::DataLossError("a saved campaign does not parse");
    *out.add_campaigns() = ToCampaign(r);
  }
  if (static_cast<int>(rows.size()) > limit) {
    out.set_next_page_token(
        util::EncodePageToken("ListCampaigns", {rows.row(limit - 1).Int(1), std::string(rows.row(limit - 1).Text(2))}));
  }
  return out;
}

absl::StatusOr<v1::Campaign> Campaigns::Launch(const v1::LaunchCampaignRequest& request) {
  if (request.request_id().empty() || request.request_id().size() > 255) {
    return util::Invalid("request_id", "is required (1-255 characters) so that a retried launch launches once");
  }
  if (broadcaster_ == nullptr) {
    return absl::FailedPreconditionError(
        "no broadcast engine is configured (--broadcast-address): nothing can be sent");
  }
  internal::CampaignRecord current;
  {
    ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
    ECRM_ASSIGN_OR_RETURN(current, Load(*conn, request.id()));
  }
  if (current.state() == v1::CAMPAIGN_STATE_RUNNING) return HandOver(current);  // a retry
  if (current.state() != v1::CAMPAIGN_STATE_DRAFT) {
    return absl::FailedPreconditionError(absl::StrCat("campaign \"", request.id(), "\" is ",
                                                      v1::CampaignState_Name(current.state()),
                                                      "; only a draft can be launched"));
  }

  // The audience at this moment: members of any included segment, less those of any excluded.
  Roaring audience;
  if (current.type() == v1::CAMPAIGN_TYPE_ONE_OFF) {
    for (const std::string& id : current.include_segment_ids()) {
      ECRM_ASSIGN_OR_RETURN(Roaring members, segments_.Snapshot(id));
      audience |= members;
    }
    for (const std::string& id : current.exclude_segment_ids()) {
      ECRM_ASSIGN_OR_RETURN(Roaring members, segments_.Snapshot(id));
      audience -= members;
    }
  }
  std::vector<CustomerNo> numbers(audience.cardinality());
  audience.toUint32Array(numbers.data());
  const std::vector<std::string> ids = segments_.Ids(numbers);

  internal::CampaignRecord launched;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ECRM_ASSIGN_OR_RETURN(launched, Load(c, request.id()));
    if (launched.state() != v1::CAMPAIGN_STATE_DRAFT) return absl::OkStatus();  // launched meanwhile
    for (const std::string& customer : ids) {
      ECRM_RETURN_IF_ERROR(
          c.Execute("INSERT INTO campaign_members (campaign_id, customer_id, control) VALUES ($1, $2, "
                    "$3) ON CONFLICT (campaign_id, customer_id) DO NOTHING",
                    {launched.id(), customer, InControl(launched.id(), customer, launched.control_fraction()) ? 1 : 0})
              .status());
    }
    launched.set_state(v1::CAMPAIGN_STATE_RUNNING);
    launched.set_launched_at_us(absl::ToUnixMicros(clock_()));
    launched.set_launch_request_id(request.request_id());
    return Save(c, launched);
  }));
  {
    std::lock_guard lock(mu_);
    Track(launched).members = audience;
  }
  return HandOver(launched);
}

// Hands the treatment group to broadcast (once: the campaign id is the idempotency key).
absl::StatusOr<v1::Campaign> Campaigns::HandOver(internal::CampaignRecord record) {
  if (!record.broadcast_id().empty() || record.type() != v1::CAMPAIGN_TYPE_ONE_OFF) return ToCampaign(record);
  BroadcastOrder order = OrderFor(record);
  order.idempotency_key = absl::StrCat("campaign:", record.id(), partition_.Suffix());
  ECRM_ASSIGN_OR_RETURN(
      sql::Result treatment,
      db_.Execute(
          "SELECT customer_id FROM campaign_members WHERE campaign_id = $1 AND control = 0 ORDER BY customer_id",
          {record.id()}));
  for (const sql::Row& row : treatment) order.customer_ids.emplace_back(row.Text(0));
  absl::StatusOr<std::string> broadcast = broadcaster_->Send(order);
  if (!broadcast.ok()) {
    return absl::Status(broadcast.status().code(),
                        absl::StrCat("the audience is frozen but broadcast did not take it (launch again): ",
                                     broadcast.status().message()));
  }
  record.set_broadcast_id(*broadcast);
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ECRM_ASSIGN_OR_RETURN(internal::CampaignRecord now, Load(c, record.id()));
    now.set_broadcast_id(*broadcast);
    record = now;
    return Save(c, now);
  }));
  return ToCampaign(record);
}

std::vector<CampaignOutcome> Campaigns::Observe(const infostore::v1::Event& e) const {
  std::vector<CampaignOutcome> out;
  std::lock_guard lock(mu_);
  if (running_.empty()) return out;
  std::optional<CustomerNo> n = features_.Find(e.customer_id());
  if (!n) return out;
  const int64_t at = util::Micros(e.occurred_at());
  const std::string stage = StageOf(e.type());
  if (!stage.empty()) {
    auto prop = e.properties().find("campaign_id");
    if (prop == e.properties().end()) return out;
    auto it = running_.find(prop->second.string_value());
    if (it != running_.end() && it->second.members.contains(*n)) {
      out.push_back({it->first, e.customer_id(), stage, e.event_id(), at, 0});
    }
    return out;
  }
  for (const auto& [id, running] : running_) {
    if (running.goal_event_type != e.type() || !running.members.contains(*n)) continue;
    int64_t from = running.launched_at_us;
    if (!running.trigger_segment_id.empty()) {
      auto entered = running.entered_at_us.find(*n);
      if (entered == running.entered_at_us.end()) continue;
      from = entered->second;
    }
    if (at < from || at > from + running.window_us) continue;
    out.push_back({id, e.customer_id(), "goal", e.event_id(), at, e.has_amount() ? e.amount().amount_minor() : 0});
  }
  return out;
}

absl::Status Campaigns::SaveOutcomes(sql::Connection& c, const std::vector<CampaignOutcome>& outcomes) {
  for (const CampaignOutcome& o : outcomes) {
    ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO campaign_outcomes (campaign_id, event_id, customer_id, stage, at, "
                                   "amount) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (campaign_id, event_id) DO "
                                   "NOTHING",
                                   {o.campaign_id, o.event_id, o.customer_id, o.stage, o.at_us, o.amount_minor})
                             .status());
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Campaigns::ForgetCustomer(sql::Connection& c, const std::string& customer_id) {
  ECRM_ASSIGN_OR_RETURN(sql::Result members,
                        c.Execute("DELETE FROM campaign_members WHERE customer_id = $1", {customer_id}));
  ECRM_ASSIGN_OR_RETURN(sql::Result outcomes,
                        c.Execute("DELETE FROM campaign_outcomes WHERE customer_id = $1", {customer_id}));
  ECRM_ASSIGN_OR_RETURN(sql::Result sends,
                        c.Execute("DELETE FROM campaign_sends WHERE customer_id = $1", {customer_id}));
  return members.rows_affected() + outcomes.rows_affected() + sends.rows_affected();
}

absl::StatusOr<std::vector<std::pair<std::string, bool>>> Campaigns::MembershipsOf(sql::Database& db,
                                                                                   const std::string& customer_id) {
  ECRM_ASSIGN_OR_RETURN(sql::Result rows, db.Execute("SELECT campaign_id, control FROM campaign_members WHERE "
                                                     "customer_id = $1 ORDER BY campaign_id",
                                                     {customer_id}));
  std::vector<std::pair<std::string, bool>> out;
  for (const sql::Row& r : rows) out.emplace_back(std::string(r.Text(0)), r.Int(1) != 0);
  return out;
}

absl::StatusOr<v1::CampaignReport> Campaigns::Report(const std::string& id) {
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  ECRM_ASSIGN_OR_RETURN(internal::CampaignRecord r, Load(*conn, id));
  GroupOutcome groups[2];  // [0] treatment, [1] control
  ECRM_ASSIGN_OR_RETURN(sql::Result sizes, conn->Execute("SELECT control, COUNT(*) FROM campaign_members WHERE "
                                                         "campaign_id = $1 GROUP BY control",
                                                         {id}));
  for (const sql::Row& row : sizes) groups[row.Int(0) != 0 ? 1 : 0].size = row.Int(1);
  ECRM_ASSIGN_OR_RETURN(
      sql::Result goals,
      conn->Execute(
          "SELECT m.control, COUNT(DISTINCT o.customer_id), COALESCE(SUM(o.amount), 0) FROM campaign_outcomes o "
          "JOIN campaign_members m ON m.campaign_id = o.campaign_id AND m.customer_id = o.customer_id WHERE "
          "o.campaign_id = $1 AND o.stage = 'goal' GROUP BY m.control",
          {id}));
  for (const sql::Row& row : goals) {
    GroupOutcome& g = groups[row.Int(0) != 0 ? 1 : 0];
    g.conversions = row.Int(1);
    g.revenue = row.Int(2);
  }
  ECRM_ASSIGN_OR_RETURN(sql::Result stages,
                        conn->Execute("SELECT stage, COUNT(DISTINCT customer_id) FROM "
                                      "campaign_outcomes WHERE campaign_id = $1 AND stage <> 'goal' "
                                      "GROUP BY stage",
                                      {id}));
  ECRM_ASSIGN_OR_RETURN(CampaignStatistics stats, ComputeCampaignStatistics(groups[0], groups[1]));

  v1::CampaignReport out;
  out.set_campaign_id(id);
  out.set_audience_size(groups[0].size + groups[1].size);
  // Money in the currency the features sum orders in (the reporting currency).
  std::string currency;
  {
    std::shared_lock lock(features_.mutex());
    currency = features_.currency();
  }
  for (int i = 0; i < 2; ++i) {
    v1::GroupOutcome* g = i == 0 ? out.mutable_treatment() : out.mutable_control();
    g->set_size(groups[i].size);
    g->set_converted(groups[i].conversions);
    std::optional<double> rate = i == 0 ? stats.treatment_rate : stats.control_rate;
    g->set_conversion_rate(rate.value_or(0));
    *g->mutable_revenue() = Money(groups[i].revenue, currency);
  }
  for (const sql::Row& row : stages) {
    const absl::string_view stage = row.Text(0);
    const int64_t count = row.Int(1);
    v1::DeliveryFunnel& f = *out.mutable_funnel();
    if (stage == "sent") f.set_sent(count);
    if (stage == "delivered") f.set_delivered(count);
    if (stage == "failed") f.set_failed(count);
    if (stage == "opened") f.set_opened(count);
    if (stage == "clicked") f.set_clicked(count);
    if (stage == "unsubscribed") f.set_unsubscribed(count);
    if (stage == "suppressed") f.set_suppressed(count);
  }
  if (stats.absolute_uplift) out.set_absolute_uplift(*stats.absolute_uplift);
  if (stats.relative_uplift) out.set_relative_uplift(*stats.relative_uplift);
  if (stats.uplift_ci) {
    out.set_uplift_ci_low(stats.uplift_ci->low);
    out.set_uplift_ci_high(stats.uplift_ci->high);
  }
  if (stats.p_value && groups[0].size > 0 && groups[1].size > 0) out.set_p_value(*stats.p_value);
  *out.mutable_attributed_revenue() = Money(stats.attributed_revenue, currency);
  *out.mutable_incremental_revenue() = Money(stats.incremental_revenue.value_or(0), currency);
  const int64_t now = absl::ToUnixMicros(clock_());
  *out.mutable_computed_at() = util::Ts(now);
  out.set_window_open(r.launched_at_us() != 0 &&
                      now <= r.launched_at_us() + r.attribution_window_seconds() * int64_t{1'000'000});
  return out;
}

}  // namespace ecrm::segmentation
