#include "offers.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/field_mask_util.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <optional>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/page_token.h"
#include "ecrm/util/util.h"
#include "format.h"

namespace ecrm::personalisation {
namespace {

constexpr size_t kMaxName = 200;
constexpr size_t kMaxHeadline = 1000;
constexpr size_t kMaxPlacement = 100;
constexpr int kMaxPlacements = 100;
constexpr int kMaxSegments = 100;
constexpr int kDefaultMaxOffers = 3;
constexpr int kMaxOffers = 100;

bool HasTime(const google::protobuf::Timestamp& t) { return t.seconds() != 0 || t.nanos() != 0; }

std::string Rfc3339(const google::protobuf::Timestamp& t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", absl::FromUnixMicros(util::Micros(t)), absl::UTCTimeZone());
}

std::string ChannelText(int c) {
  std::string name = common::v1::Channel_Name(static_cast<common::v1::Channel>(c));
  if (name.empty()) return absl::StrCat(c);
  return absl::AsciiStrToLower(absl::string_view(name).substr(8));  // CHANNEL_
}

std::string Money(const common::v1::Money& m) {
  return absl::StrCat(DecimalAmount(m.amount_minor(), m.currency()), " ", m.currency());
}

absl::Status CheckMoney(const common::v1::Money& m, absl::string_view field, bool positive) {
  if (m.currency().size() != 3 || !absl::c_all_of(m.currency(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
    return util::Invalid(absl::StrCat(field, ".currency"), "an ISO 4217 code such as \"EUR\" is required");
  }
  if (positive ? m.amount_minor() <= 0 : m.amount_minor() < 0) {
    return util::Invalid(absl::StrCat(field, ".amount_minor"),
                         absl::StrCat("must be ", positive ? "more than 0" : "0 or more", ", got ", m.amount_minor()));
  }
  return absl::OkStatus();
}

absl::Status CheckKind(const v1::Offer& o) {
  const bool percent = o.kind() == v1::OFFER_KIND_PERCENT_OFF;
  const bool amount = o.kind() == v1::OFFER_KIND_AMOUNT_OFF;
  const bool points = o.kind() == v1::OFFER_KIND_BONUS_POINTS;
  switch (o.kind()) {
    case v1::OFFER_KIND_PERCENT_OFF:
    case v1::OFFER_KIND_AMOUNT_OFF:
    case v1::OFFER_KIND_FREE_SHIPPING:
    case v1::OFFER_KIND_BONUS_POINTS:
    case v1::OFFER_KIND_CONTENT:
      break;
    default:
      return util::Invalid("offer.kind",
                           "required: OFFER_KIND_PERCENT_OFF, OFFER_KIND_AMOUNT_OFF, OFFER_KIND_FREE_SHIPPING, "
                           "OFFER_KIND_BONUS_POINTS or OFFER_KIND_CONTENT");
  }
  const std::string kind = v1::OfferKind_Name(o.kind());
  if (percent && (o.percent_off() < 1 || o.percent_off() > 100)) {
    return util::Invalid("offer.percent_off", absl::StrCat("must be 1 to 100 for ", kind, ", got ", o.percent_off()));
  }
  if (!percent && o.percent_off() != 0) {
    return util::Invalid("offer.percent_off", absl::StrCat("only for OFFER_KIND_PERCENT_OFF, not ", kind));
  }
  if (amount) {
    if (!o.has_amount_off()) return util::Invalid("offer.amount_off", "required for OFFER_KIND_AMOUNT_OFF");
    ECRM_RETURN_IF_ERROR(CheckMoney(o.amount_off(), "offer.amount_off", /*positive=*/true));
  } else if (o.has_amount_off()) {
    return util::Invalid("offer.amount_off", absl::StrCat("only for OFFER_KIND_AMOUNT_OFF, not ", kind));
  }
  if (points && o.bonus_points() <= 0) {
    return util::Invalid("offer.bonus_points",
                         absl::StrCat("must be more than 0 for OFFER_KIND_BONUS_POINTS, got ", o.bonus_points()));
  }
  if (!points && o.bonus_points() != 0) {
    return util::Invalid("offer.bonus_points", absl::StrCat("only for OFFER_KIND_BONUS_POINTS, not ", kind));
  }
  return absl::OkStatus();
}

// The source text of the rule's top-level conjuncts.
std::vector<std::string> Conjuncts(const rules::Rule& rule) {
  const rules::Node& root = rule.node(rule.root());
  std::vector<std::string> out;
  if (root.op != rules::Op::kAnd) return out;
  for (int32_t kid : rule.children(root)) {
    const rules::Node& n = rule.node(kid);
    out.emplace_back(rule.source().substr(n.begin, n.end - n.begin));
  }
  return out;
}

// The offer's stored row: data is the Offer proto without id, created_at and impressions.
v1::Offer FromRow(const sql::Row& r) {
  v1::Offer o;
  o.ParseFromString(std::string(r.Text(1)));
  o.set_id(std::string(r.Text(0)));
  o.set_impressions(r.Int(2));
  *o.mutable_created_at() = util::Ts(r.Int(3));
  return o;
}
constexpr absl::string_view kColumns = "id, data, impressions, created_at";

sql::Blob Data(const v1::Offer& o) {
  v1::Offer copy = o;
  copy.clear_id();
  copy.clear_created_at();
  copy.clear_impressions();
  return sql::Blob{copy.SerializeAsString()};
}

absl::Status NotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("offer \"", id, "\" does not exist"));
}

absl::Status Bump(sql::Connection& c) {
  return c.Execute("UPDATE offer_changes SET generation = generation + 1 WHERE id = 1").status();
}

// Why the offer's rule rejects the customer (its first clause that is not true), or null when it
// does not. A rule of several clauses (a && b && …) is true when each is: they are evaluated in
// order, and the first that is not names why (the rule is not evaluated again for it).
const std::string* RuleRejects(const CompiledOffer& offer, const infostore::v1::Customer& customer,
                               const absl::flat_hash_set<std::string>* segments, absl::Time now) {
  CustomerRuleView view(customer, offer.names, segments);
  if (offer.clauses.empty()) {
    const rules::Truth truth = rules::Evaluate(offer.rule, view, now);
    if (truth == rules::Truth::kTrue) return nullptr;
    return truth == rules::Truth::kUnknown ? &offer.clause_unknown[0] : &offer.clause_false[0];
  }
  for (size_t k = 0; k < offer.clauses.size(); ++k) {
    const rules::Truth t = rules::Evaluate(offer.clauses[k], view, now);
    if (t != rules::Truth::kTrue)
      return t == rules::Truth::kUnknown ? &offer.clause_unknown[k] : &offer.clause_false[k];
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const CompiledOffer>> Offers::Compile(const v1::Offer& o) const {
  if (o.name().empty()) return util::Invalid("offer.name", "required");
  if (o.name().size() > kMaxName) return util::Invalid("offer.name", absl::StrCat("longer than ", kMaxName, " bytes"));
  if (o.headline().size() > kMaxHeadline) {
    return util::Invalid("offer.headline", absl::StrCat("longer than ", kMaxHeadline, " bytes"));
  }
  ECRM_RETURN_IF_ERROR(CheckKind(o));
  if (o.has_value()) ECRM_RETURN_IF_ERROR(CheckMoney(o.value(), "offer.value", /*positive=*/false));
  if (HasTime(o.starts_at()) && HasTime(o.ends_at()) && util::Micros(o.ends_at()) <= util::Micros(o.starts_at())) {
    return util::Invalid("offer.ends_at", absl::StrCat(Rfc3339(o.ends_at()), " is not after offer.starts_at ",
                                                       Rfc3339(o.starts_at()), " (the offer would never be valid)"));
  }
  if (o.per_customer_cap() < 0) {
    return util::Invalid("offer.per_customer_cap",
                         absl::StrCat("must be 0 (no limit) or more, got ", o.per_customer_cap()));
  }
  if (o.total_budget() < 0) {
    return util::Invalid("offer.total_budget", absl::StrCat("must be 0 (no limit) or more, got ", o.total_budget()));
  }
  std::set<int> channels;
  for (int c : o.channels()) {
    if (c < common::v1::CHANNEL_EMAIL || c > common::v1::CHANNEL_DIRECT_MAIL) {
      return util::Invalid("offer.channels",
                           absl::StrCat(c, " is not a channel (CHANNEL_EMAIL … CHANNEL_DIRECT_MAIL)"));
    }
    if (!channels.insert(c).second) {
      return util::Invalid("offer.channels", absl::StrCat(common::v1::Channel_Name(static_cast<common::v1::Channel>(c)),
                                                          " is listed twice"));
    }
  }
  if (o.placements_size() > kMaxPlacements) {
    return util::Invalid("offer.placements", absl::StrCat("at most ", kMaxPlacements));
  }
  for (const std::string& p : o.placements()) {
    if (p.empty() || p.size() > kMaxPlacement) {
      return util::Invalid("offer.placements", absl::StrCat("each placement is 1 to ", kMaxPlacement, " bytes"));
    }
  }
  if (o.segment_ids_size() > kMaxSegments) {
    return util::Invalid("offer.segment_ids", absl::StrCat("at most ", kMaxSegments));
  }
  for (const std::string& s : o.segment_ids()) {
    if (s.empty()) return util::Invalid("offer.segment_ids", "a segment id is empty");
  }
  auto out = std::make_shared<CompiledOffer>();
  out->proto = o;
  out->reads_segments = o.segment_ids_size() > 0;
  if (!o.eligibility_rule().empty()) {
    absl::StatusOr<rules::Rule> rule = CompileOfferRule(o.eligibility_rule(), schema_);
    if (!rule.ok()) return util::Invalid("offer.eligibility_rule", rule.status().message());
    out->rule = *std::move(rule);
    out->has_rule = true;
    out->names = NamesOf(out->rule, schema_);
    out->reads_segments = out->reads_segments || !out->rule.dependencies().segments.empty();
    std::vector<std::string> texts = Conjuncts(out->rule);
    for (const std::string& clause : texts) {
      absl::StatusOr<rules::Rule> c = CompileOfferRule(clause, schema_);
      if (!c.ok())
        return absl::InternalError(absl::StrCat("a clause of the rule does not compile: ", c.status().message()));
      out->clauses.push_back(*std::move(c));
    }
    if (texts.empty()) texts.push_back(o.eligibility_rule());
    for (const std::string& text : texts) {
      out->clause_false.push_back(absl::StrCat("not eligible: rule clause `", text, "` is false"));
      out->clause_unknown.push_back(
          absl::StrCat("not eligible: rule clause `", text, "` is unknown (a value it reads is missing)"));
    }
  }
  if (HasTime(o.starts_at())) {
    out->starts_at_us = util::Micros(o.starts_at());
    out->not_yet_valid = absl::StrCat("not yet valid: starts at ", Rfc3339(o.starts_at()));
  }
  if (HasTime(o.ends_at())) {
    out->ends_at_us = util::Micros(o.ends_at());
    out->expired = absl::StrCat("expired: ended at ", Rfc3339(o.ends_at()));
  }
  std::vector<std::string> channel_names;
  for (int c : o.channels()) channel_names.push_back(ChannelText(c));
  out->wrong_channel = absl::StrCat("wrong channel: shown on ", absl::StrJoin(channel_names, ", "), ", not ");
  out->wrong_placement = absl::StrCat("wrong placement: shown at ", absl::StrJoin(o.placements(), ", "), ", not ");
  out->not_in_segment = absl::StrCat("not eligible: not in segment ", absl::StrJoin(o.segment_ids(), " or "));
  if (out->has_rule) out->chosen_because.push_back(absl::StrCat("rule `", o.eligibility_rule(), "`"));
  if (o.segment_ids().empty() && !out->has_rule) out->chosen_because.emplace_back("everyone is eligible");
  out->chosen_because.push_back(absl::StrCat("priority ", o.priority()));
  if (o.has_value()) out->chosen_because.push_back(absl::StrCat("value ", Money(o.value())));
  if (out->reads_segments && segments_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(o.segment_ids_size() > 0 ? "offer.segment_ids" : "offer.eligibility_rule",
                     ": this engine reads no segments (start it with --segmentation-address)"));
  }
  return std::shared_ptr<const CompiledOffer>(std::move(out));
}

absl::Status Offers::CheckTemplate(sql::Connection& c, const v1::Offer& offer) {
  if (offer.template_id().empty()) return absl::OkStatus();
  ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute("SELECT 1 FROM templates WHERE id = $1", {offer.template_id()}));
  if (r.empty()) {
    return util::Invalid("offer.template_id", absl::StrCat("template \"", offer.template_id(), "\" does not exist"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Offer> Offers::Create(const v1::Offer& request) {
  ECRM_ASSIGN_OR_RETURN(std::shared_ptr<const CompiledOffer> compiled, Compile(request));
  v1::Offer o = compiled->proto;
  o.set_id(util::NewId("off_"));
  o.set_impressions(0);
  const int64_t now = absl::ToUnixMicros(clock_());
  *o.mutable_created_at() = util::Ts(now);
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ECRM_RETURN_IF_ERROR(CheckTemplate(c, o));
    ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO offers (id, active, data, impressions, created_at, updated_at) "
                                   "VALUES ($1, $2, $3, 0, $4, $4)",
                                   {o.id(), o.active(), Data(o), now})
                             .status());
    return Bump(c);
  }));
  Changed();
  return o;
}

absl::StatusOr<v1::Offer> Offers::Get(const std::string& id) {
  if (id.empty()) return util::Invalid("id", "required");
  ECRM_ASSIGN_OR_RETURN(sql::Result r,
                        db_.Execute(absl::StrCat("SELECT ", kColumns, " FROM offers WHERE id = $1"), {id}));
  if (r.empty()) return NotFound(id);
  return FromRow(r.front());
}

absl::StatusOr<v1::ListOffersResponse> Offers::List(const v1::ListOffersRequest& req) {
  if (req.page_size() < 0) return util::Invalid("page_size", "must not be negative");
  ECRM_ASSIGN_OR_RETURN(std::optional<util::PageCursor> after, util::DecodePageToken("ListOffers", req.page_token()));
  const int limit = util::PageSize(req.page_size());
  ECRM_ASSIGN_OR_RETURN(sql::Result r,
                        db_.Execute(absl::StrCat("SELECT ", kColumns, " FROM offers WHERE id > $1",
                                                 req.active_only() ? " AND active = 1" : "", " ORDER BY id LIMIT $2"),
                                    {after ? after->text : std::string(), limit + 1}));
  v1::ListOffersResponse out;
  for (size_t i = 0; i < r.size() && static_cast<int>(i) < limit; ++i) *out.add_offers() = FromRow(r.row(i));
  if (static_cast<int>(r.size()) > limit) {
    out.set_next_page_token(util::EncodePageToken("ListOffers", {0, out.offers().rbegin()->id()}));
  }
  return out;
}

absl::StatusOr<v1::Offer> Offers::Update(const v1::UpdateOfferRequest& req) {
  const v1::Offer& in = req.offer();
  if (in.id().empty()) return util::Invalid("offer.id", "required");
  static const std::set<std::string> kMutable = {
      "name",        "headline",    "kind",   "percent_off", "amount_off", "bonus_points",     "eligibility_rule",
      "segment_ids", "priority",    "value",  "starts_at",   "ends_at",    "per_customer_cap", "channels",
      "placements",  "template_id", "active", "total_budget"};
  google::protobuf::FieldMask mask;
  for (const std::string& p : req.update_mask().paths()) {
    if (!kMutable.contains(p)) {
      return util::Invalid("update_mask", absl::StrCat("unknown or read-only field \"", p,
                                                       "\" (changeable: ", absl::StrJoin(kMutable, ", "), ")"));
    }
    mask.add_paths(p);
  }
  if (mask.paths().empty()) {
    for (const std::string& p : kMutable) mask.add_paths(p);
  }
  google::protobuf::util::FieldMaskUtil::MergeOptions options;
  options.set_replace_message_fields(true);
  options.set_replace_repeated_fields(true);
  const int64_t now = absl::ToUnixMicros(clock_());
  v1::Offer out;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    const std::string lock = c.dialect() == sql::Dialect::kPostgres ? " FOR UPDATE" : "";
    ECRM_ASSIGN_OR_RETURN(sql::Result r,
                          c.Execute(absl::StrCat("SELECT ", kColumns, " FROM offers WHERE id = $1", lock), {in.id()}));
    if (r.empty()) return NotFound(in.id());
    v1::Offer merged = FromRow(r.front());
    google::protobuf::util::FieldMaskUtil::MergeMessageTo(in, mask, options, &merged);
    ECRM_ASSIGN_OR_RETURN(std::shared_ptr<const CompiledOffer> compiled, Compile(merged));
    ECRM_RETURN_IF_ERROR(CheckTemplate(c, merged));
    ECRM_RETURN_IF_ERROR(c.Execute("UPDATE offers SET active = $2, data = $3, updated_at = $4 WHERE id = $1",
                                   {merged.id(), merged.active(), Data(merged), now})
                             .status());
    out = std::move(merged);
    return Bump(c);
  }));
  Changed();
  return out;
}

