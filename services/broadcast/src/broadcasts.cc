#include "broadcasts.h"

#include <unordered_set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "deliveries.h"
#include "delivery_rows.h"
#include "ecrm/broadcast/internal/record.pb.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/page_token.h"
#include "ecrm/util/util.h"

namespace ecrm::broadcast {
namespace {

constexpr idempotency::Operation kCreateBroadcast{"CreateBroadcast", "idempotency_key"};
constexpr int kMaxAudience = 1'000'000;
constexpr int kBatch = 1000;

// A broadcast's id when CreateBroadcast has an idempotency key.
std::string KeyedId(const std::string& key) { return absl::StrCat("b_", util::Sha256Hex(key).substr(0, 24)); }

std::string NameAfter(const std::string& name, absl::string_view prefix) {
  return absl::StartsWith(name, prefix) ? name.substr(prefix.size()) : name;
}

constexpr absl::string_view kColumns = "id, campaign_id, state, audience_size, created_at, completed_at";

absl::StatusOr<v1::BroadcastJob> ReadJob(sql::Connection& c, const sql::Row& r) {
  v1::BroadcastJob job;
  job.set_id(std::string(r.Text(0)));
  job.set_campaign_id(std::string(r.Text(1)));
  job.set_state(static_cast<v1::BroadcastState>(r.Int(2)));
  job.set_audience_size(r.Int(3));
  *job.mutable_created_at() = util::Ts(r.Int(4));
  if (r.Int(5) != 0) *job.mutable_completed_at() = util::Ts(r.Int(5));
  // Kept counts (broadcast_progress, written with the rows' changes), not the rows counted.
  ECRM_ASSIGN_OR_RETURN(sql::Result counts,
                        c.Execute("SELECT state, suppression_reason, SUM(n) FROM broadcast_progress WHERE "
                                  "broadcast_id = $1 GROUP BY state, suppression_reason",
                                  {job.id()}));
  for (sql::Row row : counts) {
    if (row.Int(2) == 0) continue;
    const auto state = static_cast<v1::DeliveryState>(row.Int(0));
    (*job.mutable_by_state())[NameAfter(v1::DeliveryState_Name(state), "DELIVERY_STATE_")] += row.Int(2);
    if (state == v1::DELIVERY_STATE_SUPPRESSED) {
      const auto reason = static_cast<v1::SuppressionReason>(row.Int(1));
      (*job.mutable_by_suppression_reason())[NameAfter(v1::SuppressionReason_Name(reason), "SUPPRESSION_REASON_")] +=
          row.Int(2);
    }
  }
  return job;
}

// An offer CreateBroadcast can queue: one with a template to render it with, active and not over
// (else every delivery would be held back as not eligible).
absl::Status CheckOffer(const v1::CreateBroadcastRequest& req, const OfferSummary& offer, absl::Time now) {
  const std::string& id = req.content().offer_id();
  if (offer.template_id.empty() && !req.content().has_template_id()) {
    return absl::FailedPreconditionError(absl::StrCat("content.offer_id: offer \"", id,
                                                      "\" has no template_id to render it with: set the offer's "
                                                      "template_id or give content.template_id"));
  }
  if (!offer.active) {
    return absl::FailedPreconditionError(
        absl::StrCat("content.offer_id: offer \"", id, "\" is not active: activate it in personalisation first"));
  }
  if (offer.ends_at <= now) {
    return absl::FailedPreconditionError(
        absl::StrCat("content.offer_id: offer \"", id, "\" ended at ",
                     absl::FormatTime(absl::RFC3339_sec, offer.ends_at, absl::UTCTimeZone()), ": extend it first"));
  }
  return absl::OkStatus();
}

}  // namespace

Broadcasts::Broadcasts(sql::Database& db, idempotency::Store& keys, std::set<common::v1::Channel> available,
                       std::function<void()> on_queued, Clock clock)
    : db_(db),
      keys_(keys),
      available_(std::move(available)),
      on_queued_(std::move(on_queued)),
      clock_(std::move(clock)) {}

std::string Broadcasts::DeliveryId(const std::string& broadcast_id, const std::string& customer_id) {
  return absl::StrCat("d_", util::Sha256Hex(absl::StrCat(broadcast_id, "\n", customer_id)).substr(0, 24));
}

absl::StatusOr<v1::BroadcastJob> Broadcasts::Create(const v1::CreateBroadcastRequest& req) {
  if (req.campaign_id().size() > 128) return util::Invalid("campaign_id", "is over 128 bytes");
  if (!req.segment_id().empty() && !req.customer_ids().empty()) {
    return util::Invalid("segment_id", "set either segment_id or customer_ids, not both");
  }
  if (req.segment_id().empty()) {
    if (req.customer_ids().empty()) return util::Invalid("customer_ids", "the audience is empty");
    if (req.customer_ids_size() > kMaxAudience) {
      return util::Invalid("customer_ids", "at most 1,000,000 per broadcast");
    }
    for (int i = 0; i < req.customer_ids_size(); ++i) {
      if (req.customer_ids(i).empty() || req.customer_ids(i).size() > 128) {
        return util::Invalid(absl::StrCat("customer_ids[", i, "]"), "must be 1-128 bytes");
      }
    }
  } else if (req.segment_id().size() > 128) {
    return util::Invalid("segment_id", "is over 128 bytes");
  } else if (segments_ == nullptr) {
    return absl::FailedPreconditionError(
        "segment_id: this engine has no segmentation engine to resolve segments (--segmentation-address); pass "
        "the audience as customer_ids");
  }
  bool any_available = false;
  for (int i = 0; i < req.channels_size(); ++i) {
    const common::v1::Channel ch = req.channels(i);
    if (!common::v1::Channel_IsValid(ch) || ch == common::v1::CHANNEL_UNSPECIFIED) {
      return util::Invalid(absl::StrCat("channels[", i, "]"), "is not a channel");
    }
    any_available |= available_.contains(ch);
  }
  if (req.channels_size() > 0 && !any_available) {
    return absl::FailedPreconditionError("channels: none of them is configured on this engine");
  }
  ECRM_RETURN_IF_ERROR(ValidatePurpose(req.purpose(), "purpose"));
  ECRM_RETURN_IF_ERROR(ValidateContent(req.content(), "content"));
  if (req.rate_limit_per_second() < 0) {
    return util::Invalid("rate_limit_per_second", "must be positive, or 0 for the channels' own limits");
  }
  if (!v1::QuietHoursPolicy_IsValid(req.quiet_hours())) return util::Invalid("quiet_hours", "is not a policy");
  if (req.category().size() > 64) return util::Invalid("category", "is over 64 bytes");
  ECRM_RETURN_IF_ERROR(idempotency::ValidateKey(kCreateBroadcast, req.idempotency_key(), false));
  // A retry of a broadcast already written replays it (the key's check included) without asking
  // personalisation again, nor, once it is loaded, segmentation.
  bool exists = false, loaded = false;
  if (!req.idempotency_key().empty()) {
    ECRM_ASSIGN_OR_RETURN(sql::Result r,
                          db_.Execute("SELECT loaded FROM broadcasts WHERE id = $1", {KeyedId(req.idempotency_key())}));
    exists = !r.empty();
    loaded = exists && r.front().Int(0) != 0;
  }
  if (!exists && templates_ != nullptr && req.content().has_template_id()) {
    // An unknown template is refused now rather than failing every delivery later. Personalisation
    // not answering does not hold the broadcast up: its workers render (or fail) each delivery.
    absl::Status known = templates_->CheckTemplate(req.content().template_id(), absl::Now() + templates_timeout_);
    if (absl::IsNotFound(known) || absl::IsInvalidArgument(known)) return known;
  }
  if (!exists && templates_ != nullptr && !req.content().offer_id().empty()) {
    // Likewise an unknown offer, or one with no template to render it with.
    const std::string& offer_id = req.content().offer_id();
    absl::StatusOr<OfferSummary> offer = templates_->Offer(offer_id, absl::Now() + templates_timeout_);
    if (absl::IsNotFound(offer.status()) || absl::IsInvalidArgument(offer.status())) return offer.status();
    if (offer.ok()) ECRM_RETURN_IF_ERROR(CheckOffer(req, *offer, clock_()));
  }
  if (req.segment_id().empty()) return CreateFor(req, req.customer_ids());
  if (loaded) return CreateFor(req, {});

  // The segment's members, in memory (at most kMaxAudience ids, ~100 MB at worst) before
  // anything is written: an unknown segment or segmentation down leaves no broadcast behind.
  google::protobuf::RepeatedPtrField<std::string> members;
  ECRM_RETURN_IF_ERROR(segments_->ForEachMember(
      req.segment_id(), absl::Now() + segments_timeout_, [&](std::vector<std::string> batch) -> absl::Status {
        if (members.size() + batch.size() > static_cast<size_t>(kMaxAudience)) {
          return util::Invalid("segment_id", "the segment has over 1,000,000 members, more than one broadcast takes");
        }
        for (std::string& id : batch) {
          if (!id.empty()) members.Add(std::move(id));
        }
        return absl::OkStatus();
      }));
  if (members.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("segment_id: segment \"", req.segment_id(), "\" has no members"));
  }
  return CreateFor(req, members);
}

