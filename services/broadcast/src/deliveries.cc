#include "deliveries.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "delivery_rows.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/page_token.h"
#include "ecrm/util/util.h"
#include "gate.h"
#include "suppressions.h"

namespace ecrm::broadcast {
namespace {

constexpr idempotency::Operation kSendMessage{"SendMessage", "idempotency_key"};
constexpr int kMaxBodyBytes = 256 * 1024;

std::vector<std::string> Addresses(const infostore::v1::Customer& c) {
  std::vector<std::string> out;
  for (common::v1::Channel ch : {common::v1::CHANNEL_EMAIL, common::v1::CHANNEL_SMS, common::v1::CHANNEL_PUSH}) {
    std::string a = AddressFor(c, ch);
    if (!a.empty()) out.push_back(std::move(a));
  }
  return out;
}

absl::StatusOr<DeliveryRow> LockDelivery(sql::Connection& c, const v1::RecordDeliveryEventRequest& req) {
  const bool by_id = !req.delivery_id().empty();
  ECRM_ASSIGN_OR_RETURN(sql::Result r,
                        c.Execute(absl::StrCat("SELECT ", kDeliveryColumns, " FROM deliveries WHERE ",
                                               by_id ? "id" : "provider_message_id", " = $1", ForUpdate(c)),
                                  {by_id ? req.delivery_id() : req.provider_message_id()}));
  if (r.empty()) {
    return absl::NotFoundError(by_id ? absl::StrCat("delivery_id: no delivery \"", req.delivery_id(), "\"")
                                     : "provider_message_id: no delivery has this provider message id");
  }
  return ReadDelivery(r.front());
}

}  // namespace

absl::Status ValidateContent(const v1::MessageContent& content, absl::string_view field) {
  if (!content.offer_id().empty()) {
    if (content.offer_id().size() > 128) return util::Invalid(absl::StrCat(field, ".offer_id"), "must be 1-128 bytes");
    if (content.has_literal()) {
      return util::Invalid(absl::StrCat(field, ".offer_id"),
                           "is rendered with a template: not with literal content (drop one of them)");
    }
    if (!content.placement().empty()) {
      return util::Invalid(absl::StrCat(field, ".placement"),
                           "decides a template's offers: not with offer_id (the offer is the one shown)");
    }
  }
  switch (content.content_case()) {
    case v1::MessageContent::kTemplateId:
      if (content.template_id().empty() || content.template_id().size() > 128) {
        return util::Invalid(absl::StrCat(field, ".template_id"), "must be 1-128 bytes");
      }
      if (content.placement().size() > 100) {
        return util::Invalid(absl::StrCat(field, ".placement"), "is over 100 bytes");
      }
      return absl::OkStatus();
    case v1::MessageContent::kLiteral: {
      const v1::LiteralContent& l = content.literal();
      if (!content.placement().empty()) {
        return util::Invalid(absl::StrCat(field, ".placement"), "decides a template's offers: only with template_id");
      }
      if (l.subject().empty() && l.text_body().empty() && l.html_body().empty()) {
        return util::Invalid(absl::StrCat(field, ".literal"), "needs a subject, a text body or an HTML body");
      }
      if (l.subject().size() > 998) return util::Invalid(absl::StrCat(field, ".literal.subject"), "is over 998 bytes");
      if (l.text_body().size() + l.html_body().size() > kMaxBodyBytes) {
        return util::Invalid(absl::StrCat(field, ".literal"), "bodies are over 256 KiB together");
      }
      return absl::OkStatus();
    }
    default:
      if (!content.offer_id().empty()) return absl::OkStatus();  // the offer's own template
      if (!content.placement().empty()) {
        return util::Invalid(absl::StrCat(field, ".placement"), "decides a template's offers: only with template_id");
      }
      return util::Invalid(field, "is required: a template_id, an offer_id or literal content");
  }
}

absl::Status ValidatePurpose(common::v1::Purpose purpose, absl::string_view field) {
  if (purpose != common::v1::PURPOSE_MARKETING && purpose != common::v1::PURPOSE_SERVICE &&
      purpose != common::v1::PURPOSE_TRANSACTIONAL) {
    return util::Invalid(field, "must be PURPOSE_MARKETING, PURPOSE_SERVICE or PURPOSE_TRANSACTIONAL");
  }
  return absl::OkStatus();
}

Deliveries::Deliveries(sql::Database& db, idempotency::Store& keys, outbox::Outbox& events, Profiles& profiles,
                       DeliveriesOptions options, std::function<void()> on_queued, Clock clock)
    : db_(db),
      keys_(keys),
      events_(events),
      profiles_(profiles),
      options_(std::move(options)),
      on_queued_(std::move(on_queued)),
      clock_(std::move(clock)) {}

absl::StatusOr<v1::Delivery> Deliveries::SendMessage(const v1::SendMessageRequest& req, absl::Time deadline) {
  if (req.customer().ref_case() == common::v1::CustomerRef::REF_NOT_SET) {
    return util::Invalid("customer", "is required: a customer_id or an identifier");
  }
  if (!common::v1::Channel_IsValid(req.channel())) return util::Invalid("channel", "is not a channel");
  if (req.channel() != common::v1::CHANNEL_UNSPECIFIED && !options_.available.contains(req.channel())) {
    return absl::FailedPreconditionError(
        absl::StrCat("channel: ", common::v1::Channel_Name(req.channel()), " is not configured on this engine"));
  }
  ECRM_RETURN_IF_ERROR(ValidatePurpose(req.purpose(), "purpose"));
  ECRM_RETURN_IF_ERROR(ValidateContent(req.content(), "content"));
  if (!v1::QuietHoursPolicy_IsValid(req.quiet_hours())) return util::Invalid("quiet_hours", "is not a policy");
  if (req.category().size() > 64) return util::Invalid("category", "is over 64 bytes");
  if (req.campaign_id().size() > 128) return util::Invalid("campaign_id", "is over 128 bytes");
  ECRM_RETURN_IF_ERROR(idempotency::ValidateKey(kSendMessage, req.idempotency_key(), false));
  const absl::Time now = clock_();
  int64_t due_us = absl::ToUnixMicros(now);
  if (req.has_send_at()) {
    const int64_t at = util::Micros(req.send_at());
    if (at < absl::ToUnixMicros(now - options_.send_at_tolerance)) {
      return util::Invalid("send_at", "is in the past (more than the tolerated clock skew)");
    }
    due_us = std::max(due_us, at);
  }
  ECRM_ASSIGN_OR_RETURN(infostore::v1::Customer customer,
                        profiles_.Get(req.customer(), std::min(deadline, now + options_.profile_timeout)));
  bool queued = false, fresh = false;
  ECRM_ASSIGN_OR_RETURN(
      v1::Delivery out,
      keys_.Run<v1::Delivery>(kSendMessage, req.idempotency_key(), req,
                              [&](sql::Connection& c) -> absl::StatusOr<v1::Delivery> {
                                DeliveryRow row;
                                v1::Delivery& d = row.delivery;
                                d.set_id(util::NewId("d"));
                                d.set_customer_id(customer.id());
                                d.set_purpose(req.purpose());
                                d.set_campaign_id(req.campaign_id());
                                *d.mutable_created_at() = util::Ts(absl::ToUnixMicros(now));
                                if (req.channel() != common::v1::CHANNEL_UNSPECIFIED)
                                  row.message.add_channels(req.channel());
                                *row.message.mutable_content() = req.content();
                                row.message.set_category(req.category());
                                row.message.set_quiet_hours(req.quiet_hours());
                                d.set_subject(req.content().literal().subject());
                                // The gate now, for an answer the caller can act on; it runs again when the message
                                // comes up, on the profile as it is then.
                                ECRM_ASSIGN_OR_RETURN(std::vector<SuppressionEntry> entries,
                                                      Suppressions::ForCustomer(c, customer.id(), Addresses(customer)));
                                GateRequest gate{{}, req.purpose(), req.quiet_hours()};
                                if (req.channel() != common::v1::CHANNEL_UNSPECIFIED)
                                  gate.channels.push_back(req.channel());
                                const GateDecision decision =
                                    Decide(customer, gate, entries, options_.available, absl::FromUnixMicros(due_us));
                                d.set_state(v1::DELIVERY_STATE_QUEUED);
                                int64_t next_us = due_us;
                                switch (decision.kind) {
                                  case GateDecision::Kind::kSuppress:
                                    d.set_state(v1::DELIVERY_STATE_SUPPRESSED);
                                    d.set_suppression_reason(decision.reason);
                                    break;
                                  case GateDecision::Kind::kFail:
                                    return absl::FailedPreconditionError(absl::StrCat("channel: ", decision.error));
                                  case GateDecision::Kind::kDefer:
                                    next_us = absl::ToUnixMicros(decision.until);
                                    break;
                                  case GateDecision::Kind::kSend:
                                    d.set_channel(decision.channel);
                                    d.set_address(decision.address);
                                    break;
                                }
                                if (d.state() == v1::DELIVERY_STATE_QUEUED)
                                  *d.mutable_next_attempt_at() = util::Ts(next_us);
                                ECRM_RETURN_IF_ERROR(InsertDelivery(c, row, next_us));
                                queued = d.state() == v1::DELIVERY_STATE_QUEUED;
                                return d;
                              }));
  if (queued && on_queued_) on_queued_();
  if (fresh && !queued && options_.metrics != nullptr) {
    options_.metrics->Delivery(out.channel(), out.state());
    options_.metrics->Suppressed(out.suppression_reason());
  }
  return out;
}

absl::StatusOr<v1::ListDeliveriesResponse> Deliveries::ListDeliveries(const v1::ListDeliveriesRequest& req) {
  if (req.customer_id().empty() && req.broadcast_id().empty()) {
    return util::Invalid("customer_id", "a customer_id or a broadcast_id is required");
  }
  if (!v1::DeliveryState_IsValid(req.state())) return util::Invalid("state", "is not a delivery state");
  ECRM_ASSIGN_OR_RETURN(std::optional<util::PageCursor> after,
                        util::DecodePageToken("ListDeliveries", req.page_token()));
  const int size = util::PageSize(req.page_size());
  std::string sql = absl::StrCat("SELECT ", kDeliveryColumns, " FROM deliveries WHERE 1 = 1");
  std::vector<sql::Value> params;
  auto where = [&](absl::string_view clause, sql::Value v) {
    params.emplace_back(std::move(v));
    absl::StrAppend(&sql, " AND ", clause, " = $", params.size());
  };
  if (!req.customer_id().empty()) where("customer_id", req.customer_id());
  if (!req.broadcast_id().empty()) where("broadcast_id", req.broadcast_id());
  if (req.state() != v1::DELIVERY_STATE_UNSPECIFIED) where("state", static_cast<int>(req.state()));
  AppendNewestFirstPage(sql, params, after, size);
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  ECRM_ASSIGN_OR_RETURN(sql::Result r, conn->Execute(sql, params));
  v1::ListDeliveriesResponse out;
  for (size_t i = 0; i < r.size() && static_cast<int>(i) < size; ++i) {
    ECRM_ASSIGN_OR_RETURN(DeliveryRow row, ReadDelivery(r.row(i)));
    row.delivery.set_address(MaskAddress(row.delivery.channel(), row.delivery.address()));
    *out.add_deliveries() = std::move(row.delivery);
  }
  if (static_cast<int>(r.size()) > size) {
    const v1::Delivery& last = out.deliveries(size - 1);
    out.set_next_page_token(util::EncodePageToken("ListDeliveries", {util::Micros(last.created_at()), last.id()}));
  }
  return out;
}

absl::StatusOr<v1::Delivery> Deliveries::RecordDeliveryEvent(const v1::RecordDeliveryEventRequest& req) {
  if (req.delivery_id().empty() == req.provider_message_id().empty()) {
    return util::Invalid("delivery_id", "exactly one of delivery_id and provider_message_id must be set");
  }
  if (!v1::DeliveryEventType_IsValid(req.type()) || req.type() == v1::DELIVERY_EVENT_TYPE_UNSPECIFIED) {
    return util::Invalid("type", "must be a delivery event type");
  }
  if (req.detail().size() > 2048) return util::Invalid("detail", "is over 2048 bytes");
  const absl::Time now = clock_();
  const int64_t at = req.has_occurred_at() ? util::Micros(req.occurred_at()) : absl::ToUnixMicros(now);
  v1::Delivery out;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ECRM_ASSIGN_OR_RETURN(DeliveryRow row, LockDelivery(c, req));
    v1::Delivery& d = row.delivery;
    const int state_before = d.state();
    // An unsubscribe counts whatever became of the message since (queued again after a soft
    // bounce, failed): the customer read it, and the link stops what is still queued.
    const bool unsubscribe = req.type() == v1::DELIVERY_EVENT_TYPE_UNSUBSCRIBED &&
                             d.channel() != common::v1::CHANNEL_UNSPECIFIED && d.attempts() > 0;
    if (d.state() != v1::DELIVERY_STATE_SENT && d.state() != v1::DELIVERY_STATE_DELIVERED && !unsubscribe &&
        !(d.state() == v1::DELIVERY_STATE_FAILED && req.type() == v1::DELIVERY_EVENT_TYPE_HARD_BOUNCE)) {
      return absl::FailedPreconditionError(absl::StrCat("delivery ", d.id(), " is ", v1::DeliveryState_Name(d.state()),
                                                        ": events are recorded once a message was sent"));
    }
    const int64_t now_us = absl::ToUnixMicros(now);
    auto suppress = [&](const std::string& address, const std::string& customer, const std::string& reason) {
      return Suppressions::AddIn(c, {d.channel(), address, customer, reason, now_us});
    };
    std::string kind;
    bool implied_open = false;  // a click on a message not seen opened: its open too
    switch (req.type()) {
      case v1::DELIVERY_EVENT_TYPE_DELIVERED:
        kind = "delivered";
        if (d.state() == v1::DELIVERY_STATE_SENT) d.set_state(v1::DELIVERY_STATE_DELIVERED);
        break;
      case v1::DELIVERY_EVENT_TYPE_OPENED:
        kind = "opened";
        if (!d.has_opened_at()) *d.mutable_opened_at() = util::Ts(at);
        break;
      case v1::DELIVERY_EVENT_TYPE_CLICKED:
        kind = "clicked";
        if (!d.has_clicked_at()) *d.mutable_clicked_at() = util::Ts(at);
        if (!d.has_opened_at()) {  // a click implies the open (the pixel may be blocked)
          *d.mutable_opened_at() = util::Ts(at);
          implied_open = true;
        }
        break;
      case v1::DELIVERY_EVENT_TYPE_SOFT_BOUNCE:
        // The provider gave the message back for now: queue it again, counted afresh by the caps.
        d.set_state(v1::DELIVERY_STATE_QUEUED);
        d.set_last_error(req.detail().empty() ? "soft bounce" : req.detail());
        *d.mutable_next_attempt_at() = util::Ts(absl::ToUnixMicros(now + absl::Minutes(15)));
        ECRM_RETURN_IF_ERROR(c.Execute("DELETE FROM cap_sends WHERE delivery_id = $1", {d.id()}).status());
        break;
      case v1::DELIVERY_EVENT_TYPE_HARD_BOUNCE:
        kind = "bounced";
        d.set_state(v1::DELIVERY_STATE_FAILED);
        d.set_last_error(req.detail().empty() ? "hard bounce" : req.detail());
        ECRM_RETURN_IF_ERROR(suppress(d.address(), "", "hard_bounce"));
        break;
      case v1::DELIVERY_EVENT_TYPE_COMPLAINT:
        kind = "complained";
        ECRM_RETURN_IF_ERROR(suppress(d.address(), "", "complaint"));
        break;
      case v1::DELIVERY_EVENT_TYPE_UNSUBSCRIBED:
        kind = "unsubscribed";
        ECRM_RETURN_IF_ERROR(suppress("", d.customer_id(), "unsubscribed"));
        break;
      default:
        break;
    }
    ECRM_RETURN_IF_ERROR(
        c.Execute("UPDATE deliveries SET state = $2, last_error = $3, opened_at = $4, clicked_at = $5, "
                  "next_attempt_at = $6 WHERE id = $1",
                  {d.id(), static_cast<int>(d.state()), d.last_error(),
                   d.has_opened_at() ? util::Micros(d.opened_at()) : int64_t{0},
                   d.has_clicked_at() ? util::Micros(d.clicked_at()) : int64_t{0},
                   d.has_next_attempt_at() ? util::Micros(d.next_attempt_at()) : int64_t{0}})
            .status());
    ProgressChanges progress;
    progress.Move(d.broadcast_id(), state_before, d.suppression_reason(), d.state(), d.suppression_reason());
    ECRM_RETURN_IF_ERROR(progress.Write(c));
    if (!kind.empty()) ECRM_RETURN_IF_ERROR(events_.Add(c, MessageEvent(d, kind, at, req.detail())));
    // The open the click implies is raised as well, so that the funnel (which counts events)
    // never has more clicks than opens; its event id is the pixel's, so a later pixel does not
    // count it twice.
    if (implied_open) ECRM_RETURN_IF_ERROR(events_.Add(c, MessageEvent(d, "opened", at)));
    out = d;
    return absl::OkStatus();
  }));
  events_.Notify();
  if (out.state() == v1::DELIVERY_STATE_QUEUED && on_queued_) on_queued_();
  out.set_address(MaskAddress(out.channel(), out.address()));
  return out;
}

