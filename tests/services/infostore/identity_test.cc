// Identity resolution as a pure function: the plan for each kind of request, no database.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "identity.h"

namespace common = ecrm::common::v1;
using ecrm::infostore::IdentityPlan;
using ecrm::infostore::NamedCustomer;
using ecrm::infostore::RequestIdentifier;
using ecrm::infostore::ResolveIdentity;

namespace {

common::Identifier Id(common::IdentifierType type, const std::string& value) {
  common::Identifier id;
  id.set_type(type);
  id.set_value(value);
  return id;
}

const common::Identifier kEmail = Id(common::IDENTIFIER_TYPE_EMAIL, "ann@example.com");
const common::Identifier kOtherEmail = Id(common::IDENTIFIER_TYPE_EMAIL, "a.smith@example.com");
const common::Identifier kPhone = Id(common::IDENTIFIER_TYPE_PHONE, "+447911123456");
const common::Identifier kDevice = Id(common::IDENTIFIER_TYPE_DEVICE_ID, "device-1");
const common::Identifier kOtherDevice = Id(common::IDENTIFIER_TYPE_DEVICE_ID, "device-2");

// Customers as the store would describe them: identified or anonymous, and when created.
NamedCustomer Identified(absl::string_view id, int64_t created_at_us) { return {id, false, created_at_us}; }
NamedCustomer Anonymous(absl::string_view id, int64_t created_at_us) { return {id, true, created_at_us}; }
const NamedCustomer kNobody;

using Participants = std::vector<std::string>;
using Indexes = std::vector<size_t>;

}  // namespace

TEST_CASE("a new person: nobody owns anything, every identifier is new, inserted in key order") {
  const std::vector<RequestIdentifier> ids = {{&kPhone}, {&kEmail}, {&kOtherEmail}};
  IdentityPlan plan = ResolveIdentity(kNobody, ids);
  CHECK(plan.create());
  CHECK_FALSE(plan.merge());
  CHECK(plan.participants.empty());
  CHECK(plan.new_identifiers == Indexes{0, 1, 2});  // request order, for the record
  CHECK(plan.insert_order == Indexes{2, 1, 0});     // (type, source, value): emails by value, then the phone
}

TEST_CASE("a single strong match updates its owner, which gains the new identifiers") {
  const std::vector<RequestIdentifier> ids = {{&kEmail, Identified("c_ann", 100)}, {&kPhone}};
  IdentityPlan plan = ResolveIdentity(kNobody, ids);
  CHECK_FALSE(plan.create());
  CHECK_FALSE(plan.merge());
  CHECK(plan.participants == Participants{"c_ann"});
  CHECK(plan.new_identifiers == Indexes{1});
  CHECK(plan.insert_order == Indexes{1});
}

TEST_CASE("two strong matches merge into the oldest customer, ties broken by id") {
  SECTION("the oldest survives whatever the request's order") {
    const std::vector<RequestIdentifier> ids = {{&kEmail, Identified("c_a", 200)}, {&kPhone, Identified("c_b", 100)}};
    IdentityPlan plan = ResolveIdentity(kNobody, ids);
    CHECK(plan.merge());
    CHECK(plan.participants == Participants{"c_b", "c_a"});
    CHECK(plan.new_identifiers.empty());
  }
  SECTION("created at the same time: the smaller id survives") {
    const std::vector<RequestIdentifier> ids = {{&kEmail, Identified("c_z", 100)}, {&kPhone, Identified("c_m", 100)}};
    CHECK(ResolveIdentity(kNobody, ids).participants == Participants{"c_m", "c_z"});
  }
  SECTION("an anonymous strong owner is merged like any other") {
    const std::vector<RequestIdentifier> ids = {{&kEmail, Identified("c_a", 300)}, {&kPhone, Anonymous("c_b", 200)}};
    CHECK(ResolveIdentity(kNobody, ids).participants == Participants{"c_b", "c_a"});
  }
}

TEST_CASE("a device id owned by an anonymous customer joins the login that presents it") {
  SECTION("with a known person: the two are merged, the older surviving") {
    const std::vector<RequestIdentifier> ids = {{&kEmail, Identified("c_ann", 500)},
                                                {&kDevice, Anonymous("c_anon", 100)}};
    IdentityPlan plan = ResolveIdentity(kNobody, ids);
    CHECK(plan.merge());
    CHECK(plan.participants == Participants{"c_anon", "c_ann"});
    CHECK(plan.new_identifiers.empty());
  }
  SECTION("with a new identifier: the anonymous customer is updated and gains it") {
    const std::vector<RequestIdentifier> ids = {{&kEmail}, {&kDevice, Anonymous("c_anon", 100)}};
    IdentityPlan plan = ResolveIdentity(kNobody, ids);
    CHECK(plan.participants == Participants{"c_anon"});
    CHECK(plan.new_identifiers == Indexes{0});
  }
}