absl::StatusOr<v1::BroadcastJob> Broadcasts::CreateFor(
    const v1::CreateBroadcastRequest& req, const google::protobuf::RepeatedPtrField<std::string>& audience_ids) {
  const int64_t now_us = absl::ToUnixMicros(clock_());
  // With a key, the id follows from it, so a retry after a crash mid-load finishes the same one.
  const std::string id = req.idempotency_key().empty() ? util::NewId("b") : KeyedId(req.idempotency_key());
  std::unordered_set<std::string> seen;
  int64_t audience = 0;
  for (const std::string& c : audience_ids) audience += seen.insert(c).second;
  internal::BroadcastRecord record;
  for (int ch : req.channels()) record.mutable_message()->add_channels(static_cast<common::v1::Channel>(ch));
  *record.mutable_message()->mutable_content() = req.content();
  record.mutable_message()->set_category(req.category());
  record.mutable_message()->set_quiet_hours(req.quiet_hours());
  record.set_purpose(req.purpose());
  record.set_rate_limit_per_second(req.rate_limit_per_second());

  bool loaded = false;
  int64_t created_us = now_us;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ECRM_ASSIGN_OR_RETURN(std::optional<std::string> replay,
                          keys_.Claim(c, kCreateBroadcast, req.idempotency_key(), req));
    if (replay) {
      ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute("SELECT loaded, created_at FROM broadcasts WHERE id = $1", {id}));
      if (r.empty()) return absl::DataLossError(absl::StrCat("broadcast ", id, " of a claimed key is missing"));
      loaded = r.front().Int(0) != 0;
      created_us = r.front().Int(1);
      return absl::OkStatus();
    }
    ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO broadcasts (id, campaign_id, state, loaded, audience_size, created_at, "
                                   "completed_at, body) VALUES ($1, $2, $3, 0, $4, $5, 0, $6)",
                                   {id, req.campaign_id(), static_cast<int>(v1::BROADCAST_STATE_RUNNING), audience,
                                    now_us, sql::Blob{record.SerializeAsString()}})
                             .status());
    v1::BroadcastJob first;
    first.set_id(id);
    return keys_.Complete(c, kCreateBroadcast, req.idempotency_key(), first.SerializeAsString(), "");
  }));
  if (!loaded) {
    ECRM_RETURN_IF_ERROR(Load(id, req, audience_ids, created_us));
    if (on_queued_) on_queued_();
  }
  return Get(id);
}