absl::StatusOr<v1::GetInboxResponse> Deliveries::GetInbox(const v1::GetInboxRequest& req) {
  if (req.customer_id().empty()) return util::Invalid("customer_id", "is required");
  ECRM_ASSIGN_OR_RETURN(std::optional<util::PageCursor> after, util::DecodePageToken("GetInbox", req.page_token()));
  const int size = util::PageSize(req.page_size(), 20, 100);
  const int64_t now_us = absl::ToUnixMicros(clock_());
  std::string sql =
      "SELECT delivery_id, subject, html_body, created_at, read_at, expires_at FROM inbox WHERE customer_id = $1 AND "
      "expires_at > $2";
  std::vector<sql::Value> params = {req.customer_id(), now_us};
  if (req.unread_only()) absl::StrAppend(&sql, " AND read_at = 0");
  if (after) {
    params.emplace_back(after->number);
    params.emplace_back(after->text);
    absl::StrAppend(&sql, " AND (created_at < $3 OR (created_at = $3 AND delivery_id < $4))");
  }
  params.emplace_back(size + 1);
  absl::StrAppend(&sql, " ORDER BY created_at DESC, delivery_id DESC LIMIT $", params.size());
  ECRM_ASSIGN_OR_RETURN(sql::Lease conn, db_.Acquire());
  ECRM_ASSIGN_OR_RETURN(sql::Result r, conn->Execute(sql, params));
  v1::GetInboxResponse out;
  for (size_t i = 0; i < r.size() && static_cast<int>(i) < size; ++i) {
    sql::Row row = r.row(i);
    v1::InboxMessage* m = out.add_messages();
    m->set_delivery_id(std::string(row.Text(0)));
    m->set_subject(std::string(row.Text(1)));
    m->set_html_body(std::string(row.Text(2)));
    *m->mutable_created_at() = util::Ts(row.Int(3));
    if (row.Int(4) != 0) *m->mutable_read_at() = util::Ts(row.Int(4));
    *m->mutable_expires_at() = util::Ts(row.Int(5));
  }
  if (static_cast<int>(r.size()) > size) {
    const v1::InboxMessage& last = out.messages(size - 1);
    out.set_next_page_token(util::EncodePageToken("GetInbox", {util::Micros(last.created_at()), last.delivery_id()}));
  }
  ECRM_ASSIGN_OR_RETURN(sql::Result n, conn->Execute("SELECT COUNT(*) FROM inbox WHERE customer_id = $1 AND "
                                                     "expires_at > $2 AND read_at = 0",
                                                     {req.customer_id(), now_us}));
  out.set_unread_count(n.front().Int(0));
  return out;
}

