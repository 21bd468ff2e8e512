#include "records.h"

#include "ecrm/status/macros.h"
#include "store_helpers.h"

namespace ecrm::transaction {

// Submessages are copied only when set, so that a message converts back to an identical one.
#define ECRM_COPY_IF_SET(from, to, field) \
  if ((from).has_##field()) *(to).mutable_##field() = (from).field()

internal::OrderRecord ToRecord(const v1::Order& order) {
  internal::OrderRecord r;
  r.set_id(order.id());
  r.set_customer_id(order.customer_id());
  for (const v1::Line& line : order.lines()) {
    internal::OrderLineRecord* l = r.add_lines();
    l->set_sku(line.sku());
    l->set_title(line.title());
    l->set_quantity(line.quantity());
    ECRM_COPY_IF_SET(line, *l, unit_price);
    ECRM_COPY_IF_SET(line, *l, total);
    l->set_refunded_quantity(line.refunded_quantity());
  }
  ECRM_COPY_IF_SET(order, r, subtotal);
  ECRM_COPY_IF_SET(order, r, points_discount);
  ECRM_COPY_IF_SET(order, r, total);
  ECRM_COPY_IF_SET(order, r, refunded);
  r.set_points_redeemed(order.points_redeemed());
  r.set_points_earned(order.points_earned());
  r.set_state(order.state());
  r.set_channel(order.channel());
  r.set_location(order.location());
  ECRM_COPY_IF_SET(order, r, placed_at);
  ECRM_COPY_IF_SET(order, r, updated_at);
  return r;
}

v1::Order FromRecord(const internal::OrderRecord& record) {
  v1::Order o;
  o.set_id(record.id());
  o.set_customer_id(record.customer_id());
  for (const internal::OrderLineRecord& l : record.lines()) {
    v1::Line* line = o.add_lines();
    line->set_sku(l.sku());
    line->set_title(l.title());
    line->set_quantity(l.quantity());
    ECRM_COPY_IF_SET(l, *line, unit_price);
    ECRM_COPY_IF_SET(l, *line, total);
    line->set_refunded_quantity(l.refunded_quantity());
  }
  ECRM_COPY_IF_SET(record, o, subtotal);
  ECRM_COPY_IF_SET(record, o, points_discount);
  ECRM_COPY_IF_SET(record, o, total);
  ECRM_COPY_IF_SET(record, o, refunded);
  o.set_points_redeemed(record.points_redeemed());
  o.set_points_earned(record.points_earned());
  o.set_state(record.state());
  o.set_channel(record.channel());
  o.set_location(record.location());
  ECRM_COPY_IF_SET(record, o, placed_at);
  ECRM_COPY_IF_SET(record, o, updated_at);
  return o;
}

internal::InquiryRecord ToRecord(const v1::Inquiry& inquiry) {
  internal::InquiryRecord r;
  r.set_id(inquiry.id());
  r.set_customer_id(inquiry.customer_id());
  r.set_subject(inquiry.subject());
  r.set_channel(inquiry.channel());
  r.set_order_id(inquiry.order_id());
  r.set_state(inquiry.state());
  for (const v1::InquiryMessage& message : inquiry.messages()) {
    internal::InquiryMessageRecord* m = r.add_messages();
    m->set_author(message.author());
    m->set_agent_id(message.agent_id());
    m->set_body(message.body());
    ECRM_COPY_IF_SET(message, *m, created_at);
  }
  ECRM_COPY_IF_SET(inquiry, r, opened_at);
  ECRM_COPY_IF_SET(inquiry, r, first_response_at);
  ECRM_COPY_IF_SET(inquiry, r, resolved_at);
  return r;
}

v1::Inquiry FromRecord(const internal::InquiryRecord& record) {
  v1::Inquiry q;
  q.set_id(record.id());
  q.set_customer_id(record.customer_id());
  q.set_subject(record.subject());
  q.set_channel(record.channel());
  q.set_order_id(record.order_id());
  q.set_state(record.state());
  for (const internal::InquiryMessageRecord& m : record.messages()) {
    v1::InquiryMessage* message = q.add_messages();
    message->set_author(m.author());
    message->set_agent_id(m.agent_id());
    message->set_body(m.body());
    ECRM_COPY_IF_SET(m, *message, created_at);
  }
  ECRM_COPY_IF_SET(record, q, opened_at);
  ECRM_COPY_IF_SET(record, q, first_response_at);
  ECRM_COPY_IF_SET(record, q, resolved_at);
  return q;
}

#undef ECRM_COPY_IF_SET

std::string OrderBody(const v1::Order& order) { return ToRecord(order).SerializeAsString(); }

absl::StatusOr<v1::Order> OrderFromBody(absl::string_view body) {
  ECRM_ASSIGN_OR_RETURN(internal::OrderRecord record, ParseBody<internal::OrderRecord>(body, "order"));
  return FromRecord(record);
}

std::string InquiryBody(const v1::Inquiry& inquiry) { return ToRecord(inquiry).SerializeAsString(); }

absl::StatusOr<v1::Inquiry> InquiryFromBody(absl::string_view body) {
  ECRM_ASSIGN_OR_RETURN(internal::InquiryRecord record, ParseBody<internal::InquiryRecord>(body, "inquiry"));
  return FromRecord(record);
}

}  // namespace ecrm::transaction
