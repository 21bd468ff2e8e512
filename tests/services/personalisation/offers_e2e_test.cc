// Offers end to end: the real ecrm-personalisation reading customers from a real information
// store through a real Redis profile cache and their segments from a real ecrm-segmentation
// following that store, on SQLite and PostgreSQL. Eligibility by rule and by segment, every
// rejection reason, a cap of 3 under 16 concurrent DecideOffers(record_impression), a total
// budget, bad input, and the impressions in export and erasure.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/personalisation/v1/personalisation.grpc.pb.h"
#include "ecrm/privacy/v1/privacy.grpc.pb.h"
#include "ecrm/segmentation/v1/segmentation.grpc.pb.h"
#include "ecrm/testing/process.h"
#include "ecrm/testing/servers.h"
#include "ecrm/testing/service.h"
#include "ecrm/util/util.h"
#include "test_servers.h"

namespace is = ecrm::infostore::v1;
namespace seg = ecrm::segmentation::v1;
namespace v1 = ecrm::personalisation::v1;
namespace common = ecrm::common::v1;
using ecrm::testing::Binary;
using ecrm::testing::Eventually;
using ecrm::testing::Postgres;
using ecrm::testing::Redis;
using ecrm::testing::ServiceProcess;

using ecrm::testing::Call;

namespace {

v1::Offer Percent(const std::string& name, int priority) {
  v1::Offer o;
  o.set_name(name);
  o.set_headline(name);
  o.set_kind(v1::OFFER_KIND_PERCENT_OFF);
  o.set_percent_off(10);
  o.set_priority(priority);
  o.set_active(true);
  return o;
}

google::protobuf::Timestamp At(absl::Time t) { return ecrm::util::Ts(absl::ToUnixMicros(t)); }

}  // namespace