absl::StatusOr<v1::MarkInboxReadResponse> Deliveries::MarkInboxRead(const v1::MarkInboxReadRequest& req) {
  if (req.customer_id().empty()) return util::Invalid("customer_id", "is required");
  if (req.delivery_ids().empty() || req.delivery_ids_size() > 1000) {
    return util::Invalid("delivery_ids", "must name 1-1000 messages");
  }
  std::vector<std::string> ids(req.delivery_ids().begin(), req.delivery_ids().end());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  const int64_t now_us = absl::ToUnixMicros(clock_());
  v1::MarkInboxReadResponse out;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    out.set_marked(0);
    for (const std::string& id : ids) {
      ECRM_ASSIGN_OR_RETURN(sql::Result u, c.Execute("UPDATE inbox SET read_at = $3 WHERE customer_id = $1 AND "
                                                     "delivery_id = $2 AND read_at = 0",
                                                     {req.customer_id(), id, now_us}));
      if (u.rows_affected() == 0) continue;
      out.set_marked(out.marked() + 1);
      // Reading an inbox message is its open.
      ECRM_ASSIGN_OR_RETURN(
          sql::Result r, c.Execute(absl::StrCat("SELECT ", kDeliveryColumns, " FROM deliveries WHERE id = $1"), {id}));
      if (r.empty()) continue;
      ECRM_ASSIGN_OR_RETURN(DeliveryRow row, ReadDelivery(r.front()));
      ECRM_RETURN_IF_ERROR(
          c.Execute("UPDATE deliveries SET opened_at = $2 WHERE id = $1 AND opened_at = 0", {id, now_us}).status());
      ECRM_RETURN_IF_ERROR(events_.Add(c, MessageEvent(row.delivery, "opened", now_us)));
    }
    return absl::OkStatus();
  }));
  if (out.marked() > 0) events_.Notify();
  return out;
}

}  // namespace ecrm::broadcast