absl::Status Broadcasts::Load(const std::string& id, const v1::CreateBroadcastRequest& req,
                              const google::protobuf::RepeatedPtrField<std::string>& audience, int64_t created_us) {
  // The rows carry no message of their own (an empty body): it is the broadcast's, stored once in
  // its BroadcastRecord, which the worker reads once per claim (dispatcher.cc). A 10 KB mail
  // copied into every row made each of the row's three updates rewrite it.
  const std::string body;
  static const std::vector<std::string> kColumnsIn = {
      "id",        "customer_id", "broadcast_id",        "campaign_id", "purpose",
      "channel",   "state",       "suppression_reason",  "address",     "subject",
      "attempts",  "last_error",  "provider_message_id", "created_at",  "sent_at",
      "opened_at", "clicked_at",  "next_attempt_at",     "lease_until", "lease_owner",
      "sending",   "body"};
  std::unordered_set<std::string> seen;
  std::vector<std::string> ids;
  std::vector<sql::Value> values;
  auto flush = [&]() -> absl::Status {
    if (ids.empty()) return absl::OkStatus();
    ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
      ECRM_ASSIGN_OR_RETURN(int64_t inserted,
                            c.InsertBatch("deliveries", kColumnsIn, values, "ON CONFLICT (id) DO NOTHING"));
      ProgressChanges progress;
      progress.Add(id, v1::DELIVERY_STATE_QUEUED, v1::SUPPRESSION_REASON_UNSPECIFIED, inserted);
      return progress.Write(c);
    }));
    ids.clear();
    values.clear();
    return absl::OkStatus();
  };
  const std::string& subject = req.content().literal().subject();
  for (const std::string& customer : audience) {
    if (!seen.insert(customer).second) continue;
    ids.push_back(DeliveryId(id, customer));
    for (sql::Value v : std::initializer_list<sql::Value>{ids.back(),
                                                          customer,
                                                          id,
                                                          req.campaign_id(),
                                                          static_cast<int>(req.purpose()),
                                                          0,
                                                          static_cast<int>(v1::DELIVERY_STATE_QUEUED),
                                                          0,
                                                          "",
                                                          subject,
                                                          0,
                                                          "",
                                                          "",
                                                          created_us,
                                                          0,
                                                          0,
                                                          0,
                                                          created_us,
                                                          0,
                                                          "",
                                                          0,
                                                          sql::Blob{body}}) {
      values.push_back(std::move(v));
    }
    if (static_cast<int>(ids.size()) >= kBatch) ECRM_RETURN_IF_ERROR(flush());
  }
  ECRM_RETURN_IF_ERROR(flush());
  // The audience as loaded: a segment read again after a crash mid-load may have changed. In a
  // transaction that takes the write lock first: alone, SQLite's statement reads, then fails
  // "database is locked" at once (no busy wait) when a worker committed before it could write.
  return db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    return c
        .Execute(
            "UPDATE broadcasts SET loaded = 1, audience_size = (SELECT COUNT(*) FROM deliveries WHERE "
            "broadcast_id = $1) WHERE id = $1",
            {id})
        .status();
  });
}

