// Consents and preferences: UpdateConsent (with its history), GetConsentHistory,
// UpdatePreferences.
#include <algorithm>
#include <limits>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "customer_store.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/page_token.h"
#include "store_helpers.h"

namespace ecrm::infostore {

absl::StatusOr<v1::Customer> CustomerStore::UpdateConsent(const v1::UpdateConsentRequest& request) {
  if (request.channel() == common::v1::CHANNEL_UNSPECIFIED || !common::v1::Channel_IsValid(request.channel())) {
    return Invalid("channel", "must be a channel such as CHANNEL_EMAIL");
  }
  if (request.purpose() == common::v1::PURPOSE_UNSPECIFIED || !common::v1::Purpose_IsValid(request.purpose())) {
    return Invalid("purpose", "must be a purpose such as PURPOSE_MARKETING");
  }
  if (request.status() == v1::CONSENT_STATUS_UNSPECIFIED || !v1::ConsentStatus_IsValid(request.status())) {
    return Invalid("status", "must be GRANTED, PENDING_CONFIRMATION, DENIED or WITHDRAWN");
  }
  const int64_t now = NowMicros();
  int64_t decided = request.has_decided_at() ? Micros(request.decided_at()) : now;
  if (decided > now + absl::ToInt64Microseconds(options_.max_future_skew)) {
    return Invalid("decided_at", "is in the future");
  }
  if (request.evidence().size() > 4096) return Invalid("evidence", "is longer than 4096 bytes");
  v1::Customer out;
  std::vector<v1::Customer> written;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ChangeFeed::Pending pending;
    written.clear();
    ECRM_ASSIGN_OR_RETURN(Loaded l, LoadRef(c, request.customer()));
    v1::Customer& cu = *l.record.mutable_customer();
    v1::Consent* consent = nullptr;
    for (auto& cons : *cu.mutable_consents()) {
      if (cons.channel() == request.channel() && cons.purpose() == request.purpose()) consent = &cons;
    }
    v1::ConsentStatus previous = consent ? consent->status() : v1::CONSENT_STATUS_UNSPECIFIED;
    if (consent == nullptr) consent = cu.add_consents();
    consent->set_channel(request.channel());
    consent->set_purpose(request.purpose());
    consent->set_status(request.status());
    consent->set_source(request.source());
    *consent->mutable_updated_at() = Ts(decided);
    consent->set_evidence(request.evidence());
    consent->set_policy_version(request.policy_version());
    v1::ConsentChange change;
    *change.mutable_consent() = *consent;
    change.set_previous_status(previous);
    ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO consent_history (customer_id, channel, purpose, decided_at, change) "
                                   "VALUES ($1, $2, $3, $4, $5)",
                                   {cu.id(), static_cast<int>(request.channel()), static_cast<int>(request.purpose()),
                                    decided, sql::Blob{change.SerializeAsString()}})
                             .status());
    ECRM_RETURN_IF_ERROR(Save(c, l.record, false));
    feed_.Append(pending, v1::CHANGE_KIND_CONSENT, cu);
    out = cu;
    written.push_back(cu);
    return feed_.Flush(c, pending);
  }));
  CacheAfterCommit(written, {});
  return out;
}

