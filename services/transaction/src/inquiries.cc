#include "inquiries.h"

#include <prometheus/histogram.h>

#include "absl/strings/str_cat.h"
#include "ecrm/idempotency/idempotency.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/page_token.h"
#include "records.h"
#include "store_helpers.h"

namespace ecrm::transaction {

namespace {

constexpr idempotency::Operation kOpenInquiry{"OpenInquiry", "idempotency_key"};

absl::Status ValidateBody(absl::string_view body) {
  if (body.empty()) return Invalid("body", "is required");
  if (body.size() > 10'000) return Invalid("body", "is longer than 10,000 bytes");
  return absl::OkStatus();
}

infostore::v1::Event InquiryEvent(const v1::Inquiry& q, absl::string_view type, int64_t at) {
  infostore::v1::Event e;
  e.set_event_id(absl::StrCat(type, ":", q.id()));
  e.mutable_customer()->set_customer_id(q.customer_id());
  e.set_type(std::string(type));
  *e.mutable_occurred_at() = Ts(at);
  e.set_touchpoint(common::v1::TOUCHPOINT_CALL_CENTRE);
  auto& props = *e.mutable_properties();
  props["inquiry_id"].set_string_value(q.id());
  props["channel"].set_string_value(common::v1::Channel_Name(q.channel()));
  if (!q.order_id().empty()) props["order_id"].set_string_value(q.order_id());
  return e;
}

}  // namespace

absl::StatusOr<v1::Inquiry> Inquiries::OpenInquiry(const v1::OpenInquiryRequest& req) {
  ECRM_RETURN_IF_ERROR(ValidateCustomerId(req.customer_id()));
  ECRM_RETURN_IF_ERROR(idempotency::ValidateKey(kOpenInquiry, req.idempotency_key(), /*required=*/false));
  if (req.subject().empty() || req.subject().size() > 200) return Invalid("subject", "is required (1–200 bytes)");
  if (req.channel() == common::v1::CHANNEL_UNSPECIFIED) return Invalid("channel", "is required");
  ECRM_RETURN_IF_ERROR(ValidateBody(req.body()));
  ECRM_ASSIGN_OR_RETURN(
      v1::Inquiry opened,
      keys_.Run<v1::Inquiry>(
          kOpenInquiry, req.idempotency_key(), req, [&](sql::Connection& c) -> absl::StatusOr<v1::Inquiry> {
            if (!req.order_id().empty()) {
              ECRM_ASSIGN_OR_RETURN(sql::Result o,
                                    c.Execute("SELECT customer_id FROM orders WHERE id = $1", {req.order_id()}));
              if (o.empty()) return absl::NotFoundError(absl::StrCat("order_id: no order \"", req.order_id(), "\""));
              if (o.front().Text(0) != req.customer_id()) {
                return Invalid("order_id", absl::StrCat("order \"", req.order_id(), "\" is not this customer's"));
              }
            }
            const int64_t now = NowMicros();
            v1::Inquiry q;
            q.set_id(NewId("q_"));
            q.set_customer_id(req.customer_id());
            q.set_subject(req.subject());
            q.set_channel(req.channel());
            q.set_order_id(req.order_id());
            q.set_state(v1::INQUIRY_STATE_OPEN);
            v1::InquiryMessage* m = q.add_messages();
            m->set_author(v1::AUTHOR_CUSTOMER);
            m->set_body(req.body());
            *m->mutable_created_at() = Ts(now);
            *q.mutable_opened_at() = Ts(now);
            ECRM_RETURN_IF_ERROR(
                c.Execute("INSERT INTO inquiries (id, customer_id, state, opened_at, body) VALUES ($1, "
                          "$2, $3, $4, $5)",
                          {q.id(), q.customer_id(), static_cast<int>(q.state()), now, sql::Blob{InquiryBody(q)}})
                    .status());
            ECRM_RETURN_IF_ERROR(outbox_.Add(c, InquiryEvent(q, "inquiry_opened", now)));
            return q;
          }));
  outbox_.Notify();
  return opened;
}

absl::StatusOr<v1::Inquiry> Inquiries::ChangeInquiry(
    const std::string& id, const std::function<absl::Status(sql::Connection&, v1::Inquiry&)>& fn) {
  if (id.empty()) return Invalid("id", "is required");
  v1::Inquiry q;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ECRM_ASSIGN_OR_RETURN(sql::Result r,
                          c.Execute(absl::StrCat("SELECT body FROM inquiries WHERE id = $1", ForUpdate(c)), {id}));
    if (r.empty()) return absl::NotFoundError(absl::StrCat("id: no inquiry \"", id, "\""));
    ECRM_ASSIGN_OR_RETURN(q, InquiryFromBody(r.front().Text(0)));
    ECRM_RETURN_IF_ERROR(fn(c, q));
    return c
        .Execute("UPDATE inquiries SET state = $2, body = $3 WHERE id = $1",
                 {id, static_cast<int>(q.state()), sql::Blob{InquiryBody(q)}})
        .status();
  }));
  return q;
}