absl::Status Offers::Delete(const std::string& id) {
  if (id.empty()) return util::Invalid("id", "required");
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute("DELETE FROM offers WHERE id = $1", {id}));
    if (r.rows_affected() == 0) return NotFound(id);
    ECRM_RETURN_IF_ERROR(c.Execute("DELETE FROM offer_impressions WHERE offer_id = $1", {id}).status());
    return Bump(c);
  }));
  Changed();
  return absl::OkStatus();
}

void Offers::Changed() {
  absl::MutexLock lock(&mu_);
  changed_ = true;
}

absl::StatusOr<std::shared_ptr<const Offers::Snapshot>> Offers::Active() {
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    if (snapshot_ != nullptr && !changed_ && now - checked_at_ < kRecheck) return snapshot_;
  }
  ECRM_ASSIGN_OR_RETURN(sql::Result g, db_.Execute("SELECT generation FROM offer_changes WHERE id = 1"));
  const int64_t generation = g.empty() ? 0 : g.front().Int(0);
  {
    absl::MutexLock lock(&mu_);
    if (snapshot_ != nullptr && snapshot_->generation == generation) {
      checked_at_ = now;
      changed_ = false;
      return snapshot_;
    }
  }
  // Read the generation and the offers in one transaction, so the snapshot is never newer
  // or older than the generation it is kept under.
  auto fresh = std::make_shared<Snapshot>();
  ECRM_RETURN_IF_ERROR(db_.InTransaction(
      [&](sql::Connection& c) -> absl::Status {
        fresh->active.clear();
        ECRM_ASSIGN_OR_RETURN(sql::Result gen, c.Execute("SELECT generation FROM offer_changes WHERE id = 1"));
        fresh->generation = gen.empty() ? 0 : gen.front().Int(0);
        ECRM_ASSIGN_OR_RETURN(
            sql::Result r, c.Execute(absl::StrCat("SELECT ", kColumns, " FROM offers WHERE active = 1 ORDER BY id")));
        for (const sql::Row& row : r) {
          v1::Offer o = FromRow(row);
          o.clear_impressions();
          absl::StatusOr<std::shared_ptr<const CompiledOffer>> compiled = Compile(o);
          if (!compiled.ok()) continue;  // saved before a change of what rules may read: never decided
          fresh->active.push_back(*std::move(compiled));
        }
        return absl::OkStatus();
      },
      sql::TxMode::kReadOnly));
  absl::MutexLock lock(&mu_);
  if (snapshot_ == nullptr || snapshot_->generation < fresh->generation) snapshot_ = fresh;
  checked_at_ = now;
  changed_ = false;
  return snapshot_;
}

