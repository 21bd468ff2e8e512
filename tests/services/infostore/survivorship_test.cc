// Survivorship as pure functions over records: profile updates by source priority or recency
// with provenance, and the combination of records in a merge. No database.
#include <google/protobuf/util/time_util.h>

#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "survivorship.h"

namespace common = ecrm::common::v1;
namespace v1 = ecrm::infostore::v1;
using ecrm::infostore::ApplyProfileUpdate;
using ecrm::infostore::MergeRecords;
using ecrm::infostore::SurvivorshipRules;
using ecrm::infostore::internal::CustomerRecord;
using google::protobuf::util::TimeUtil;

namespace {

const SurvivorshipRules kByRecency;
const SurvivorshipRules kByPriority{{common::TOUCHPOINT_ERP, common::TOUCHPOINT_CALL_CENTRE, common::TOUCHPOINT_WEB}};

// A record whose first name was written by `source` at `at_us`.
CustomerRecord WithFirstName(const std::string& id, const std::string& name, common::Touchpoint source, int64_t at_us) {
  CustomerRecord r;
  r.mutable_customer()->set_id(id);
  r.mutable_customer()->mutable_profile()->set_first_name(name);
  auto& fs = (*r.mutable_provenance())["profile.first_name"];
  fs.set_source(source);
  fs.set_updated_at_us(at_us);
  return r;
}

v1::UpsertCustomerRequest FirstName(const std::string& name, common::Touchpoint source) {
  v1::UpsertCustomerRequest req;
  req.mutable_profile()->set_first_name(name);
  req.set_source(source);
  return req;
}

void Apply(const SurvivorshipRules& rules, const v1::UpsertCustomerRequest& req, int64_t now_us, CustomerRecord& r) {
  absl::Status s = ApplyProfileUpdate(rules, req, now_us, r);
  INFO(s.ToString());
  REQUIRE(s.ok());
}

v1::Consent Consent(common::Channel channel, v1::ConsentStatus status, int64_t at_seconds) {
  v1::Consent c;
  c.set_channel(channel);
  c.set_purpose(common::PURPOSE_MARKETING);
  c.set_status(status);
  *c.mutable_updated_at() = TimeUtil::SecondsToTimestamp(at_seconds);
  return c;
}

std::map<int, v1::ConsentStatus> Statuses(const v1::Customer& cu) {
  std::map<int, v1::ConsentStatus> out;
  for (const auto& c : cu.consents()) out[c.channel()] = c.status();
  return out;
}

}  // namespace

TEST_CASE("a profile update: the most recent value by default, source priority when configured") {
  SECTION("by recency any source overwrites, and the field records who wrote it and when") {
    CustomerRecord r = WithFirstName("c_1", "Ann", common::TOUCHPOINT_ERP, 100);
    Apply(kByRecency, FirstName("Annie", common::TOUCHPOINT_WEB), 200, r);
    CHECK(r.customer().profile().first_name() == "Annie");
    CHECK(r.provenance().at("profile.first_name").source() == common::TOUCHPOINT_WEB);
    CHECK(r.provenance().at("profile.first_name").updated_at_us() == 200);
  }
  SECTION("by priority a higher source overwrites a lower one") {
    CustomerRecord r = WithFirstName("c_1", "Annie", common::TOUCHPOINT_WEB, 100);
    Apply(kByPriority, FirstName("Ann", common::TOUCHPOINT_ERP), 200, r);
    CHECK(r.customer().profile().first_name() == "Ann");
    CHECK(r.provenance().at("profile.first_name").source() == common::TOUCHPOINT_ERP);
  }
  SECTION("an unlisted source ranks after every listed one") {
    CHECK(kByPriority.Rank(common::TOUCHPOINT_ERP) == 0);
    CHECK(kByPriority.Rank(common::TOUCHPOINT_WEB) == 2);
    CHECK(kByPriority.Rank(common::TOUCHPOINT_POS) == 3);
  }
}