absl::StatusOr<v1::BroadcastJob> Broadcasts::Get(const std::string& id) {
  if (id.empty()) return util::Invalid("id", "is required");
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  ECRM_ASSIGN_OR_RETURN(sql::Result r,
                        conn->Execute(absl::StrCat("SELECT ", kColumns, " FROM broadcasts WHERE id = $1"), {id}));
  if (r.empty()) return absl::NotFoundError(absl::StrCat("id: no broadcast \"", id, "\""));
  return ReadJob(*conn, r.front());
}

absl::StatusOr<v1::ListBroadcastsResponse> Broadcasts::List(const v1::ListBroadcastsRequest& req) {
  ECRM_ASSIGN_OR_RETURN(std::optional<util::PageCursor> after,
                        util::DecodePageToken("ListBroadcasts", req.page_token()));
  const int size = util::PageSize(req.page_size(), 20, 100);
  std::string sql = absl::StrCat("SELECT ", kColumns, " FROM broadcasts WHERE 1 = 1");
  std::vector<sql::Value> params;
  if (!req.campaign_id().empty()) {
    params.emplace_back(req.campaign_id());
    absl::StrAppend(&sql, " AND campaign_id = $1");
  }
  AppendNewestFirstPage(sql, params, after, size);
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  ECRM_ASSIGN_OR_RETURN(sql::Result r, conn->Execute(sql, params));
  v1::ListBroadcastsResponse out;
  for (size_t i = 0; i < r.size() && static_cast<int>(i) < size; ++i) {
    ECRM_ASSIGN_OR_RETURN(*out.add_broadcasts(), ReadJob(*conn, r.row(i)));
  }
  if (static_cast<int>(r.size()) > size) {
    const v1::BroadcastJob& last = out.broadcasts(size - 1);
    out.set_next_page_token(util::EncodePageToken("ListBroadcasts", {util::Micros(last.created_at()), last.id()}));
  }
  return out;
}