std::shared_ptr<const Offers::Route> Offers::RouteFor(const Snapshot& snapshot, const std::string& placement,
                                                      int channel) {
  std::pair<std::string, int> key(placement, channel);
  {
    absl::MutexLock lock(&snapshot.mu);
    auto it = snapshot.routes.find(key);
    if (it != snapshot.routes.end()) return it->second;
  }
  auto route = std::make_shared<Route>();
  const std::string asked_channel = channel == 0 ? "an unspecified channel" : ChannelText(channel);
  const std::string asked_placement =
      placement.empty() ? "an unspecified placement" : absl::StrCat("\"", placement, "\"");
  for (const std::shared_ptr<const CompiledOffer>& shared : snapshot.active) {
    const CompiledOffer& offer = *shared;
    const v1::Offer& o = offer.proto;
    if (o.channels_size() > 0 && std::find(o.channels().begin(), o.channels().end(), channel) == o.channels().end()) {
      route->misrouted.emplace_back(&offer, absl::StrCat(offer.wrong_channel, asked_channel));
    } else if (o.placements_size() > 0 &&
               std::find(o.placements().begin(), o.placements().end(), placement) == o.placements().end()) {
      route->misrouted.emplace_back(&offer, absl::StrCat(offer.wrong_placement, asked_placement));
    } else {
      route->reachable.push_back(&offer);
    }
  }
  absl::MutexLock lock(&snapshot.mu);
  if (snapshot.routes.size() < kMaxRoutes) snapshot.routes.emplace(std::move(key), route);
  return route;
}