TEST_CASE("a lower-priority source never overwrites a higher one, but fills what is empty") {
  CustomerRecord r = WithFirstName("c_1", "Ann", common::TOUCHPOINT_ERP, 100);
  v1::UpsertCustomerRequest req = FirstName("Annie", common::TOUCHPOINT_CALL_CENTRE);
  req.mutable_profile()->set_last_name("Smith");
  Apply(kByPriority, req, 200, r);
  CHECK(r.customer().profile().first_name() == "Ann");
  CHECK(r.provenance().at("profile.first_name").source() == common::TOUCHPOINT_ERP);
  CHECK(r.provenance().at("profile.first_name").updated_at_us() == 100);
  CHECK(r.customer().profile().last_name() == "Smith");
  CHECK(r.provenance().at("profile.last_name").source() == common::TOUCHPOINT_CALL_CENTRE);
}

TEST_CASE("an unchanged value keeps its provenance") {
  CustomerRecord r = WithFirstName("c_1", "Ann", common::TOUCHPOINT_ERP, 100);
  const std::string before = r.SerializeAsString();
  Apply(kByRecency, FirstName("Ann", common::TOUCHPOINT_WEB), 200, r);
  CHECK(r.SerializeAsString() == before);  // nothing changed, so an upsert reports UNCHANGED
}

TEST_CASE("an update mask writes exactly its paths, clearing what the request leaves empty") {
  CustomerRecord r = WithFirstName("c_1", "Ann", common::TOUCHPOINT_WEB, 100);
  r.mutable_customer()->mutable_profile()->set_last_name("Smith");
  r.mutable_customer()->mutable_profile()->mutable_address()->set_country("GB");
  r.mutable_customer()->mutable_profile()->mutable_address()->set_city("York");

  SECTION("a message path covers its fields; unmasked fields are left alone even if the request sets them") {
    v1::UpsertCustomerRequest req = FirstName("Annie", common::TOUCHPOINT_WEB);
    req.mutable_profile()->mutable_address()->set_city("Leeds");
    req.mutable_update_mask()->add_paths("profile.address");
    Apply(kByRecency, req, 200, r);
    CHECK(r.customer().profile().address().city() == "Leeds");
    CHECK(r.customer().profile().address().country().empty());  // masked and empty: cleared
    CHECK(r.customer().profile().first_name() == "Ann");        // not masked
    CHECK(r.customer().profile().last_name() == "Smith");
    CHECK(r.provenance().at("profile.address.city").updated_at_us() == 200);
  }
  SECTION("a masked leaf the request leaves empty is cleared") {
    v1::UpsertCustomerRequest req;
    req.mutable_update_mask()->add_paths("profile.last_name");
    Apply(kByRecency, req, 200, r);
    CHECK(r.customer().profile().last_name().empty());
    CHECK(r.customer().profile().first_name() == "Ann");
  }
  SECTION("a path that is not a profile field is INVALID_ARGUMENT naming the path's place") {
    v1::UpsertCustomerRequest req;
    req.mutable_update_mask()->add_paths("profile.first_name");
    req.mutable_update_mask()->add_paths("profile.nickname");
    absl::Status s = ApplyProfileUpdate(kByRecency, req, 200, r);
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(s.message()), Catch::StartsWith("update_mask.paths[1]: \"profile.nickname\""));
  }
}