absl::StatusOr<v1::GetConsentHistoryResponse> CustomerStore::ConsentHistory(
    const v1::GetConsentHistoryRequest& request) {
  int limit = request.page_size() <= 0 ? 100 : std::min(request.page_size(), 1000);
  ECRM_ASSIGN_OR_RETURN(std::optional<util::PageCursor> after,
                        util::DecodePageToken("GetConsentHistory", request.page_token()));
  const int64_t before = after ? after->number : std::numeric_limits<int64_t>::max();
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  bool found = false;
  ECRM_ASSIGN_OR_RETURN(std::string id, ResolveId(*conn, request.customer(), &found));
  if (!found) return absl::NotFoundError("customer: no such customer");
  ECRM_ASSIGN_OR_RETURN(Loaded l, Load(*conn, id, false));
  // The survivor's history includes the history of every customer merged into it.
  std::vector<std::string> members = {id};
  members.insert(members.end(), l.record.customer().merged_ids().begin(), l.record.customer().merged_ids().end());
  std::vector<std::pair<int64_t, std::string>> rows;  // (history id, change)
  for (const std::string& member : members) {
    ECRM_ASSIGN_OR_RETURN(sql::Result r, conn->Execute("SELECT id, change FROM consent_history WHERE customer_id = $1 "
                                                       "AND id < $2 AND ($3 = 0 OR channel = $3) "
                                                       "AND ($4 = 0 OR purpose = $4) ORDER BY id DESC LIMIT $5",
                                                       {member, before, static_cast<int>(request.channel()),
                                                        static_cast<int>(request.purpose()), limit + 1}));
    for (sql::Row row : r) rows.emplace_back(row.Int(0), std::string(row.Text(1)));
  }
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  v1::GetConsentHistoryResponse out;
  for (size_t i = 0; i < rows.size() && static_cast<int>(i) < limit; ++i)
    out.add_changes()->ParseFromString(rows[i].second);
  if (static_cast<int>(rows.size()) > limit)
    out.set_next_page_token(util::EncodePageToken("GetConsentHistory", {rows[limit - 1].first, ""}));
  return out;
}

absl::StatusOr<v1::Customer> CustomerStore::UpdatePreferences(const v1::UpdatePreferencesRequest& request) {
  const v1::Preferences& p = request.preferences();
  if (!common::v1::Channel_IsValid(p.preferred_channel()))
    return Invalid("preferences.preferred_channel", "unknown channel");
  if (!v1::ContactFrequency_IsValid(p.contact_frequency()))
    return Invalid("preferences.contact_frequency", "unknown value");
  if (p.interests_size() > 100) return Invalid("preferences.interests", "at most 100");
  for (int i = 0; i < p.interests_size(); ++i) {
    if (p.interests(i).empty() || p.interests(i).size() > 64) {
      return Invalid(absl::StrCat("preferences.interests[", i, "]"), "must be 1–64 characters");
    }
  }
  for (const auto* t : {&p.quiet_hours().start(), &p.quiet_hours().end()}) {
    if (t->hours() < 0 || t->hours() > 23 || t->minutes() < 0 || t->minutes() > 59) {
      return Invalid("preferences.quiet_hours", "times are hours 0–23 and minutes 0–59");
    }
  }
  static const std::set<std::string> kPaths = {"preferred_channel", "interests", "contact_frequency", "quiet_hours"};
  for (int i = 0; i < request.update_mask().paths_size(); ++i) {
    if (!kPaths.count(request.update_mask().paths(i))) {
      return Invalid(absl::StrCat("update_mask.paths[", i, "]"),
                     "must be preferred_channel, interests, contact_frequency or quiet_hours");
    }
  }
  v1::Customer out;
  std::vector<v1::Customer> written;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ChangeFeed::Pending pending;
    written.clear();
    ECRM_ASSIGN_OR_RETURN(Loaded l, LoadRef(c, request.customer()));
    v1::Preferences& cur = *l.record.mutable_customer()->mutable_preferences();
    auto masked = [&](const std::string& path) {
      if (request.update_mask().paths_size() == 0) return true;
      return std::find(request.update_mask().paths().begin(), request.update_mask().paths().end(), path) !=
             request.update_mask().paths().end();
    };
    if (masked("preferred_channel")) cur.set_preferred_channel(p.preferred_channel());
    if (masked("interests")) *cur.mutable_interests() = p.interests();
    if (masked("contact_frequency")) cur.set_contact_frequency(p.contact_frequency());
    if (masked("quiet_hours")) {
      if (p.has_quiet_hours()) {
        *cur.mutable_quiet_hours() = p.quiet_hours();
      } else {
        cur.clear_quiet_hours();
      }
    }
    ECRM_RETURN_IF_ERROR(Save(c, l.record, false));
    feed_.Append(pending, v1::CHANGE_KIND_PROFILE, l.record.customer());
    out = l.record.customer();
    written.push_back(out);
    return feed_.Flush(c, pending);
  }));
  CacheAfterCommit(written, {});
  return out;
}

}  // namespace ecrm::infostore