absl::StatusOr<v1::DecideOffersResponse> Offers::Decide(const v1::DecideOffersRequest& req) {
  ECRM_ASSIGN_OR_RETURN(Decision d, Choose(req));
  v1::DecideOffersResponse out = std::move(d.response);
  auto& rejected = *out.mutable_rejected();
  for (const auto& [id, why] : d.rejected) rejected[*id] = *why;
  for (const auto& [id, why] : d.rejected_now) rejected[*id] = why;
  return out;
}

absl::StatusOr<std::shared_ptr<const CompiledOffer>> Offers::Find(const std::string& id) {
  if (id.empty()) return util::Invalid("offer_id", "required");
  ECRM_ASSIGN_OR_RETURN(std::shared_ptr<const Snapshot> snapshot, Active());
  for (const std::shared_ptr<const CompiledOffer>& offer : snapshot->active) {
    if (offer->proto.id() == id) return offer;
  }
  // Not active (or changed since the snapshot): read as saved.
  absl::StatusOr<v1::Offer> saved = Get(id);
  if (absl::IsNotFound(saved.status())) {
    return absl::NotFoundError(absl::StrCat("offer_id: offer \"", id, "\" does not exist"));
  }
  ECRM_RETURN_IF_ERROR(saved.status());
  saved->clear_impressions();
  absl::StatusOr<std::shared_ptr<const CompiledOffer>> compiled = Compile(*saved);
  if (!compiled.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("offer_id: offer \"", id, "\" cannot be decided on: ", compiled.status().message()));
  }
  return compiled;
}