TEST_CASE("attributes: a value without a value removes it, and the limit counts what would remain") {
  CustomerRecord r;
  (*r.mutable_customer()->mutable_attributes())["tier"].set_string_value("gold");
  v1::UpsertCustomerRequest req;
  (*req.mutable_attributes())["tier"];  // no value: a removal
  (*req.mutable_attributes())["visits"].set_int_value(3);
  SurvivorshipRules one_attribute;
  one_attribute.max_attributes = 1;
  Apply(one_attribute, req, 200, r);
  CHECK(r.customer().attributes().count("tier") == 0);
  CHECK(r.customer().attributes().at("visits").int_value() == 3);
  (*req.mutable_attributes())["score"].set_int_value(1);
  CHECK(ApplyProfileUpdate(one_attribute, req, 300, r).code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("a merge keeps per profile field the higher source, else the most recent non-empty value") {
  CustomerRecord survivor = WithFirstName("c_1", "Ann", common::TOUCHPOINT_ERP, 100);
  survivor.mutable_customer()->mutable_profile()->set_last_name("");
  std::vector<CustomerRecord> others = {WithFirstName("c_2", "Annie", common::TOUCHPOINT_WEB, 300)};
  others[0].mutable_customer()->mutable_profile()->set_last_name("Smith");
  (*others[0].mutable_provenance())["profile.last_name"].set_updated_at_us(300);

  SECTION("by recency") {
    MergeRecords(kByRecency, survivor, others);
    CHECK(survivor.customer().profile().first_name() == "Annie");
    CHECK(survivor.provenance().at("profile.first_name").source() == common::TOUCHPOINT_WEB);
    CHECK(survivor.customer().profile().last_name() == "Smith");  // empty never wins
  }
  SECTION("by priority the older ERP value stays") {
    MergeRecords(kByPriority, survivor, others);
    CHECK(survivor.customer().profile().first_name() == "Ann");
    CHECK(survivor.provenance().at("profile.first_name").source() == common::TOUCHPOINT_ERP);
    CHECK(survivor.customer().profile().last_name() == "Smith");
  }
}

TEST_CASE("a merge keeps the most restrictive consent, so a withdrawal is never lost, and reports the changes") {
  CustomerRecord survivor;
  survivor.mutable_customer()->set_id("c_1");
  *survivor.mutable_customer()->add_consents() = Consent(common::CHANNEL_EMAIL, v1::CONSENT_STATUS_GRANTED, 900);
  *survivor.mutable_customer()->add_consents() = Consent(common::CHANNEL_SMS, v1::CONSENT_STATUS_DENIED, 100);
  *survivor.mutable_customer()->add_consents() = Consent(common::CHANNEL_PUSH, v1::CONSENT_STATUS_DENIED, 500);
  std::vector<CustomerRecord> others(1);
  others[0].mutable_customer()->set_id("c_2");
  // Older than the survivor's grant, but a withdrawal.
  *others[0].mutable_customer()->add_consents() = Consent(common::CHANNEL_EMAIL, v1::CONSENT_STATUS_WITHDRAWN, 100);
  // Less restrictive: the survivor's denial stays.
  *others[0].mutable_customer()->add_consents() = Consent(common::CHANNEL_SMS, v1::CONSENT_STATUS_GRANTED, 900);
  // As restrictive and later: its decision is the one kept (its time), with no status change.
  *others[0].mutable_customer()->add_consents() = Consent(common::CHANNEL_PUSH, v1::CONSENT_STATUS_DENIED, 800);
  // Only the other has it.
  *others[0].mutable_customer()->add_consents() = Consent(common::CHANNEL_WEB, v1::CONSENT_STATUS_GRANTED, 100);

  std::vector<v1::ConsentChange> changes = MergeRecords(kByRecency, survivor, others);
  CHECK(Statuses(survivor.customer()) == std::map<int, v1::ConsentStatus>{
                                             {common::CHANNEL_EMAIL, v1::CONSENT_STATUS_WITHDRAWN},
                                             {common::CHANNEL_SMS, v1::CONSENT_STATUS_DENIED},
                                             {common::CHANNEL_PUSH, v1::CONSENT_STATUS_DENIED},
                                             {common::CHANNEL_WEB, v1::CONSENT_STATUS_GRANTED},
                                         });
  for (const auto& c : survivor.customer().consents()) {
    if (c.channel() == common::CHANNEL_PUSH) CHECK(TimeUtil::TimestampToSeconds(c.updated_at()) == 800);
  }
  REQUIRE(changes.size() == 2);  // by channel: email, then web
  CHECK(changes[0].consent().channel() == common::CHANNEL_EMAIL);
  CHECK(changes[0].previous_status() == v1::CONSENT_STATUS_GRANTED);
  CHECK(changes[0].consent().status() == v1::CONSENT_STATUS_WITHDRAWN);
  CHECK(changes[0].reason() == "merge");
  CHECK(changes[1].consent().channel() == common::CHANNEL_WEB);
  CHECK(changes[1].previous_status() == v1::CONSENT_STATUS_UNSPECIFIED);
}

TEST_CASE("a merge combines identifiers, attributes, preferences and behaviour summaries") {
  CustomerRecord survivor;
  v1::Customer& s = *survivor.mutable_customer();
  s.set_id("c_1");
  s.add_identifiers()->set_value("ann@example.com");
  (*s.mutable_attributes())["tier"].set_string_value("gold");
  s.mutable_preferences()->add_interests("running");
  v1::BehaviourSummary& b = *s.mutable_behaviour();
  *b.mutable_first_seen_at() = TimeUtil::SecondsToTimestamp(500);
  *b.mutable_last_seen_at() = TimeUtil::SecondsToTimestamp(600);
  (*b.mutable_event_counts())["page_view"] = 2;
  b.set_order_count(1);
  b.mutable_total_spent()->set_currency("GBP");
  b.mutable_total_spent()->set_amount_minor(1000);

  std::vector<CustomerRecord> others(2);
  v1::Customer& o = *others[0].mutable_customer();
  o.set_id("c_2");
  o.add_merged_ids("c_0");
  o.add_identifiers()->set_value("device-1");
  (*o.mutable_attributes())["tier"].set_string_value("silver");
  (*o.mutable_attributes())["visits"].set_int_value(4);
  o.mutable_preferences()->add_interests("cycling");
  o.mutable_preferences()->set_contact_frequency(v1::CONTACT_FREQUENCY_WEEKLY);
  v1::BehaviourSummary& ob = *o.mutable_behaviour();
  *ob.mutable_first_seen_at() = TimeUtil::SecondsToTimestamp(100);
  *ob.mutable_last_seen_at() = TimeUtil::SecondsToTimestamp(200);
  *ob.mutable_last_order_at() = TimeUtil::SecondsToTimestamp(150);
  *ob.mutable_first_order_at() = TimeUtil::SecondsToTimestamp(120);
  (*ob.mutable_event_counts())["page_view"] = 3;
  (*ob.mutable_event_counts())["purchase"] = 1;
  ob.set_order_count(2);
  ob.mutable_total_spent()->set_currency("GBP");
  ob.mutable_total_spent()->set_amount_minor(500);
  v1::Customer& e = *others[1].mutable_customer();
  e.set_id("c_3");
  e.mutable_behaviour()->set_order_count(1);
  *e.mutable_behaviour()->mutable_first_order_at() = TimeUtil::SecondsToTimestamp(130);
  e.mutable_behaviour()->mutable_total_spent()->set_currency("EUR");  // another currency: counted, not added
  e.mutable_behaviour()->mutable_total_spent()->set_amount_minor(700);

  MergeRecords(kByRecency, survivor, others);
  REQUIRE(s.identifiers_size() == 2);
  CHECK(s.identifiers(1).value() == "device-1");
  CHECK(s.attributes().at("tier").string_value() == "gold");  // the survivor's value stays
  CHECK(s.attributes().at("visits").int_value() == 4);
  CHECK(std::vector<std::string>(s.preferences().interests().begin(), s.preferences().interests().end()) ==
        std::vector<std::string>{"cycling", "running"});
  CHECK(s.preferences().contact_frequency() == v1::CONTACT_FREQUENCY_WEEKLY);  // the survivor had none
  CHECK(TimeUtil::TimestampToSeconds(b.first_seen_at()) == 100);
  CHECK(TimeUtil::TimestampToSeconds(b.last_seen_at()) == 600);
  CHECK(TimeUtil::TimestampToSeconds(b.last_order_at()) == 150);
  CHECK(TimeUtil::TimestampToSeconds(b.first_order_at()) == 120);  // the earliest of all
  CHECK(b.event_counts().at("page_view") == 5);
  CHECK(b.event_counts().at("purchase") == 1);
  CHECK(b.order_count() == 4);
  CHECK(b.total_spent().currency() == "GBP");
  CHECK(b.total_spent().amount_minor() == 1500);
  CHECK(std::vector<std::string>(s.merged_ids().begin(), s.merged_ids().end()) ==
        std::vector<std::string>{"c_2", "c_0", "c_3"});
}