absl::StatusOr<v1::Inquiry> Inquiries::ReplyToInquiry(const v1::ReplyToInquiryRequest& req) {
  if (req.author() == v1::AUTHOR_UNSPECIFIED) return Invalid("author", "is required (customer or agent)");
  if (req.author() == v1::AUTHOR_AGENT && req.agent_id().empty()) return Invalid("agent_id", "is required for agents");
  ECRM_RETURN_IF_ERROR(ValidateBody(req.body()));
  double first_response_seconds = -1;
  ECRM_ASSIGN_OR_RETURN(v1::Inquiry q, ChangeInquiry(req.id(), [&](sql::Connection&, v1::Inquiry& q) -> absl::Status {
                          if (q.state() == v1::INQUIRY_STATE_RESOLVED) {
                            return absl::FailedPreconditionError(
                                absl::StrCat("id: inquiry \"", q.id(), "\" is resolved; open a new one"));
                          }
                          const int64_t now = NowMicros();
                          v1::InquiryMessage* m = q.add_messages();
                          m->set_author(req.author());
                          m->set_agent_id(req.agent_id());
                          m->set_body(req.body());
                          *m->mutable_created_at() = Ts(now);
                          first_response_seconds = -1;
                          if (req.author() == v1::AUTHOR_AGENT) {
                            if (!q.has_first_response_at()) {
                              *q.mutable_first_response_at() = Ts(now);
                              first_response_seconds = static_cast<double>(now - Micros(q.opened_at())) / 1e6;
                            }
                            q.set_state(v1::INQUIRY_STATE_PENDING_CUSTOMER);
                          } else {
                            q.set_state(v1::INQUIRY_STATE_OPEN);
                          }
                          return absl::OkStatus();
                        }));
  if (first_response_seconds >= 0) metrics_.inquiry_first_response.Observe(first_response_seconds);
  return q;
}

absl::StatusOr<v1::Inquiry> Inquiries::ResolveInquiry(const v1::ResolveInquiryRequest& req) {
  if (req.resolution().size() > 10'000) return Invalid("resolution", "is longer than 10,000 bytes");
  double resolution_seconds = -1;
  ECRM_ASSIGN_OR_RETURN(v1::Inquiry q, ChangeInquiry(req.id(), [&](sql::Connection& c, v1::Inquiry& q) -> absl::Status {
                          resolution_seconds = -1;
                          if (q.state() == v1::INQUIRY_STATE_RESOLVED)
                            return absl::OkStatus();  // resolving twice is resolving once
                          const int64_t now = NowMicros();
                          if (!req.resolution().empty()) {
                            v1::InquiryMessage* m = q.add_messages();
                            m->set_author(v1::AUTHOR_AGENT);
                            m->set_body(req.resolution());
                            *m->mutable_created_at() = Ts(now);
                          }
                          q.set_state(v1::INQUIRY_STATE_RESOLVED);
                          *q.mutable_resolved_at() = Ts(now);
                          resolution_seconds = static_cast<double>(now - Micros(q.opened_at())) / 1e6;
                          return outbox_.Add(c, InquiryEvent(q, "inquiry_resolved", now));
                        }));
  if (resolution_seconds >= 0) {
    metrics_.inquiry_resolution.Observe(resolution_seconds);
    outbox_.Notify();
  }
  return q;
}

absl::StatusOr<v1::ListInquiriesResponse> Inquiries::ListInquiries(const v1::ListInquiriesRequest& req) {
  if (!req.customer_id().empty()) ECRM_RETURN_IF_ERROR(ValidateCustomerId(req.customer_id()));
  const int limit = PageSize(req.page_size());
  ECRM_ASSIGN_OR_RETURN(std::optional<util::PageCursor> before,
                        util::DecodePageToken("ListInquiries", req.page_token()));
  const int64_t before_at = before ? before->number : INT64_MAX;
  const std::string before_id = before ? before->text : "\x7f";
  ECRM_ASSIGN_OR_RETURN(
      sql::Result r,
      db_.Execute("SELECT body, opened_at, id FROM inquiries WHERE ($1 = '' OR customer_id = $1) AND ($2 = 0 OR "
                  "state = $2) AND (opened_at, id) < ($3, $4) ORDER BY opened_at DESC, id DESC LIMIT $5",
                  {req.customer_id(), static_cast<int>(req.state()), before_at, before_id, limit + 1}));
  v1::ListInquiriesResponse out;
  for (size_t i = 0; i < r.size() && static_cast<int>(i) < limit; ++i) {
    ECRM_ASSIGN_OR_RETURN(*out.add_inquiries(), InquiryFromBody(r.row(i).Text(0)));
  }
  if (static_cast<int>(r.size()) > limit) {
    out.set_next_page_token(
        util::EncodePageToken("ListInquiries", {r.row(limit - 1).Int(1), std::string(r.row(limit - 1).Text(2))}));
  }
  return out;
}

}  // namespace ecrm::transaction