absl::StatusOr<std::string> Offers::NotEligible(const CompiledOffer& offer, const infostore::v1::Customer& customer,
                                                int channel) {
  const v1::Offer& o = offer.proto;
  if (!o.active()) return std::string("inactive: the offer is not active");
  const absl::Time now = clock_();
  const int64_t now_us = absl::ToUnixMicros(now);
  if (offer.starts_at_us != 0 && now_us < offer.starts_at_us) return offer.not_yet_valid;
  if (offer.ends_at_us != 0 && now_us >= offer.ends_at_us) return offer.expired;
  if (o.channels_size() > 0 && std::find(o.channels().begin(), o.channels().end(), channel) == o.channels().end()) {
    return absl::StrCat(offer.wrong_channel, channel == 0 ? "an unspecified channel" : ChannelText(channel));
  }
  std::optional<absl::flat_hash_set<std::string>> segments;
  if (offer.reads_segments) {
    if (segments_ == nullptr) return absl::FailedPreconditionError("offer_id: this engine reads no segments");
    ECRM_ASSIGN_OR_RETURN(std::vector<std::string> ids, segments_->CustomerSegments(customer.id()));
    segments.emplace(ids.begin(), ids.end());
  }
  if (o.segment_ids_size() > 0 && std::none_of(o.segment_ids().begin(), o.segment_ids().end(),
                                               [&](const std::string& s) { return segments->contains(s); })) {
    return offer.not_in_segment;
  }
  if (offer.has_rule) {
    if (const std::string* why = RuleRejects(offer, customer, segments ? &*segments : nullptr, now); why != nullptr) {
      return *why;
    }
  }
  if (o.per_customer_cap() > 0 || o.total_budget() > 0) {
    ECRM_ASSIGN_OR_RETURN(sql::Result r, db_.Execute("SELECT o.impressions, COALESCE(i.shown, 0) FROM offers o LEFT "
                                                     "JOIN offer_impressions i ON i.offer_id = o.id AND "
                                                     "i.customer_id = $1 WHERE o.id = $2",
                                                     {customer.id(), o.id()}));
    const int64_t total = r.empty() ? 0 : r.front().Int(0);
    const int64_t shown = r.empty() ? 0 : r.front().Int(1);
    if (o.per_customer_cap() > 0 && shown >= o.per_customer_cap()) {
      return absl::StrCat("capped: shown ", shown, " of ", o.per_customer_cap(), " times to this customer");
    }
    if (o.total_budget() > 0 && total >= o.total_budget()) {
      return absl::StrCat("budget spent: ", total, " of ", o.total_budget(), " impressions");
    }
  }
  return std::string();
}

