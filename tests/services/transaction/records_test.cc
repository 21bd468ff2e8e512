// The stored records of orders and inquiries against the API messages they replaced as the row
// format: a row written as a v1 message before the records existed reads back unchanged.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/message_differencer.h>

#include <catch2/catch.hpp>

#include "records.h"

namespace v1 = ecrm::transaction::v1;
namespace internal = ecrm::transaction::internal;
using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::util::MessageDifferencer;

namespace {

google::protobuf::Timestamp At(int64_t seconds) {
  google::protobuf::Timestamp t;
  t.set_seconds(seconds);
  t.set_nanos(123000);
  return t;
}

ecrm::common::v1::Money Eur(int64_t minor) {
  ecrm::common::v1::Money m;
  m.set_amount_minor(minor);
  m.set_currency("EUR");
  return m;
}

// Every field the API message had set, as orders were stored until now.
v1::Order FullOrder() {
  v1::Order o;
  o.set_id("o_123");
  o.set_customer_id("c_42");
  for (int i = 1; i <= 2; ++i) {
    v1::Line* l = o.add_lines();
    l->set_sku("sku-" + std::to_string(i));
    l->set_title("Product " + std::to_string(i));
    l->set_quantity(i * 3);
    *l->mutable_unit_price() = Eur(1999);
    *l->mutable_total() = Eur(1999 * i * 3);
    l->set_refunded_quantity(i - 1);
  }
  *o.mutable_subtotal() = Eur(17991);
  *o.mutable_points_discount() = Eur(500);
  *o.mutable_total() = Eur(17491);
  *o.mutable_refunded() = Eur(5830);
  o.set_points_redeemed(500);
  o.set_points_earned(174);
  o.set_state(v1::ORDER_STATE_PARTIALLY_REFUNDED);
  o.set_channel(v1::SALES_CHANNEL_POS);
  o.set_location("shop-12");
  *o.mutable_placed_at() = At(1'700'000'000);
  *o.mutable_updated_at() = At(1'700'086'400);
  return o;
}

v1::Inquiry FullInquiry(bool answered) {
  v1::Inquiry q;
  q.set_id("q_7");
  q.set_customer_id("c_42");
  q.set_subject("Where is my parcel?");
  q.set_channel(ecrm::common::v1::CHANNEL_EMAIL);
  q.set_order_id("o_123");
  q.set_state(answered ? v1::INQUIRY_STATE_RESOLVED : v1::INQUIRY_STATE_OPEN);
  v1::InquiryMessage* m = q.add_messages();
  m->set_author(v1::AUTHOR_CUSTOMER);
  m->set_body("It has not arrived.");
  *m->mutable_created_at() = At(1'700'000'000);
  *q.mutable_opened_at() = At(1'700'000'000);
  if (answered) {
    m = q.add_messages();
    m->set_author(v1::AUTHOR_AGENT);
    m->set_agent_id("agent-3");
    m->set_body("It arrives tomorrow.");
    *m->mutable_created_at() = At(1'700'003'600);
    *q.mutable_first_response_at() = At(1'700'003'600);
    *q.mutable_resolved_at() = At(1'700'007'200);
  }
  return q;
}

// The record knows every field of the stored bytes: nothing parsed into unknown fields.
bool NoUnknownFields(const google::protobuf::Message& m) {
  const google::protobuf::Reflection* r = m.GetReflection();
  if (!r->GetUnknownFields(m).empty()) return false;
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    if (f->type() != FieldDescriptor::TYPE_MESSAGE) continue;
    if (f->is_repeated()) {
      for (int i = 0; i < r->FieldSize(m, f); ++i) {
        if (!NoUnknownFields(r->GetRepeatedMessage(m, f, i))) return false;
      }
    } else if (!NoUnknownFields(r->GetMessage(m, f))) {
      return false;
    }
  }
  return true;
}

// Each record field that the API message still has keeps its number and type there (a field the
// API drops stays in the record while rows hold it), and every field of the API message is
// stored: a new one needs its record field and its line in records.cc, or it is lost on save.
void RequireWireCompatible(const Descriptor* record, const Descriptor* api) {
  INFO(record->full_name() << " against " << api->full_name());
  for (int i = 0; i < record->field_count(); ++i) {
    const FieldDescriptor* r = record->field(i);
    const FieldDescriptor* a = api->FindFieldByNumber(r->number());
    if (a == nullptr) continue;
    INFO("field " << r->name() << " = " << r->number());
    CHECK(r->type() == a->type());
    CHECK(r->label() == a->label());
    if (r->type() == FieldDescriptor::TYPE_ENUM) CHECK(r->enum_type() == a->enum_type());
    if (r->type() == FieldDescriptor::TYPE_MESSAGE && r->message_type() != a->message_type()) {
      RequireWireCompatible(r->message_type(), a->message_type());
    }
  }
  for (int i = 0; i < api->field_count(); ++i) {
    INFO("API field " << api->field(i)->name() << " = " << api->field(i)->number() << " has no record field");
    CHECK(record->FindFieldByNumber(api->field(i)->number()) != nullptr);
  }
}

}  // namespace

TEST_CASE("an order row written as a v1::Order reads back as the identical Order, and is written the same way") {
  const v1::Order order = FullOrder();
  const std::string old_row = order.SerializeAsString();

  internal::OrderRecord record;
  REQUIRE(record.ParseFromString(old_row));
  CHECK(NoUnknownFields(record));

  absl::StatusOr<v1::Order> read = ecrm::transaction::OrderFromBody(old_row);
  REQUIRE(read.ok());
  CHECK(MessageDifferencer::Equals(*read, order));
  // Rows written now are the bytes the old format wrote, so an older binary reads them too.
  CHECK(ecrm::transaction::OrderBody(order) == old_row);

  // Unset submessages stay unset (an order placed without a refund yet).
  v1::Order sparse;
  sparse.set_id("o_1");
  absl::StatusOr<v1::Order> back = ecrm::transaction::OrderFromBody(sparse.SerializeAsString());
  REQUIRE(back.ok());
  CHECK_FALSE(back->has_refunded());
  CHECK(MessageDifferencer::Equals(*back, sparse));
}

TEST_CASE("an inquiry row written as a v1::Inquiry reads back as the identical Inquiry, reply times unset or set") {
  for (bool answered : {false, true}) {
    INFO("answered: " << answered);
    const v1::Inquiry inquiry = FullInquiry(answered);
    const std::string old_row = inquiry.SerializeAsString();
    internal::InquiryRecord record;
    REQUIRE(record.ParseFromString(old_row));
    CHECK(NoUnknownFields(record));
    absl::StatusOr<v1::Inquiry> read = ecrm::transaction::InquiryFromBody(old_row);
    REQUIRE(read.ok());
    CHECK(MessageDifferencer::Equals(*read, inquiry));
    CHECK(read->has_first_response_at() == answered);
    CHECK(ecrm::transaction::InquiryBody(inquiry) == old_row);
  }
}

TEST_CASE("the stored records keep the field numbers and types of the API messages they were stored as") {
  RequireWireCompatible(internal::OrderRecord::descriptor(), v1::Order::descriptor());
  RequireWireCompatible(internal::InquiryRecord::descriptor(), v1::Inquiry::descriptor());
}

TEST_CASE("a stored body that does not parse is DATA_LOSS, not bad input") {
  CHECK(ecrm::transaction::OrderFromBody("\xff\xff\xff").status().code() == absl::StatusCode::kDataLoss);
  CHECK(ecrm::transaction::InquiryFromBody("\xff\xff\xff").status().code() == absl::StatusCode::kDataLoss);
}