TEST_CASE("offers decided for customers of a real information store and segmentation") {
  auto pg_a = Postgres().CreateUniqueDatabase();
  auto pg_b = Postgres().CreateUniqueDatabase();
  REQUIRE(pg_a.ok());
  REQUIRE(pg_b.ok());
  auto [backend, infostore_db, personalisation_db] = GENERATE_COPY(
      std::tuple<std::string, std::string, std::string>{"sqlite", "", ""},
      std::tuple<std::string, std::string, std::string>{"postgres", "--database-url=" + Postgres().url(*pg_a),
                                                        "--database-url=" + Postgres().url(*pg_b)});
  INFO("backend: " << backend);
  ecrm::testing::TempDir dir;
  std::vector<std::string> infostore_args = {"--redis-url=" + Redis().url()};
  if (!infostore_db.empty()) infostore_args.push_back(infostore_db);
  auto infostore = ServiceProcess::Start(Binary("infostore"), infostore_args);
  REQUIRE(infostore.ok());
  auto segmentation = ServiceProcess::Start(Binary("segmentation"),
                                            {"--redis-url=", "--infostore-address=" + (*infostore)->grpc_address(),
                                             absl::StrCat("--database-url=sqlite://", dir.path(), "/segmentation.db")});
  REQUIRE(segmentation.ok());
  std::vector<std::string> args = {"--redis-url=" + Redis().url(),
                                   "--infostore-address=" + (*infostore)->grpc_address(),
                                   "--segmentation-address=" + (*segmentation)->grpc_address()};
  if (!personalisation_db.empty()) args.push_back(personalisation_db);
  auto engine = ServiceProcess::Start(Binary("personalisation"), args);
  REQUIRE(engine.ok());
  auto store = is::InformationStore::NewStub((*infostore)->channel());
  auto segments = seg::Segmentation::NewStub((*segmentation)->channel());
  auto offers = v1::Personalisation::NewStub((*engine)->channel());

  auto upsert = [&](const std::string& name, const std::string& country, const std::string& tier) {
    is::UpsertCustomerRequest req;
    auto* email = req.add_identifiers();
    email->set_type(common::IDENTIFIER_TYPE_EMAIL);
    email->set_value(absl::StrCat(name, ".", backend, "@example.com"));
    req.mutable_profile()->set_first_name(name);
    req.mutable_profile()->mutable_address()->set_country(country);
    (*req.mutable_attributes())["tier"].set_string_value(tier);
    is::UpsertCustomerResponse resp;
    grpc::Status s = Call(*store, &is::InformationStore::Stub::UpsertCustomer, req, &resp);
    INFO(s.error_message());
    REQUIRE(s.ok());
    return resp.customer().id();
  };
  const std::string ana = upsert("ana", "GB", "gold");
  const std::string ben = upsert("ben", "FR", "silver");
  const std::string cat = upsert("cat", "GB", "gold");

  // A segment of segmentation's, followed until the customers are in it.
  seg::CreateSegmentRequest create_segment;
  create_segment.mutable_segment()->set_name("gb");
  create_segment.mutable_segment()->set_rule("profile.address.country == \"GB\"");
  seg::Segment gb;
  REQUIRE(Call(*segments, &seg::Segmentation::Stub::CreateSegment, create_segment, &gb).ok());
  REQUIRE(Eventually([&] {
    seg::GetCustomerSegmentsRequest req;
    req.set_customer_id(cat);
    seg::GetCustomerSegmentsResponse resp;
    return Call(*segments, &seg::Segmentation::Stub::GetCustomerSegments, req, &resp).ok() &&
           resp.segment_ids_size() == 1;
  }));

  auto create = [&](const v1::Offer& o) {
    v1::CreateOfferRequest req;
    *req.mutable_offer() = o;
    v1::Offer out;
    grpc::Status s = Call(*offers, &v1::Personalisation::Stub::CreateOffer, req, &out);
    INFO(s.error_message());
    REQUIRE(s.ok());
    return out.id();
  };
  const absl::Time now = absl::Now();
  v1::Offer by_rule = Percent("by_rule", 5);
  by_rule.set_eligibility_rule("profile.address.country == \"GB\" && attributes.tier == \"gold\"");
  v1::Offer by_segment = Percent("by_segment", 4);
  by_segment.add_segment_ids(gb.id());
  v1::Offer capped = Percent("capped", 10);
  capped.set_per_customer_cap(3);
  capped.add_placements("home");
  v1::Offer expired = Percent("expired", 20);
  *expired.mutable_starts_at() = At(now - absl::Hours(48));
  *expired.mutable_ends_at() = At(now - absl::Hours(24));
  v1::Offer future = Percent("future", 20);
  *future.mutable_starts_at() = At(now + absl::Hours(24));
  v1::Offer sms = Percent("sms", 20);
  sms.add_channels(common::CHANNEL_SMS);
  v1::Offer checkout = Percent("checkout", 20);
  checkout.add_placements("checkout");
  v1::Offer budget = Percent("budget", 1);
  budget.set_total_budget(1);
  const std::string rule_id = create(by_rule), segment_id = create(by_segment), capped_id = create(capped),
                    expired_id = create(expired), future_id = create(future), sms_id = create(sms),
                    checkout_id = create(checkout), budget_id = create(budget);

  auto decide = [&](const std::string& customer, int max, bool record) {
    v1::DecideOffersRequest req;
    req.set_customer_id(customer);
    req.set_placement("home");
    req.set_channel(common::CHANNEL_WEB);
    req.set_max_offers(max);
    req.set_record_impression(record);
    v1::DecideOffersResponse resp;
    grpc::Status s = Call(*offers, &v1::Personalisation::Stub::DecideOffers, req, &resp);
    INFO(s.error_message());
    REQUIRE(s.ok());
    return resp;
  };
  auto names = [](const v1::DecideOffersResponse& r) {
    std::vector<std::string> out;
    for (const auto& d : r.decisions()) out.push_back(d.offer().name());
    return out;
  };

  // Eligible by rule and by segment, ranked; every other offer with its reason.
  v1::DecideOffersResponse a = decide(ana, 10, false);
  CHECK(names(a) == std::vector<std::string>{"capped", "by_rule", "by_segment", "budget"});
  CHECK(a.decisions(1).reasons(0) == "rule `" + by_rule.eligibility_rule() + "`");
  CHECK(a.decisions(2).reasons(0) == "segment " + gb.id());
  CHECK(a.rejected().at(expired_id) ==
        "expired: ended at " + absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ",
                                                absl::FromUnixMicros(absl::ToUnixMicros(now) - 86400000000LL),
                                                absl::UTCTimeZone()));
  CHECK(absl::StartsWith(a.rejected().at(future_id), "not yet valid: starts at "));
  CHECK(a.rejected().at(sms_id) == "wrong channel: shown on sms, not web");
  CHECK(a.rejected().at(checkout_id) == "wrong placement: shown at checkout, not \"home\"");
  v1::DecideOffersResponse b = decide(ben, 10, false);
  CHECK(names(b) == std::vector<std::string>{"capped", "budget"});
  CHECK(b.rejected().at(rule_id) == "not eligible: rule clause `profile.address.country == \"GB\"` is false");
  CHECK(b.rejected().at(segment_id) == "not eligible: not in segment " + gb.id());

  // The budget: ben takes its one impression, ana is then refused it.
  CHECK(names(decide(ben, 10, true)) == std::vector<std::string>{"capped", "budget"});
  v1::DecideOffersResponse spent = decide(ana, 10, true);
  CHECK(names(spent) == std::vector<std::string>{"capped", "by_rule", "by_segment"});
  CHECK(spent.rejected().at(budget_id) == "budget spent: 1 of 1 impressions");

  // A cap of 3, 16 decisions at once for one customer: exactly 3 show it.
  std::atomic<int> shown{0}, capped_reason{0}, failed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&] {
      v1::DecideOffersRequest req;
      req.set_customer_id(cat);
      req.set_placement("home");
      req.set_channel(common::CHANNEL_WEB);
      req.set_max_offers(1);
      req.set_record_impression(true);
      v1::DecideOffersResponse resp;
      if (!Call(*offers, &v1::Personalisation::Stub::DecideOffers, req, &resp).ok()) {
        ++failed;
        return;
      }
      if (resp.decisions_size() == 1 && resp.decisions(0).offer().id() == capped_id) ++shown;
      auto it = resp.rejected().find(capped_id);
      if (it != resp.rejected().end() && it->second == "capped: shown 3 of 3 times to this customer") ++capped_reason;
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failed == 0);
  CHECK(shown == 3);
  CHECK(capped_reason == 13);
  v1::GetOfferRequest get;
  get.set_id(capped_id);
  v1::Offer got;
  REQUIRE(Call(*offers, &v1::Personalisation::Stub::GetOffer, get, &got).ok());
  CHECK(got.impressions() == 3 + 1 + 1);  // cat's 3, ben's and ana's

  // Bad input names the field.
  get.set_id("off_nope");
  CHECK(Call(*offers, &v1::Personalisation::Stub::GetOffer, get, &got).error_code() == grpc::StatusCode::NOT_FOUND);
  v1::DecideOffersRequest unknown;
  unknown.set_customer_id("c_nobody");
  v1::DecideOffersResponse none;
  grpc::Status s = Call(*offers, &v1::Personalisation::Stub::DecideOffers, unknown, &none);
  CHECK(s.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(s.error_message() == "customer_id: customer \"c_nobody\" does not exist");
  auto refused = [&](v1::Offer o) {
    v1::CreateOfferRequest req;
    *req.mutable_offer() = std::move(o);
    v1::Offer out;
    grpc::Status st = Call(*offers, &v1::Personalisation::Stub::CreateOffer, req, &out);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    return st.error_message();
  };
  v1::Offer o = Percent("bad", 1);
  o.set_eligibility_rule("orders.count >=");
  CHECK(absl::StartsWith(refused(o), "offer.eligibility_rule: 1:16: "));
  o.set_eligibility_rule("profile.address.country > 3");
  CHECK(refused(o) == "offer.eligibility_rule: 1:27: expected a string after '>', found 3");
  o.clear_eligibility_rule();
  o.set_per_customer_cap(-1);
  CHECK(refused(o) == "offer.per_customer_cap: must be 0 (no limit) or more, got -1");
  o.set_per_customer_cap(0);
  *o.mutable_starts_at() = At(now);
  *o.mutable_ends_at() = At(now - absl::Hours(1));
  CHECK(absl::StartsWith(refused(o), "offer.ends_at: "));

  // The impressions are the customer's data: exported, then erased.
  auto privacy = ecrm::privacy::v1::CustomerData::NewStub((*engine)->channel());
  ecrm::privacy::v1::ExportCustomerDataRequest ex;
  ex.set_customer_id(ana);
  ecrm::privacy::v1::ExportCustomerDataResponse exported;
  REQUIRE(Call(*privacy, &ecrm::privacy::v1::CustomerData::Stub::ExportCustomerData, ex, &exported).ok());
  CHECK(absl::StrContains(exported.json_document(), "\"offer_name\":\"by_rule\""));
  ecrm::privacy::v1::EraseCustomerDataRequest er;
  er.set_customer_id(ana);
  ecrm::privacy::v1::EraseCustomerDataResponse erased;
  REQUIRE(Call(*privacy, &ecrm::privacy::v1::CustomerData::Stub::EraseCustomerData, er, &erased).ok());
  REQUIRE(erased.items_size() == 1);
  CHECK(erased.items(0).count() == 3);  // capped, by_rule, by_segment
  REQUIRE(Call(*privacy, &ecrm::privacy::v1::CustomerData::Stub::ExportCustomerData, ex, &exported).ok());
  CHECK(exported.json_document() == "{\"offer_impressions\":[],\"recommendation_model\":{\"orders_learnt\":[]}}");
}