TEST_CASE("a shared computer: the device of an identified person is never fused into another person") {
  SECTION("another known person logs in on Ann's device: Bob is updated, the device stays Ann's") {
    const std::vector<RequestIdentifier> ids = {{&kEmail, Identified("c_bob", 500)},
                                                {&kDevice, Identified("c_ann", 100)}};
    IdentityPlan plan = ResolveIdentity(kNobody, ids);
    CHECK_FALSE(plan.merge());
    CHECK(plan.participants == Participants{"c_bob"});
    CHECK(plan.new_identifiers.empty());  // the device is not Bob's to gain
  }
  SECTION("a new person signs up on Ann's device: a new customer, the device stays Ann's") {
    const std::vector<RequestIdentifier> ids = {{&kOtherEmail}, {&kDevice, Identified("c_ann", 100)}};
    IdentityPlan plan = ResolveIdentity(kNobody, ids);
    CHECK(plan.create());
    CHECK(plan.new_identifiers == Indexes{0});
  }
}

TEST_CASE("a device-only request joins the identified owner of its device") {
  SECTION("one device") {
    const std::vector<RequestIdentifier> ids = {{&kDevice, Identified("c_ann", 100)}};
    CHECK(ResolveIdentity(kNobody, ids).participants == Participants{"c_ann"});
  }
  SECTION("devices of two identified people: only the first joins, an anonymous one joins too") {
    const std::vector<RequestIdentifier> ids = {{&kDevice, Identified("c_ann", 300)},
                                                {&kOtherDevice, Identified("c_bob", 100)}};
    CHECK(ResolveIdentity(kNobody, ids).participants == Participants{"c_ann"});
    const std::vector<RequestIdentifier> with_anonymous = {{&kDevice, Identified("c_ann", 300)},
                                                           {&kOtherDevice, Anonymous("c_anon", 400)}};
    CHECK(ResolveIdentity(kNobody, with_anonymous).participants == Participants{"c_ann", "c_anon"});
  }
  SECTION("a new device alone is a new anonymous customer") {
    const std::vector<RequestIdentifier> ids = {{&kDevice}};
    IdentityPlan plan = ResolveIdentity(kNobody, ids);
    CHECK(plan.create());
    CHECK(plan.new_identifiers == Indexes{0});
  }
}

TEST_CASE("customer_id names a person like a strong identifier") {
  SECTION("alone: that customer") {
    CHECK(ResolveIdentity(Identified("c_ann", 100), {}).participants == Participants{"c_ann"});
  }
  SECTION("with an identifier another customer owns: the two are merged") {
    const std::vector<RequestIdentifier> ids = {{&kEmail, Identified("c_old", 50)}, {&kPhone}};
    IdentityPlan plan = ResolveIdentity(Identified("c_ann", 100), ids);
    CHECK(plan.participants == Participants{"c_old", "c_ann"});
    CHECK(plan.new_identifiers == Indexes{1});
  }
  SECTION("with the device of another identified person: that device stays with its owner") {
    const std::vector<RequestIdentifier> ids = {{&kDevice, Identified("c_bob", 50)}};
    IdentityPlan plan = ResolveIdentity(Identified("c_ann", 100), ids);
    CHECK(plan.participants == Participants{"c_ann"});
    CHECK(plan.new_identifiers.empty());
  }
}

TEST_CASE("duplicates: one customer named twice is one participant, one identifier given twice is claimed once") {
  SECTION("customer_id and identifiers that customer owns: an update, not a merge with itself") {
    const std::vector<RequestIdentifier> ids = {
        {&kEmail, Identified("c_ann", 100)}, {&kPhone, Identified("c_ann", 100)}, {&kDevice, Identified("c_ann", 100)}};
    IdentityPlan plan = ResolveIdentity(Identified("c_ann", 100), ids);
    CHECK_FALSE(plan.merge());
    CHECK(plan.participants == Participants{"c_ann"});
  }
  SECTION("a new identifier repeated: gained and inserted once, where it first appears") {
    const common::Identifier again = kPhone;
    const std::vector<RequestIdentifier> ids = {{&kPhone}, {&kEmail}, {&again}};
    IdentityPlan plan = ResolveIdentity(kNobody, ids);
    CHECK(plan.new_identifiers == Indexes{0, 1});
    CHECK(plan.insert_order == Indexes{1, 0});
  }
}