absl::StatusOr<v1::BroadcastJob> Broadcasts::Transition(const std::string& id, std::set<v1::BroadcastState> from,
                                                        v1::BroadcastState to, absl::string_view verb) {
  if (id.empty()) return util::Invalid("id", "is required");
  const int64_t now_us = absl::ToUnixMicros(clock_());
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ECRM_ASSIGN_OR_RETURN(sql::Result r,
                          c.Execute(absl::StrCat("SELECT state FROM broadcasts WHERE id = $1", ForUpdate(c)), {id}));
    if (r.empty()) return absl::NotFoundError(absl::StrCat("id: no broadcast \"", id, "\""));
    const auto state = static_cast<v1::BroadcastState>(r.front().Int(0));
    if (state == to) return absl::OkStatus();  // already there: a retried call succeeds
    if (!from.contains(state)) {
      return absl::FailedPreconditionError(absl::StrCat("broadcast ", id, " is ",
                                                        NameAfter(v1::BroadcastState_Name(state), "BROADCAST_STATE_"),
                                                        " and cannot be ", verb));
    }
    ECRM_RETURN_IF_ERROR(
        c.Execute("UPDATE broadcasts SET state = $2, completed_at = $3 WHERE id = $1",
                  {id, static_cast<int>(to), to == v1::BROADCAST_STATE_CANCELLED ? now_us : int64_t{0}})
            .status());
    if (to == v1::BROADCAST_STATE_CANCELLED) {
      // Rows a worker holds are finished by it (it sees the cancellation before it sends).
      ECRM_ASSIGN_OR_RETURN(sql::Result u,
                            c.Execute("UPDATE deliveries SET state = $2 WHERE state = $3 AND broadcast_id = $1 AND "
                                      "lease_until <= $4",
                                      {id, static_cast<int>(v1::DELIVERY_STATE_CANCELLED),
                                       static_cast<int>(v1::DELIVERY_STATE_QUEUED), now_us}));
      ProgressChanges progress;
      progress.Add(id, v1::DELIVERY_STATE_QUEUED, v1::SUPPRESSION_REASON_UNSPECIFIED, -u.rows_affected());
      progress.Add(id, v1::DELIVERY_STATE_CANCELLED, v1::SUPPRESSION_REASON_UNSPECIFIED, u.rows_affected());
      ECRM_RETURN_IF_ERROR(progress.Write(c));
    }
    return absl::OkStatus();
  }));
  if (to == v1::BROADCAST_STATE_RUNNING && on_queued_) on_queued_();
  return Get(id);
}

absl::StatusOr<v1::BroadcastJob> Broadcasts::Pause(const std::string& id) {
  return Transition(id, {v1::BROADCAST_STATE_RUNNING}, v1::BROADCAST_STATE_PAUSED, "paused");
}

absl::StatusOr<v1::BroadcastJob> Broadcasts::Resume(const std::string& id) {
  return Transition(id, {v1::BROADCAST_STATE_PAUSED}, v1::BROADCAST_STATE_RUNNING, "resumed");
}

absl::StatusOr<v1::BroadcastJob> Broadcasts::Cancel(const std::string& id) {
  return Transition(id, {v1::BROADCAST_STATE_RUNNING, v1::BROADCAST_STATE_PAUSED}, v1::BROADCAST_STATE_CANCELLED,
                    "cancelled");
}

}  // namespace ecrm::broadcast