namespace {
size_t VarintSize(size_t n) {
  size_t size = 1;
  while (n >= 0x80) {
    n >>= 7;
    ++size;
  }
  return size;
}
void AppendVarint(std::string& out, size_t n) {
  while (n >= 0x80) {
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
    n >>= 7;
  }
  out.push_back(static_cast<char>(n));
}
// DecideOffersResponse.rejected (field 2) is map<string, string>: on the wire, one
// length-delimited entry per pair, its key field 1 and its value field 2.
constexpr char kRejectedTag = (2 << 3) | 2, kKeyTag = (1 << 3) | 2, kValueTag = (2 << 3) | 2;
size_t EntrySize(const std::string& id, const std::string& why) {
  return 1 + VarintSize(id.size()) + id.size() + 1 + VarintSize(why.size()) + why.size();
}
void AppendEntry(std::string& out, const std::string& id, const std::string& why) {
  out.push_back(kRejectedTag);
  AppendVarint(out, EntrySize(id, why));
  out.push_back(kKeyTag);
  AppendVarint(out, id.size());
  out.append(id);
  out.push_back(kValueTag);
  AppendVarint(out, why.size());
  out.append(why);
}
}  // namespace

std::string DecisionWire(const Offers::Decision& d) {
  size_t size = d.response.ByteSizeLong();
  for (const auto& [id, why] : d.rejected) {
    const size_t entry = EntrySize(*id, *why);
    size += 1 + VarintSize(entry) + entry;
  }
  for (const auto& [id, why] : d.rejected_now) {
    const size_t entry = EntrySize(*id, why);
    size += 1 + VarintSize(entry) + entry;
  }
  std::string out;
  out.reserve(size);
  d.response.AppendToString(&out);
  for (const auto& [id, why] : d.rejected) AppendEntry(out, *id, *why);
  for (const auto& [id, why] : d.rejected_now) AppendEntry(out, *id, why);
  return out;
}

absl::StatusOr<Offers::Decision> Offers::Choose(const v1::DecideOffersRequest& req,
                                                const infostore::v1::Customer* given, bool explain) {
  if (req.customer_id().empty()) return util::Invalid("customer_id", "required");
  if (req.max_offers() < 0) return util::Invalid("max_offers", "must not be negative (0: 3)");
  if (req.channel() < 0 || req.channel() > common::v1::CHANNEL_DIRECT_MAIL) {
    return util::Invalid("channel", absl::StrCat(req.channel(), " is not a channel"));
  }
  const int max = req.max_offers() == 0 ? kDefaultMaxOffers : std::min(req.max_offers(), kMaxOffers);
  ECRM_ASSIGN_OR_RETURN(std::shared_ptr<const Snapshot> snapshot, Active());
  std::vector<absl::StatusOr<infostore::v1::Customer>> read;
  if (given == nullptr) {
    read = customers_.Get({req.customer_id()});
    if (!read[0].ok()) {
      if (absl::IsNotFound(read[0].status())) {
        return absl::NotFoundError(absl::StrCat("customer_id: customer \"", req.customer_id(), "\" does not exist"));
      }
      return read[0].status();
    }
  }
  const infostore::v1::Customer& customer = given != nullptr ? *given : *read[0];
  const absl::Time now = clock_();
  const int64_t now_us = absl::ToUnixMicros(now);
  const std::shared_ptr<const Route> route = RouteFor(*snapshot, req.placement(), req.channel());

  Decision decision;
  decision.held =
      std::make_shared<std::pair<std::shared_ptr<const Snapshot>, std::shared_ptr<const Route>>>(snapshot, route);
  v1::DecideOffersResponse& out = decision.response;
  auto& rejected = decision.rejected;
  auto& rejected_now = decision.rejected_now;
  // Outside its window: why (the window is told before the channel or placement), else null.
  auto outside = [now_us](const CompiledOffer& offer) -> const std::string* {
    if (offer.starts_at_us != 0 && now_us < offer.starts_at_us) return &offer.not_yet_valid;
    if (offer.ends_at_us != 0 && now_us >= offer.ends_at_us) return &offer.expired;
    return nullptr;
  };
  if (explain) {
    rejected.reserve(route->misrouted.size() + route->reachable.size());
    for (const auto& [offer, why] : route->misrouted) {
      const std::string* window = outside(*offer);
      rejected.emplace_back(&offer->proto.id(), window != nullptr ? window : &why);
    }
  }
  struct Candidate {
    const CompiledOffer* offer;
    const std::string* segment;        // the segment that made it eligible
    std::vector<std::string> reasons;  // the chosen ones' only
  };
  // Reused by the thread's next decision: no allocation per call (one of a few KB would also
  // make malloc consolidate its free lists each time).
  thread_local std::vector<Candidate> scratch;
  std::vector<Candidate>& candidates = scratch;
  candidates.clear();
  std::optional<absl::flat_hash_set<std::string>> segments;  // read once, when first needed
  for (const CompiledOffer* reachable : route->reachable) {
    const CompiledOffer& offer = *reachable;
    const v1::Offer& o = offer.proto;
    if (const std::string* window = outside(offer); window != nullptr) {
      rejected.emplace_back(&o.id(), window);
      continue;
    }
    Candidate candidate{&offer, nullptr, {}};
    if (offer.reads_segments && !segments) {
      ECRM_ASSIGN_OR_RETURN(std::vector<std::string> ids, segments_->CustomerSegments(customer.id()));
      segments.emplace(ids.begin(), ids.end());
    }
    if (o.segment_ids_size() > 0) {
      auto in = std::find_if(o.segment_ids().begin(), o.segment_ids().end(),
                             [&](const std::string& s) { return segments->contains(s); });
      if (in == o.segment_ids().end()) {
        rejected.emplace_back(&o.id(), &offer.not_in_segment);
        continue;
      }
      candidate.segment = &*in;
    }
    if (offer.has_rule) {
      const std::string* why = RuleRejects(offer, customer, segments ? &*segments : nullptr, now);
      if (why != nullptr) {
        rejected.emplace_back(&o.id(), why);
        continue;
      }
    }
    candidates.push_back(std::move(candidate));
  }
  // Priority, then expected value (the offer's value: there is no response model yet), then id.
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    const v1::Offer& x = a.offer->proto;
    const v1::Offer& y = b.offer->proto;
    if (x.priority() != y.priority()) return x.priority() > y.priority();
    if (x.value().amount_minor() != y.value().amount_minor())
      return x.value().amount_minor() > y.value().amount_minor();
    return x.id() < y.id();
  });

  // Caps and budgets. Without record_impression, the counts as they are; with it, each
  // impression is taken by a conditional write that fails once the count is reached, in one
  // transaction, so concurrent decisions never exceed a cap or a budget.
  // Only the ranked candidates down to the max-th one without a cap or budget can be shown:
  // the others are eligible, ranked below, and not checked (nor rejected).
  {
    size_t reach = 0;
    int sure = 0;
    while (reach < candidates.size() && sure < max) {
      const v1::Offer& o = candidates[reach++].offer->proto;
      if (o.per_customer_cap() == 0 && o.total_budget() == 0) ++sure;
    }
    candidates.erase(candidates.begin() + static_cast<std::ptrdiff_t>(reach), candidates.end());
  }
  std::vector<const Candidate*> chosen;
  if (!req.record_impression()) {
    // The counts of the offers in reach with a cap or a budget, in one query.
    absl::flat_hash_map<std::string, int64_t> shown, totals;
    std::vector<sql::Value> params = {customer.id()};
    for (const Candidate& c : candidates) {
      if (c.offer->proto.per_customer_cap() > 0 || c.offer->proto.total_budget() > 0) {
        params.emplace_back(c.offer->proto.id());
      }
    }
    if (params.size() > 1) {
      ECRM_ASSIGN_OR_RETURN(sql::Lease lease, db_.Acquire());
      ECRM_ASSIGN_OR_RETURN(
          sql::Result r,
          lease->Execute(absl::StrCat("SELECT o.id, o.impressions, COALESCE(i.shown, 0) FROM offers o LEFT JOIN "
                                      "offer_impressions i ON i.offer_id = o.id AND i.customer_id = $1 WHERE o.id IN (",
                                      util::Placeholders(2, static_cast<int>(params.size() - 1)), ")"),
                         absl::MakeConstSpan(params)));
      for (const sql::Row& row : r) {
        totals[row.Text(0)] = row.Int(1);
        shown[row.Text(0)] = row.Int(2);
      }
    }
    for (Candidate& c : candidates) {
      const v1::Offer& o = c.offer->proto;
      if (static_cast<int>(chosen.size()) >= max) break;  // eligible, ranked below: not rejected
      const int64_t n = shown.contains(o.id()) ? shown[o.id()] : 0;
      if (o.per_customer_cap() > 0 && n >= o.per_customer_cap()) {
        rejected_now.emplace_back(
            &o.id(), absl::StrCat("capped: shown ", n, " of ", o.per_customer_cap(), " times to this customer"));
        continue;
      }
      const int64_t total = totals.contains(o.id()) ? totals[o.id()] : 0;
      if (o.total_budget() > 0 && total >= o.total_budget()) {
        rejected_now.emplace_back(&o.id(),
                                  absl::StrCat("budget spent: ", total, " of ", o.total_budget(), " impressions"));
        continue;
      }
      if (o.per_customer_cap() > 0) {
        c.reasons.push_back(absl::StrCat("shown ", n, " of ", o.per_customer_cap(), " times to this customer"));
      }
      chosen.push_back(&c);
    }
  } else {
    std::vector<std::pair<const std::string*, std::string>> refused;  // offer id, why
    std::vector<std::string> extra;                                   // per chosen candidate
    ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
      chosen.clear();
      refused.clear();
      extra.clear();
      for (const Candidate& cand : candidates) {
        if (static_cast<int>(chosen.size()) >= max) break;
        const v1::Offer& o = cand.offer->proto;
        // The customer's impression: refused when the cap is reached (the row's lock orders
        // concurrent decisions; each sees the count the one before left).
        ECRM_ASSIGN_OR_RETURN(
            sql::Result mine,
            c.Execute("INSERT INTO offer_impressions (customer_id, offer_id, shown, first_at, last_at) VALUES "
                      "($1, $2, 1, $3, $3) ON CONFLICT (customer_id, offer_id) DO UPDATE SET shown = "
                      "offer_impressions.shown + 1, last_at = $3 WHERE $4 = 0 OR offer_impressions.shown < $4 "
                      "RETURNING shown",
                      {customer.id(), o.id(), now_us, static_cast<int64_t>(o.per_customer_cap())}));
        if (mine.empty() || (o.per_customer_cap() > 0 && mine.front().Int(0) > o.per_customer_cap())) {
          refused.emplace_back(&o.id(), absl::StrCat("capped: shown ", o.per_customer_cap(), " of ",
                                                     o.per_customer_cap(), " times to this customer"));
          continue;
        }
        const int64_t shown = mine.front().Int(0);
        ECRM_ASSIGN_OR_RETURN(sql::Result total,
                              c.Execute("UPDATE offers SET impressions = impressions + 1 WHERE id = $1 AND ($2 = 0 OR "
                                        "impressions < $2) RETURNING impressions",
                                        {o.id(), o.total_budget()}));
        if (total.empty()) {
          // Give the customer's impression back: this decision does not show the offer.
          ECRM_RETURN_IF_ERROR(c.Execute("UPDATE offer_impressions SET shown = shown - 1 WHERE customer_id = $1 AND "
                                         "offer_id = $2",
                                         {customer.id(), o.id()})
                                   .status());
          ECRM_RETURN_IF_ERROR(c.Execute("DELETE FROM offer_impressions WHERE customer_id = $1 AND offer_id = $2 AND "
                                         "shown = 0",
                                         {customer.id(), o.id()})
                                   .status());
          refused.emplace_back(
              &o.id(), absl::StrCat("budget spent: ", o.total_budget(), " of ", o.total_budget(), " impressions"));
          continue;
        }
        chosen.push_back(&cand);
        std::string note = absl::StrCat("impression ", shown);
        if (o.per_customer_cap() > 0) absl::StrAppend(&note, " of ", o.per_customer_cap());
        absl::StrAppend(&note, " for this customer");
        if (o.total_budget() > 0)
          absl::StrAppend(&note, ", ", total.front().Int(0), " of ", o.total_budget(), " in all");
        extra.push_back(std::move(note));
      }
      return absl::OkStatus();
    }));
    for (auto& r : refused) rejected_now.push_back(std::move(r));
    for (size_t i = 0; i < chosen.size(); ++i) const_cast<Candidate*>(chosen[i])->reasons.push_back(extra[i]);
  }
  for (size_t i = 0; i < chosen.size(); ++i) {
    const Candidate& c = *chosen[i];
    const v1::Offer& o = c.offer->proto;
    v1::OfferDecision* d = out.add_decisions();
    *d->mutable_offer() = o;
    d->set_rank(static_cast<int32_t>(i + 1));
    if (c.segment != nullptr) d->add_reasons(absl::StrCat("segment ", *c.segment));
    for (const std::string& r : c.offer->chosen_because) d->add_reasons(r);
    for (const std::string& r : c.reasons) d->add_reasons(r);
  }
  return decision;
}

absl::StatusOr<std::string> Offers::ExportImpressions(const std::vector<std::string>& customer_ids) {
  google::protobuf::ListValue list;
  for (const std::string& id : customer_ids) {
    ECRM_ASSIGN_OR_RETURN(sql::Result r, db_.Execute("SELECT i.offer_id, i.shown, i.first_at, i.last_at, o.data FROM "
                                                     "offer_impressions i LEFT JOIN offers o ON o.id = i.offer_id "
                                                     "WHERE i.customer_id = $1 ORDER BY i.offer_id",
                                                     {id}));
    for (const sql::Row& row : r) {
      auto& f = *list.add_values()->mutable_struct_value()->mutable_fields();
      f["customer_id"].set_string_value(id);
      f["offer_id"].set_string_value(std::string(row.Text(0)));
      v1::Offer o;
      if (!row.IsNull(4) && o.ParseFromString(std::string(row.Text(4)))) {
        f["offer_name"].set_string_value(o.name());
        f["headline"].set_string_value(o.headline());
      }
      f["impressions"].set_number_value(static_cast<double>(row.Int(1)));
      f["first_shown_at"].set_string_value(
          absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", absl::FromUnixMicros(row.Int(2)), absl::UTCTimeZone()));
      f["last_shown_at"].set_string_value(
          absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", absl::FromUnixMicros(row.Int(3)), absl::UTCTimeZone()));
    }
  }
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(list, &json).ok()) {
    return absl::InternalError("offer impressions do not convert to JSON");
  }
  return json;
}

absl::StatusOr<int64_t> Offers::EraseImpressions(const std::vector<std::string>& customer_ids) {
  int64_t erased = 0;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    erased = 0;
    for (const std::string& id : customer_ids) {
      ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute("DELETE FROM offer_impressions WHERE customer_id = $1", {id}));
      erased += r.rows_affected();
    }
    return absl::OkStatus();
  }));
  if (erased > 0) ECRM_RETURN_IF_ERROR(sql::Vacuum(db_, "offer_impressions"));
  return erased;
}

}  // namespace ecrm::personalisation
