// ecrm-infostore against the real binary with a real Redis, every case on SQLite and on
// PostgreSQL.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <latch>
#include <map>
#include <set>
#include <thread>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include "absl/strings/str_cat.h"
#include "ecrm/cache/redis_client.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/privacy/v1/privacy.grpc.pb.h"
#include "ecrm/sql/sql.h"
#include "ecrm/testing/remnants.h"
#include "ecrm/testing/servers.h"
#include "ecrm/testing/service.h"
#include "test_servers.h"

namespace v1 = ecrm::infostore::v1;
namespace common = ecrm::common::v1;
using ecrm::testing::ServiceProcess;

using ecrm::testing::Postgres;
using ecrm::testing::Redis;

namespace {

const std::string kBinary = absl::StrCat(ECRM_BUILD_DIR, "/services/ecrm-infostore");

// Database arguments for a fresh database of each kind.
std::vector<std::pair<std::string, std::vector<std::string>>> Backends() {
  auto db = Postgres().CreateUniqueDatabase();
  REQUIRE(db.ok());
  return {{"sqlite", {}}, {"postgres", {"--database-url=" + Postgres().url(*db)}}};
}

struct Client {
  std::unique_ptr<ServiceProcess> service;
  std::unique_ptr<v1::InformationStore::Stub> stub;

  explicit Client(std::vector<std::string> args) {
    args.push_back("--redis-url=" + Redis().url());
    auto s = ServiceProcess::Start(kBinary, args);
    if (!s.ok()) FAIL(s.status().ToString());
    service = std::move(*s);
    stub = v1::InformationStore::NewStub(service->channel());
  }

  template <typename Req, typename Resp, typename Method>
  grpc::Status Call(Method method, const Req& req, Resp* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    return (stub.get()->*method)(&ctx, req, resp);
  }

  v1::UpsertCustomerResponse Upsert(const v1::UpsertCustomerRequest& req) {
    v1::UpsertCustomerResponse resp;
    grpc::Status s = Call(&v1::InformationStore::Stub::UpsertCustomer, req, &resp);
    INFO(s.error_message());
    REQUIRE(s.ok());
    return resp;
  }

  // The first page of up to 1,000 customers.
  v1::ListCustomersResponse ListAll() {
    v1::ListCustomersRequest req;
    req.set_page_size(1000);
    v1::ListCustomersResponse all;
    grpc::Status s = Call(&v1::InformationStore::Stub::ListCustomers, req, &all);
    INFO(s.error_message());
    REQUIRE(s.ok());
    return all;
  }

  grpc::Status Get(const common::CustomerRef& ref, v1::Customer* out) {
    v1::GetCustomerRequest req;
    *req.mutable_customer() = ref;
    return Call(&v1::InformationStore::Stub::GetCustomer, req, out);
  }
};

// An upsert from a worker thread with its own stub (REQUIRE belongs to the test's thread).
bool UpsertFromThread(v1::InformationStore::Stub& stub, const v1::UpsertCustomerRequest& req) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  v1::UpsertCustomerResponse resp;
  return stub.UpsertCustomer(&ctx, req, &resp).ok();
}

common::Identifier Id(common::IdentifierType type, const std::string& value, const std::string& source = "") {
  common::Identifier id;
  id.set_type(type);
  id.set_value(value);
  id.set_source(source);
  return id;
}

v1::UpsertCustomerRequest WithIds(std::initializer_list<common::Identifier> ids) {
  v1::UpsertCustomerRequest req;
  for (const auto& id : ids) *req.add_identifiers() = id;
  return req;
}

common::CustomerRef RefId(const std::string& id) {
  common::CustomerRef r;
  r.set_customer_id(id);
  return r;
}

const auto kEmail = common::IDENTIFIER_TYPE_EMAIL;
const auto kPhone = common::IDENTIFIER_TYPE_PHONE;
const auto kDevice = common::IDENTIFIER_TYPE_DEVICE_ID;

}  // namespace

TEST_CASE("identifiers are normalised: two spellings are one customer") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      Client c(args);
      auto created = c.Upsert(WithIds({Id(kEmail, "  Ann.Smith@Example.COM "), Id(kPhone, "+44 7911 123456")}));
      CHECK(created.outcome() == v1::UpsertCustomerResponse::OUTCOME_CREATED);
      auto again = c.Upsert(WithIds({Id(kEmail, "ann.smith@example.com")}));
      CHECK(again.customer().id() == created.customer().id());
      auto by_phone = c.Upsert(WithIds({Id(kPhone, "07911 123456")}));  // national format, default region GB
      CHECK(by_phone.customer().id() == created.customer().id());

      v1::Customer got;
      common::CustomerRef ref;
      *ref.mutable_identifier() = Id(kPhone, "+447911123456");
      REQUIRE(c.Get(ref, &got).ok());
      CHECK(got.id() == created.customer().id());
      bool has_e164 = false;
      for (const auto& i : got.identifiers()) has_e164 |= i.value() == "+447911123456";
      CHECK(has_e164);
    }
  }
}

TEST_CASE("bad input gets the precise status and names the field") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      Client c(args);
      auto expect = [&](const v1::UpsertCustomerRequest& req, grpc::StatusCode code, const std::string& names) {
        v1::UpsertCustomerResponse resp;
        grpc::Status s = c.Call(&v1::InformationStore::Stub::UpsertCustomer, req, &resp);
        INFO(s.error_message());
        CHECK(s.error_code() == code);
        CHECK_THAT(s.error_message(), Catch::Contains(names));
      };
      expect(WithIds({Id(kEmail, "not-an-email")}), grpc::StatusCode::INVALID_ARGUMENT, "identifiers[0].value");
      expect(WithIds({Id(kEmail, "a@b.co"), Id(kPhone, "12")}), grpc::StatusCode::INVALID_ARGUMENT,
             "identifiers[1].value");
      expect(WithIds({Id(common::IDENTIFIER_TYPE_EXTERNAL_ID, "42")}), grpc::StatusCode::INVALID_ARGUMENT,
             "identifiers[0].source");
      expect(v1::UpsertCustomerRequest(), grpc::StatusCode::INVALID_ARGUMENT, "identifiers");
      auto unknown = v1::UpsertCustomerRequest();
      unknown.set_customer_id("c_nobody");
      expect(unknown, grpc::StatusCode::NOT_FOUND, "c_nobody");
      auto attr = WithIds({Id(kEmail, "a@b.co")});
      (*attr.mutable_attributes())["Bad Name"].set_int_value(1);
      expect(attr, grpc::StatusCode::INVALID_ARGUMENT, "attributes[\"Bad Name\"]");
      auto big = WithIds({Id(kEmail, "a@b.co")});
      (*big.mutable_attributes())["note"].set_string_value(std::string(2000, 'x'));
      expect(big, grpc::StatusCode::INVALID_ARGUMENT, "attributes[\"note\"]");
      auto mask = WithIds({Id(kEmail, "a@b.co")});
      mask.mutable_update_mask()->add_paths("profile.shoe_size");
      expect(mask, grpc::StatusCode::INVALID_ARGUMENT, "update_mask.paths[0]");
      auto birth = WithIds({Id(kEmail, "a@b.co")});
      birth.mutable_profile()->set_birth_date("2999-01-01");
      expect(birth, grpc::StatusCode::INVALID_ARGUMENT, "profile.birth_date");
      // An attribute's type is fixed by its first use, across customers and restarts.
      auto tier = WithIds({Id(kEmail, "typed@b.co")});
      (*tier.mutable_attributes())["tier"].set_string_value("gold");
      REQUIRE(c.Upsert(tier).customer().attributes().at("tier").string_value() == "gold");
      auto wrong = WithIds({Id(kEmail, "other@b.co")});
      (*wrong.mutable_attributes())["tier"].set_int_value(3);
      expect(wrong, grpc::StatusCode::INVALID_ARGUMENT, "attributes[\"tier\"]: holds string_value");
      v1::Customer none;
      common::CustomerRef other;
      *other.mutable_identifier() = Id(kEmail, "other@b.co");
      CHECK(c.Get(other, &none).error_code() == grpc::StatusCode::NOT_FOUND);  // nothing half-written

      v1::Customer got;
      CHECK(c.Get(RefId("c_nobody"), &got).error_code() == grpc::StatusCode::NOT_FOUND);
      CHECK(c.Get(common::CustomerRef(), &got).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    }
  }
}

TEST_CASE("strong identifiers merge customers into the oldest and merged ids redirect") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      Client c(args);
      auto older = c.Upsert(WithIds({Id(kEmail, "ann@example.com")}));
      auto newer = c.Upsert(WithIds({Id(kPhone, "+447911123456")}));
      REQUIRE(older.customer().id() != newer.customer().id());
      auto merged = c.Upsert(WithIds({Id(kEmail, "ann@example.com"), Id(kPhone, "+447911123456")}));
      CHECK(merged.outcome() == v1::UpsertCustomerResponse::OUTCOME_MERGED);
      CHECK(merged.customer().id() == older.customer().id());
      CHECK(merged.customer().identifiers_size() == 2);
      REQUIRE(merged.merged_ids_size() == 1);
      CHECK(merged.merged_ids(0) == newer.customer().id());

      v1::Customer got;
      REQUIRE(c.Get(RefId(newer.customer().id()), &got).ok());
      CHECK(got.id() == older.customer().id());

      v1::ListMergesRequest lm;
      lm.set_customer_id(newer.customer().id());
      v1::ListMergesResponse merges;
      REQUIRE(c.Call(&v1::InformationStore::Stub::ListMerges, lm, &merges).ok());
      REQUIRE(merges.merges_size() == 1);
      CHECK(merges.merges(0).survivor_id() == older.customer().id());
    }
  }
}

TEST_CASE("a shared device never fuses two identified people but an anonymous device joins its login") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      Client c(args);
      auto ann = c.Upsert(WithIds({Id(kEmail, "ann@example.com"), Id(kDevice, "shared-pc")}));
      auto bob = c.Upsert(WithIds({Id(kEmail, "bob@example.com"), Id(kDevice, "shared-pc")}));
      CHECK(bob.outcome() == v1::UpsertCustomerResponse::OUTCOME_CREATED);
      CHECK(bob.customer().id() != ann.customer().id());
      v1::Customer got;
      REQUIRE(c.Get(RefId(ann.customer().id()), &got).ok());
      CHECK(got.identifiers_size() == 2);  // Ann is untouched

      auto anon = c.Upsert(WithIds({Id(kDevice, "phone-123")}));
      CHECK(anon.customer().anonymous());
      auto login = c.Upsert(WithIds({Id(kEmail, "cy@example.com"), Id(kDevice, "phone-123")}));
      CHECK(login.customer().id() == anon.customer().id());  // the anonymous history is claimed
      CHECK_FALSE(login.customer().anonymous());
    }
  }
}

TEST_CASE("a merge keeps the most restrictive consent and records it") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      Client c(args);
      auto a = c.Upsert(WithIds({Id(kEmail, "ann@example.com")}));
      auto b = c.Upsert(WithIds({Id(kPhone, "+447911123456")}));
      auto consent = [&](const std::string& id, v1::ConsentStatus status) {
        v1::UpdateConsentRequest req;
        *req.mutable_customer() = RefId(id);
        req.set_channel(common::CHANNEL_EMAIL);
        req.set_purpose(common::PURPOSE_MARKETING);
        req.set_status(status);
        req.set_evidence("form 7");
        v1::Customer out;
        REQUIRE(c.Call(&v1::InformationStore::Stub::UpdateConsent, req, &out).ok());
      };
      consent(a.customer().id(), v1::CONSENT_STATUS_GRANTED);
      consent(b.customer().id(), v1::CONSENT_STATUS_GRANTED);
      consent(b.customer().id(), v1::CONSENT_STATUS_WITHDRAWN);
      auto merged = c.Upsert(WithIds({Id(kEmail, "ann@example.com"), Id(kPhone, "+447911123456")}));
      REQUIRE(merged.customer().consents_size() == 1);
      CHECK(merged.customer().consents(0).status() == v1::CONSENT_STATUS_WITHDRAWN);

      v1::GetConsentHistoryRequest hreq;
      *hreq.mutable_customer() = RefId(a.customer().id());
      v1::GetConsentHistoryResponse history;
      REQUIRE(c.Call(&v1::InformationStore::Stub::GetConsentHistory, hreq, &history).ok());
      REQUIRE(history.changes_size() == 4);  // 3 decisions + the merge's change
      CHECK(history.changes(0).reason() == "merge");
      CHECK(history.changes(0).previous_status() == v1::CONSENT_STATUS_GRANTED);

      v1::UpdateConsentRequest bad;
      *bad.mutable_customer() = RefId(a.customer().id());
      v1::Customer out;
      CHECK(c.Call(&v1::InformationStore::Stub::UpdateConsent, bad, &out).error_code() ==
            grpc::StatusCode::INVALID_ARGUMENT);
    }
  }
}

TEST_CASE("survivorship: the most recent value by default, source priority when configured") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      {
        Client c(args);
        auto a = WithIds({Id(kEmail, "ann@example.com")});
        a.mutable_profile()->set_first_name("Ann");
        c.Upsert(a);
        auto b = WithIds({Id(kPhone, "+447911123456")});
        b.mutable_profile()->set_first_name("Anne");
        b.mutable_profile()->set_last_name("Smith");
        c.Upsert(b);
        auto merged = c.Upsert(WithIds({Id(kEmail, "ann@example.com"), Id(kPhone, "+447911123456")}));
        CHECK(merged.customer().profile().first_name() == "Anne");  // the newer write
        CHECK(merged.customer().profile().last_name() == "Smith");
      }
      {
        auto priority_args = args;
        priority_args.push_back("--source-priority=erp,call_centre,web");
        if (name == "postgres") {
          auto db = Postgres().CreateUniqueDatabase();
          REQUIRE(db.ok());
          priority_args = {"--database-url=" + Postgres().url(*db), "--source-priority=erp,call_centre,web"};
        }
        Client c(priority_args);
        auto erp = WithIds({Id(common::IDENTIFIER_TYPE_EXTERNAL_ID, "K-1", "erp")});
        erp.mutable_profile()->mutable_address()->set_city("Leeds");
        erp.set_source(common::TOUCHPOINT_ERP);
        c.Upsert(erp);
        auto web = WithIds({Id(common::IDENTIFIER_TYPE_EXTERNAL_ID, "K-1", "erp")});
        web.mutable_profile()->mutable_address()->set_city("Lids");
        web.mutable_profile()->set_first_name("Kim");
        web.set_source(common::TOUCHPOINT_WEB);
        auto after = c.Upsert(web);
        CHECK(after.customer().profile().address().city() == "Leeds");  // the web never overrides the ERP
        CHECK(after.customer().profile().first_name() == "Kim");        // but fills what the ERP left empty
      }
    }
  }
}

namespace {

v1::RecordEventsResponse SendBatches(Client& c, const std::vector<v1::RecordEventsRequest>& batches,
                                     grpc::Status* status) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  v1::RecordEventsResponse resp;
  auto writer = c.stub->RecordEvents(&ctx, &resp);
  for (const auto& b : batches) {
    if (!writer->Write(b)) break;
  }
  writer->WritesDone();
  *status = writer->Finish();
  return resp;
}

v1::RecordEventsRequest Batch(const std::string& prefix, int n, const common::CustomerRef& who) {
  v1::RecordEventsRequest b;
  for (int i = 0; i < n; ++i) {
    v1::Event* e = b.add_events();
    e->set_event_id(absl::StrCat(prefix, i));
    e->set_type(i % 5 == 0 ? "purchase" : "page_view");
    *e->mutable_customer() = who;
    e->mutable_occurred_at()->set_seconds(absl::ToUnixSeconds(absl::Now()) - 60 + i % 60);
    if (i % 5 == 0) {
      e->mutable_amount()->set_amount_minor(1000);
      e->mutable_amount()->set_currency("EUR");
    }
  }
  return b;
}

// Reads the feed from `after` until `want` changes have arrived or a heartbeat says it is
// caught up.
std::vector<v1::Change> Watch(Client& c, int64_t after, size_t want) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  v1::WatchChangesRequest req;
  req.set_after_sequence(after);
  req.set_heartbeat_seconds(1);
  auto reader = c.stub->WatchChanges(&ctx, req);
  std::vector<v1::Change> got;
  v1::WatchChangesResponse message;
  while (got.size() < want && reader->Read(&message) && !message.changes().empty()) {
    if (!message.changes().empty()) CHECK(message.position() == message.changes().rbegin()->sequence());
    for (const v1::Change& ch : message.changes()) got.push_back(ch);
  }
  ctx.TryCancel();
  (void)reader->Finish();
  return got;
}

}  // namespace

TEST_CASE("replayed event batches are deduplicated and the behaviour summary counts once") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      Client c(args);
      auto who = c.Upsert(WithIds({Id(kEmail, "ann@example.com")}));
      std::vector<v1::RecordEventsRequest> batches = {Batch("a", 100, RefId(who.customer().id())),
                                                      Batch("b", 100, RefId(who.customer().id()))};
      grpc::Status s;
      auto first = SendBatches(c, batches, &s);
      REQUIRE(s.ok());
      CHECK(first.accepted() == 200);
      CHECK(first.batches() == 2);
      auto replay = SendBatches(c, batches, &s);
      REQUIRE(s.ok());
      CHECK(replay.accepted() == 0);
      CHECK(replay.duplicates() == 200);

      v1::Customer got;
      REQUIRE(c.Get(RefId(who.customer().id()), &got).ok());
      CHECK(got.behaviour().event_counts().at("page_view") == 160);
      CHECK(got.behaviour().order_count() == 40);
      CHECK(got.behaviour().total_spent().amount_minor() == 40000);

      // The feed has each event once, as an event change: the event with its customer, and the
      // customer's version after the commit that stored it (not the whole customer again).
      int events_seen = 0;
      int64_t version = who.customer().version();
      for (const v1::Change& ch : Watch(c, 0, 1000)) {
        if (ch.kind() != v1::CHANGE_KIND_EVENT) continue;
        ++events_seen;
        CHECK_FALSE(ch.has_customer());
        CHECK(ch.customer_id() == who.customer().id());
        CHECK(ch.has_committed_at());
        CHECK(ch.event().customer_id() == who.customer().id());
        CHECK_FALSE(ch.event().event_id().empty());
        CHECK((ch.event().type() == "page_view" || ch.event().type() == "purchase"));
        CHECK(ch.event().has_occurred_at());
        CHECK(ch.customer_version() > who.customer().version());
        CHECK(ch.customer_version() >= version);
        version = ch.customer_version();
      }
      CHECK(events_seen == 200);
      CHECK(version == got.version());

      // Events read back exactly as sent, a time finer than a microsecond included.
      auto tess = c.Upsert(WithIds({Id(kEmail, "tess@example.com")}));
      auto timed = Batch("t", 2, RefId(tess.customer().id()));
      timed.mutable_events(0)->mutable_occurred_at()->set_nanos(123456789);
      timed.mutable_events(1)->mutable_occurred_at()->set_nanos(5000);
      REQUIRE(SendBatches(c, {timed}, &s).accepted() == 2);
      v1::ListEventsRequest list;
      *list.mutable_customer() = RefId(tess.customer().id());
      v1::ListEventsResponse listed;
      REQUIRE(c.Call(&v1::InformationStore::Stub::ListEvents, list, &listed).ok());
      REQUIRE(listed.events_size() == 2);
      for (const v1::Event& e : listed.events()) {
        const v1::Event& sent = timed.events(e.event_id() == "t0" ? 0 : 1);
        CHECK(e.event_id() == sent.event_id());
        CHECK(e.type() == sent.type());
        CHECK(e.occurred_at().seconds() == sent.occurred_at().seconds());
        CHECK(e.occurred_at().nanos() == sent.occurred_at().nanos());
        CHECK(e.amount().amount_minor() == sent.amount().amount_minor());
        CHECK(e.customer_id() == tess.customer().id());
      }

      // An unknown device id creates an anonymous customer that a later login claims.
      common::CustomerRef device;
      *device.mutable_identifier() = Id(kDevice, "browser-9");
      auto from_device = SendBatches(c, {Batch("d", 3, device)}, &s);
      INFO(s.error_message());
      REQUIRE(s.ok());
      CHECK(from_device.accepted() == 3);
      auto login = c.Upsert(WithIds({Id(kEmail, "dee@example.com"), Id(kDevice, "browser-9")}));
      CHECK(login.customer().behaviour().event_counts().at("page_view") == 2);

      SendBatches(c, {}, &s);
      CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
      auto bad = Batch("x", 2, RefId(who.customer().id()));
      bad.mutable_events(1)->set_type("Not A Type");
      SendBatches(c, {bad}, &s);
      CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
      CHECK_THAT(s.error_message(), Catch::Contains("events[1].type"));
      SendBatches(c, {Batch("y", 1, RefId("c_nobody"))}, &s);
      CHECK(s.error_code() == grpc::StatusCode::NOT_FOUND);

      // Batches are read ahead of their commits: every one is counted, a failed one is named by
      // its position, and the ones before it are stored.
      const common::CustomerRef ref = RefId(who.customer().id());
      std::vector<v1::RecordEventsRequest> many;
      for (int i = 0; i < 20; ++i) many.push_back(Batch(absl::StrCat("m", i, "-"), 50, ref));
      auto all = SendBatches(c, many, &s);
      REQUIRE(s.ok());
      CHECK(all.batches() == 20);
      CHECK(all.accepted() == 1000);
      auto third_bad = Batch("n2-", 5, ref);
      third_bad.mutable_events(1)->set_type("Not A Type");
      SendBatches(c, {Batch("n0-", 5, ref), Batch("n1-", 5, ref), third_bad, Batch("n3-", 5, ref)}, &s);
      CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
      CHECK_THAT(s.error_message(), Catch::Contains("batch 3: events[1].type"));
      auto again = SendBatches(c, {Batch("n0-", 5, ref), Batch("n1-", 5, ref)}, &s);
      REQUIRE(s.ok());
      CHECK(again.duplicates() == 10);
    }
  }
}

TEST_CASE("events rewrite only the behaviour summary: the rest of the record and its provenance stay exact") {
  using google::protobuf::util::MessageDifferencer;
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      auto priority_args = args;
      priority_args.push_back("--source-priority=erp,call_centre,web");
      Client c(priority_args);
      auto erp = WithIds({Id(kEmail, "kim@example.com"), Id(common::IDENTIFIER_TYPE_EXTERNAL_ID, "K-7", "erp")});
      erp.mutable_profile()->set_first_name("Kim");
      erp.mutable_profile()->mutable_address()->set_city("Leeds");
      erp.mutable_profile()->set_birth_date("1980-02-29");
      (*erp.mutable_attributes())["tier"].set_string_value("gold");
      erp.set_source(common::TOUCHPOINT_ERP);
      const v1::Customer before = c.Upsert(erp).customer();
      v1::UpdateConsentRequest consent;
      *consent.mutable_customer() = RefId(before.id());
      consent.set_channel(common::CHANNEL_EMAIL);
      consent.set_purpose(common::PURPOSE_MARKETING);
      consent.set_status(v1::CONSENT_STATUS_GRANTED);
      consent.set_source(common::TOUCHPOINT_WEB);
      v1::Customer consented;
      REQUIRE(c.Call(&v1::InformationStore::Stub::UpdateConsent, consent, &consented).ok());

      grpc::Status s;
      REQUIRE(SendBatches(c, {Batch("k", 10, RefId(before.id()))}, &s).accepted() == 10);
      REQUIRE(s.ok());
      v1::Customer cached;
      REQUIRE(c.Get(RefId(before.id()), &cached).ok());
      // The database's copy (ListCustomers reads the rows) is the cache's.
      v1::Customer stored;
      const v1::ListCustomersResponse listed = c.ListAll();
      for (const v1::Customer& cu : listed.customers()) {
        if (cu.id() == before.id()) stored = cu;
      }
      REQUIRE(stored.id() == before.id());
      CHECK(MessageDifferencer::Equals(stored, cached));
      CHECK(stored.version() == consented.version() + 1);  // one batch, one new version
      CHECK(stored.behaviour().event_counts().at("page_view") == 8);
      CHECK(stored.behaviour().order_count() == 2);
      CHECK(stored.behaviour().total_spent().amount_minor() == 2000);
      // Everything but the summary, the version and the update time is as it was.
      v1::Customer rest = stored;
      rest.clear_behaviour();
      rest.clear_version();
      rest.clear_updated_at();
      v1::Customer was = consented;
      was.clear_behaviour();
      was.clear_version();
      was.clear_updated_at();
      CHECK(MessageDifferencer::Equals(rest, was));
      CHECK(stored.consents_size() == 1);
      CHECK(stored.attributes().at("tier").string_value() == "gold");
      // The provenance survived: the web still may not overwrite the ERP's city, but fills a gap.
      auto web = WithIds({Id(kEmail, "kim@example.com")});
      web.mutable_profile()->mutable_address()->set_city("Lids");
      web.mutable_profile()->set_last_name("Lee");
      web.set_source(common::TOUCHPOINT_WEB);
      auto after = c.Upsert(web);
      CHECK(after.customer().profile().address().city() == "Leeds");
      CHECK(after.customer().profile().last_name() == "Lee");
      CHECK(after.customer().behaviour().order_count() == 2);
    }
  }
}

TEST_CASE("the change feed streams every change in order and resumes after a restart without gaps") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      ecrm::testing::TempDir dir;
      auto db_args = args;
      if (db_args.empty()) db_args.push_back(absl::StrCat("--database-url=sqlite://", dir.path(), "/feed.db"));
      int64_t last = 0;
      std::string id;
      {
        Client c(db_args);
        auto typed = WithIds({Id(kEmail, "typed@example.com")});
        (*typed.mutable_attributes())["visits"].set_int_value(3);
        c.Upsert(typed);
        for (int i = 0; i < 9; ++i) {
          auto r = WithIds({Id(kEmail, absl::StrCat("p", i, "@example.com"))});
          id = c.Upsert(r).customer().id();
        }
        auto changes = Watch(c, 0, 10);
        REQUIRE(changes.size() == 10);
        for (size_t i = 1; i < changes.size(); ++i) CHECK(changes[i].sequence() > changes[i - 1].sequence());
        CHECK(changes.front().kind() == v1::CHANGE_KIND_IDENTITY);
        last = changes[4].sequence();  // a consumer that applied five changes, then stopped
        c.service->process().Signal(SIGTERM);
        REQUIRE(c.service->process().Wait(absl::Seconds(15)).value_or(-1) == 0);
      }
      Client c(db_args);  // restarted on the same database
      {
        // Attribute types declared before the restart still hold.
        auto typed = WithIds({Id(kEmail, "typed@example.com")});
        (*typed.mutable_attributes())["visits"].set_string_value("three");
        v1::UpsertCustomerResponse resp;
        CHECK(c.Call(&v1::InformationStore::Stub::UpsertCustomer, typed, &resp).error_code() ==
              grpc::StatusCode::INVALID_ARGUMENT);
      }
      v1::UpdateConsentRequest req;
      *req.mutable_customer() = RefId(id);
      req.set_channel(common::CHANNEL_SMS);
      req.set_purpose(common::PURPOSE_MARKETING);
      req.set_status(v1::CONSENT_STATUS_DENIED);
      v1::Customer out;
      REQUIRE(c.Call(&v1::InformationStore::Stub::UpdateConsent, req, &out).ok());
      auto rest = Watch(c, last, 6);
      REQUIRE(rest.size() == 6);  // the five it had not applied, then the new one
      CHECK(rest.front().sequence() > last);
      for (size_t i = 1; i < rest.size(); ++i) CHECK(rest[i].sequence() > rest[i - 1].sequence());
      CHECK(rest.back().kind() == v1::CHANGE_KIND_CONSENT);
      CHECK(rest.back().customer().consents(0).status() == v1::CONSENT_STATUS_DENIED);
    }
  }
}

TEST_CASE("Redis killed and restarted under load: zero failed RPCs and no stale reads") {
  Client c({});
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i)
    ids.push_back(c.Upsert(WithIds({Id(kEmail, absl::StrCat("r", i, "@x.io"))})).customer().id());
  std::atomic<bool> stop{false};
  std::atomic<int> calls{0}, failed{0};
  std::vector<std::thread> clients;  // readers and writers; no assertions off the test thread
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      for (int n = 0; !stop; ++n) {
        const std::string& id = ids[(t * 7 + n) % ids.size()];
        grpc::Status s;
        if (n % 4 == 0) {  // a write through the cache
          v1::UpsertCustomerRequest req;
          req.set_customer_id(id);
          req.mutable_profile()->set_first_name(absl::StrCat("n", n));
          v1::UpsertCustomerResponse resp;
          s = c.Call(&v1::InformationStore::Stub::UpsertCustomer, req, &resp);
        } else {
          v1::Customer got;
          s = c.Get(RefId(id), &got);
        }
        ++calls;
        failed += !s.ok();
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(300));
  Redis().Kill();
  absl::SleepFor(absl::Seconds(1));
  REQUIRE(Redis().Restart().ok());
  absl::SleepFor(absl::Milliseconds(700));
  stop = true;
  for (auto& t : clients) t.join();
  CHECK(calls > 100);
  CHECK(failed == 0);
  // Written during the outage, read after it: the fresh value, never the one cached before.
  v1::UpsertCustomerRequest req;
  req.set_customer_id(ids[0]);
  req.mutable_profile()->set_first_name("final");
  c.Upsert(req);
  v1::Customer got;
  REQUIRE(c.Get(RefId(ids[0]), &got).ok());
  CHECK(got.profile().first_name() == "final");
}

TEST_CASE("merge then unmerge restores both customers, their identifiers, consents and events exactly") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      Client c(args);
      auto a_req = WithIds({Id(kEmail, "ann@example.com")});
      a_req.mutable_profile()->set_first_name("Ann");
      auto a = c.Upsert(a_req);
      auto b_req = WithIds({Id(kPhone, "+447911123456"), Id(kDevice, "tablet-1")});
      b_req.mutable_profile()->set_first_name("Anne");
      b_req.mutable_profile()->set_last_name("Smith");
      auto b = c.Upsert(b_req);
      v1::UpdateConsentRequest consent;
      *consent.mutable_customer() = RefId(b.customer().id());
      consent.set_channel(common::CHANNEL_SMS);
      consent.set_purpose(common::PURPOSE_MARKETING);
      consent.set_status(v1::CONSENT_STATUS_GRANTED);
      v1::Customer tmp;
      REQUIRE(c.Call(&v1::InformationStore::Stub::UpdateConsent, consent, &tmp).ok());
      grpc::Status s;
      SendBatches(c, {Batch("ea", 10, RefId(a.customer().id())), Batch("eb", 5, RefId(b.customer().id()))}, &s);
      REQUIRE(s.ok());
      v1::Customer a_before, b_before;
      REQUIRE(c.Get(RefId(a.customer().id()), &a_before).ok());
      REQUIRE(c.Get(RefId(b.customer().id()), &b_before).ok());

      v1::MergeCustomersRequest mreq;
      mreq.add_customer_ids(a.customer().id());
      mreq.add_customer_ids(b.customer().id());
      mreq.set_reason("same person");
      v1::MergeCustomersResponse merged;
      REQUIRE(c.Call(&v1::InformationStore::Stub::MergeCustomers, mreq, &merged).ok());
      CHECK(merged.survivor().identifiers_size() == 3);
      CHECK(merged.survivor().behaviour().event_counts().at("page_view") == 12);

      v1::UnmergeCustomersRequest ureq;
      ureq.set_merge_id(merged.merge().merge_id());
      v1::UnmergeCustomersResponse unmerged;
      grpc::Status us = c.Call(&v1::InformationStore::Stub::UnmergeCustomers, ureq, &unmerged);
      INFO(us.error_message());
      REQUIRE(us.ok());
      REQUIRE(unmerged.customers_size() == 2);
      for (const auto& [id, before] :
           {std::pair{a.customer().id(), a_before}, std::pair{b.customer().id(), b_before}}) {
        v1::Customer after;
        REQUIRE(c.Get(RefId(id), &after).ok());
        CHECK(after.id() == id);  // no longer redirected
        CHECK(after.profile().SerializeAsString() == before.profile().SerializeAsString());
        CHECK(after.identifiers_size() == before.identifiers_size());
        CHECK(after.consents_size() == before.consents_size());
        CHECK(std::map<std::string, int64_t>(after.behaviour().event_counts().begin(),
                                             after.behaviour().event_counts().end()) ==
              std::map<std::string, int64_t>(before.behaviour().event_counts().begin(),
                                             before.behaviour().event_counts().end()));
        CHECK(after.merged_ids_size() == 0);
        CHECK(after.behaviour().first_seen_at().seconds() == before.behaviour().first_seen_at().seconds());
        CHECK(after.behaviour().total_spent().amount_minor() == before.behaviour().total_spent().amount_minor());
      }
      v1::ListEventsRequest lreq;
      *lreq.mutable_customer() = RefId(b.customer().id());
      v1::ListEventsResponse events;
      REQUIRE(c.Call(&v1::InformationStore::Stub::ListEvents, lreq, &events).ok());
      CHECK(events.events_size() == 5);
      CHECK(c.Call(&v1::InformationStore::Stub::UnmergeCustomers, ureq, &unmerged).error_code() ==
            grpc::StatusCode::FAILED_PRECONDITION);
      ureq.set_merge_id("m_none");
      CHECK(c.Call(&v1::InformationStore::Stub::UnmergeCustomers, ureq, &unmerged).error_code() ==
            grpc::StatusCode::NOT_FOUND);
    }
  }
}

TEST_CASE("customers and events are listed page by page and bad page tokens are INVALID_ARGUMENT") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      Client c(args);
      std::set<std::string> created;
      for (int i = 0; i < 25; ++i)
        created.insert(c.Upsert(WithIds({Id(kEmail, absl::StrCat("l", i, "@x.io"))})).customer().id());
      std::set<std::string> listed;
      v1::ListCustomersRequest req;
      req.set_page_size(10);
      int pages = 0;
      do {
        v1::ListCustomersResponse page;
        REQUIRE(c.Call(&v1::InformationStore::Stub::ListCustomers, req, &page).ok());
        CHECK(page.as_of_sequence() >= 25);
        for (const auto& cu : page.customers()) listed.insert(cu.id());
        req.set_page_token(page.next_page_token());
        ++pages;
      } while (!req.page_token().empty() && pages < 10);
      CHECK(pages == 3);
      CHECK(listed == created);

      std::string id = *created.begin();
      grpc::Status s;
      SendBatches(c, {Batch("pg", 30, RefId(id))}, &s);
      REQUIRE(s.ok());
      v1::ListEventsRequest ereq;
      *ereq.mutable_customer() = RefId(id);
      ereq.add_types("purchase");
      ereq.set_page_size(4);
      v1::ListEventsResponse first, second;
      REQUIRE(c.Call(&v1::InformationStore::Stub::ListEvents, ereq, &first).ok());
      CHECK(first.events_size() == 4);
      ereq.set_page_token(first.next_page_token());
      REQUIRE(c.Call(&v1::InformationStore::Stub::ListEvents, ereq, &second).ok());
      CHECK(second.events_size() == 2);  // 6 purchases in all
      CHECK(second.next_page_token().empty());
      for (const auto& e : second.events()) CHECK(e.type() == "purchase");

      v1::ListCustomersRequest bad;
      bad.set_page_token("garbage");
      v1::ListCustomersResponse none;
      grpc::Status bs = c.Call(&v1::InformationStore::Stub::ListCustomers, bad, &none);
      CHECK(bs.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
      CHECK_THAT(bs.error_message(), Catch::Contains("page_token"));
      ereq.set_page_token("e:x:y");
      CHECK(c.Call(&v1::InformationStore::Stub::ListEvents, ereq, &first).error_code() ==
            grpc::StatusCode::INVALID_ARGUMENT);
    }
  }
}

namespace {

// Rows left anywhere in the store that mention `needle` in an id column or a payload.
int64_t Leftovers(const std::string& db_url, const std::vector<std::string>& ids, const std::vector<std::string>& pii) {
  auto db = ecrm::sql::Database::Open(db_url);
  REQUIRE(db.ok());
  int64_t n = 0;
  for (const std::string& id : ids) {
    for (const char* sql :
         {"SELECT COUNT(*) FROM customers WHERE id = $1", "SELECT COUNT(*) FROM identifiers WHERE customer_id = $1",
          "SELECT COUNT(*) FROM events WHERE customer_id = $1 OR recorded_for = $1",
          "SELECT COUNT(*) FROM consent_history WHERE customer_id = $1",
          "SELECT COUNT(*) FROM merge_members WHERE customer_id = $1"}) {
      auto r = (*db)->Execute(sql, {id});
      REQUIRE(r.ok());
      n += r->front().Int(0);
    }
  }
  for (const char* sql : {"SELECT change FROM changes", "SELECT record FROM customers", "SELECT event FROM events",
                          "SELECT before_images FROM merges", "SELECT change FROM consent_history"}) {
    auto r = (*db)->Execute(sql);
    REQUIRE(r.ok());
    for (auto row : *r) {
      for (const std::string& s : pii) n += row.Text(0).find(s) != absl::string_view::npos;
    }
  }
  return n;
}

}  // namespace

TEST_CASE("erasure leaves nothing behind in the database, the cache or the feed, and flags a re-import") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      ecrm::testing::TempDir dir;
      std::string url = args.empty() ? absl::StrCat("sqlite://", dir.path(), "/erase.db") : args[0].substr(15);
      Client c({"--database-url=" + url});
      auto keep = c.Upsert(WithIds({Id(kEmail, "keep@example.com")}));
      auto a_req = WithIds({Id(kEmail, "zelda@example.com")});
      a_req.mutable_profile()->set_first_name("Zelda");
      auto a = c.Upsert(a_req);
      auto b = c.Upsert(WithIds({Id(kPhone, "+447911123456")}));
      auto merged = c.Upsert(WithIds({Id(kEmail, "zelda@example.com"), Id(kPhone, "+447911123456")}));
      REQUIRE(merged.outcome() == v1::UpsertCustomerResponse::OUTCOME_MERGED);
      grpc::Status s;
      SendBatches(c, {Batch("z", 10, RefId(a.customer().id()))}, &s);
      REQUIRE(s.ok());

      v1::ExportCustomerRequest ereq;
      *ereq.mutable_customer() = RefId(b.customer().id());  // a merged id works too
      v1::ExportCustomerResponse exported;
      REQUIRE(c.Call(&v1::InformationStore::Stub::ExportCustomer, ereq, &exported).ok());
      google::protobuf::Struct doc;
      REQUIRE(google::protobuf::util::JsonStringToMessage(exported.json_document(), &doc).ok());
      CHECK_THAT(exported.json_document(), Catch::Contains("Zelda"));
      CHECK(doc.fields()
                .at("engines")
                .struct_value()
                .fields()
                .at("infostore")
                .struct_value()
                .fields()
                .at("events")
                .list_value()
                .values_size() == 10);

      v1::EraseCustomerRequest req;
      *req.mutable_customer() = RefId(a.customer().id());
      req.set_reason("GDPR art. 17 request #1");
      req.set_request_id("erase-1");
      v1::EraseCustomerResponse receipt;
      REQUIRE(c.Call(&v1::InformationStore::Stub::EraseCustomer, req, &receipt).ok());
      REQUIRE(receipt.receipts_size() == 1);
      CHECK(receipt.receipts(0).engine() == "infostore");
      std::map<std::string, int64_t> counts;
      for (const auto& item : receipt.receipts(0).items()) counts[item.kind()] = item.count();
      CHECK(counts["customers"] == 2);
      CHECK(counts["identifiers"] == 2);
      CHECK(counts["events"] == 10);

      v1::EraseCustomerResponse again;  // a retry returns the first receipt
      req.mutable_customer()->set_customer_id(a.customer().id());
      REQUIRE(c.Call(&v1::InformationStore::Stub::EraseCustomer, req, &again).ok());
      REQUIRE(again.receipts_size() == 1);
      CHECK(again.receipts(0).SerializeAsString() == receipt.receipts(0).SerializeAsString());

      v1::Customer got;
      CHECK(c.Get(RefId(a.customer().id()), &got).error_code() == grpc::StatusCode::NOT_FOUND);
      CHECK(c.Get(RefId(b.customer().id()), &got).error_code() == grpc::StatusCode::NOT_FOUND);
      CHECK(c.Get(RefId(keep.customer().id()), &got).ok());  // nobody else is touched
      CHECK(Leftovers(url, {a.customer().id(), b.customer().id()}, {"zelda@example.com", "Zelda", "+447911123456"}) ==
            0);

      // The cache holds no profile of them, only tombstones.
      auto redis_options = ecrm::cache::ParseRedisUrl(Redis().url());
      REQUIRE(redis_options.ok());
      ecrm::cache::RedisClient redis(*redis_options);
      for (const auto& id : {a.customer().id(), b.customer().id()}) {
        auto keys = redis.Command({"KEYS", absl::StrCat("*", id)});
        REQUIRE(keys.ok());
        for (const auto& key : keys->elements) {
          auto d = redis.Command({"HGET", key.str, "d"});
          REQUIRE(d.ok());
          CHECK(d->type == ecrm::cache::RedisReply::Type::kNil);
        }
      }
      auto feed = Watch(c, 0, 1000);  // reads what is there, up to the first heartbeat
      bool erase_seen = false;
      for (const auto& ch : feed)
        erase_seen |= ch.kind() == v1::CHANGE_KIND_ERASE && ch.customer_id() == a.customer().id();
      CHECK(erase_seen);

      v1::UpsertCustomerResponse reimport;
      grpc::Status rs =
          c.Call(&v1::InformationStore::Stub::UpsertCustomer, WithIds({Id(kEmail, "Zelda@Example.com")}), &reimport);
      CHECK(rs.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
      CHECK_THAT(rs.error_message(), Catch::Contains("erased"));
    }
  }
}

TEST_CASE("export and erasure fan out to every configured engine and report the unreachable ones") {
  Client mirror({});  // another engine's CustomerData: here a second information store
  const ecrm::testing::ClosedPort down;
  Client c({"--privacy-engines=mirror=" + mirror.service->grpc_address() + ",down=" + down.address(),
            "--privacy-timeout=1s"});
  auto a = c.Upsert(WithIds({Id(kEmail, "fan@example.com")}));
  v1::ExportCustomerRequest ereq;
  *ereq.mutable_customer() = RefId(a.customer().id());
  v1::ExportCustomerResponse exported;
  REQUIRE(c.Call(&v1::InformationStore::Stub::ExportCustomer, ereq, &exported).ok());
  CHECK(exported.parts_size() == 2);
  REQUIRE(exported.unavailable_engines_size() == 1);
  CHECK(exported.unavailable_engines(0) == "down");
  CHECK_THAT(exported.json_document(), Catch::Contains("\"mirror\":{}"));

  v1::EraseCustomerRequest req;
  *req.mutable_customer() = RefId(a.customer().id());
  req.set_request_id("erase-fan");
  v1::EraseCustomerResponse receipt;
  REQUIRE(c.Call(&v1::InformationStore::Stub::EraseCustomer, req, &receipt).ok());
  CHECK(receipt.unavailable_engines_size() == 1);
  v1::Customer got;
  CHECK(c.Get(RefId(a.customer().id()), &got).ok());  // not erased here until every engine has

  v1::EraseCustomerRequest no_id;
  *no_id.mutable_customer() = RefId(a.customer().id());
  CHECK(c.Call(&v1::InformationStore::Stub::EraseCustomer, no_id, &receipt).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_CASE("errors name the field and the rule, never the rejected personal data") {
  Client c({});
  auto refused = [&](const v1::UpsertCustomerRequest& req, const std::string& field, const std::string& value) {
    v1::UpsertCustomerResponse resp;
    grpc::Status s = c.Call(&v1::InformationStore::Stub::UpsertCustomer, req, &resp);
    INFO(s.error_message());
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(s.error_message(), Catch::StartsWith(field));
    CHECK_THAT(s.error_message(), !Catch::Contains(value));
  };
  refused(WithIds({Id(kEmail, "zelda.quist@example")}), "identifiers[0].value", "zelda");
  refused(WithIds({Id(kEmail, "a@b.co"), Id(kPhone, "0131 99")}), "identifiers[1].value", "0131");
  auto birth = WithIds({Id(kEmail, "a@b.co")});
  birth.mutable_profile()->set_birth_date("1984-13-32");
  refused(birth, "profile.birth_date", "1984");
  auto zone = WithIds({Id(kEmail, "a@b.co")});
  zone.mutable_profile()->set_time_zone("Home/Zelda");
  refused(zone, "profile.time_zone", "Zelda");
  // Events name their customer by identifier too.
  v1::RecordEventsRequest batch = Batch("bad", 1, common::CustomerRef());
  *batch.mutable_events(0)->mutable_customer()->mutable_identifier() = Id(kEmail, "zelda.quist@example");
  grpc::Status s;
  SendBatches(c, {batch}, &s);
  INFO(s.error_message());
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(s.error_message(), Catch::Contains("events[0].customer.identifier.value"));
  CHECK_THAT(s.error_message(), !Catch::Contains("zelda"));
}

namespace {

v1::EraseCustomerResponse EraseCustomer(Client& c, const std::string& id, const std::string& request_id) {
  v1::EraseCustomerRequest req;
  *req.mutable_customer() = RefId(id);
  req.set_request_id(request_id);
  v1::EraseCustomerResponse receipt;
  grpc::Status s = c.Call(&v1::InformationStore::Stub::EraseCustomer, req, &receipt);
  INFO(s.error_message());
  REQUIRE(s.ok());
  REQUIRE(receipt.receipts_size() == 1);
  return receipt;
}

}  // namespace

TEST_CASE("erasure deletes the customer's upsert request ids: a retry is refused, not answered with the profile") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      ecrm::testing::TempDir dir;
      std::string url = args.empty() ? absl::StrCat("sqlite://", dir.path(), "/erase.db") : args[0].substr(15);
      Client c({"--database-url=" + url});
      auto first = WithIds({Id(kEmail, "quinn@example.com")});
      first.mutable_profile()->set_first_name("Quinneth");
      first.set_request_id("quinn-1");
      auto a = c.Upsert(first);
      auto second = WithIds({Id(kPhone, "+447911123456")});
      second.set_request_id("quinn-2");
      c.Upsert(second);
      auto both = WithIds({Id(kEmail, "quinn@example.com"), Id(kPhone, "+447911123456")});
      both.set_request_id("quinn-3");
      REQUIRE(c.Upsert(both).outcome() == v1::UpsertCustomerResponse::OUTCOME_MERGED);
      auto other = WithIds({Id(kEmail, "keep@example.com")});
      other.set_request_id("keep-1");
      auto kept = c.Upsert(other);

      auto receipt = EraseCustomer(c, a.customer().id(), "erase-quinn");
      std::map<std::string, int64_t> counts;
      for (const auto& item : receipt.receipts(0).items()) counts[item.kind()] = item.count();
      CHECK(counts["idempotency_keys"] == 3);

      for (const auto* retry : {&first, &second, &both}) {
        v1::UpsertCustomerResponse resp;
        grpc::Status s = c.Call(&v1::InformationStore::Stub::UpsertCustomer, *retry, &resp);
        INFO(retry->request_id() << ": " << s.error_message());
        CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
        CHECK_THAT(s.error_message(), Catch::Contains("erased"));
        CHECK(resp.customer().profile().first_name().empty());
      }
      CHECK(c.Upsert(other).SerializeAsString() == kept.SerializeAsString());  // others still replay
      auto privacy = ecrm::privacy::v1::CustomerData::NewStub(c.service->channel());
      ecrm::privacy::v1::ExportCustomerDataRequest ex;
      ex.set_customer_id(a.customer().id());
      ecrm::privacy::v1::ExportCustomerDataResponse exported;
      grpc::ClientContext ctx;
      REQUIRE(privacy->ExportCustomerData(&ctx, ex, &exported).ok());
      CHECK(exported.json_document() == "{}");  // nothing held

      auto db = ecrm::sql::Database::Open(url);
      REQUIRE(db.ok());
      auto left = (*db)->Execute("SELECT key, response FROM idempotency_keys");
      REQUIRE(left.ok());
      REQUIRE(left->size() == 1);
      CHECK(left->front().Text(0) == "keep-1");
      for (const char* pii : {"quinn@example.com", "Quinneth", "+447911123456"}) {
        CHECK(left->front().Text(1).find(pii) == absl::string_view::npos);
      }
    }
  }
}

TEST_CASE("an erasure leaves no row version with the erased data in the database's pages") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      ecrm::testing::TempDir dir;
      const std::string path = absl::StrCat(dir.path(), "/erase.db");
      std::string url = args.empty() ? absl::StrCat("sqlite://", path) : args[0].substr(15);
      Client c({"--database-url=" + url});
      const std::string email = "ottoline.quist@example.com", first_name = "Ottoline";
      auto req = WithIds({Id(kEmail, email)});
      req.mutable_profile()->set_first_name(first_name);
      req.set_request_id("otto-1");
      auto a = c.Upsert(req);
      auto renamed = WithIds({Id(kEmail, email)});
      renamed.mutable_profile()->set_last_name("Quist-Lindqvist");
      c.Upsert(renamed);
      v1::UpdateConsentRequest consent;
      *consent.mutable_customer() = RefId(a.customer().id());
      consent.set_channel(common::CHANNEL_EMAIL);
      consent.set_purpose(common::PURPOSE_MARKETING);
      consent.set_status(v1::CONSENT_STATUS_GRANTED);
      consent.set_evidence("signed by Ottoline at the till");
      v1::Customer out;
      REQUIRE(c.Call(&v1::InformationStore::Stub::UpdateConsent, consent, &out).ok());
      grpc::Status s;
      SendBatches(c, {Batch("otto", 20, RefId(a.customer().id()))}, &s);
      REQUIRE(s.ok());
      EraseCustomer(c, a.customer().id(), "erase-otto");

      if (name == "postgres") {
        auto db = ecrm::sql::Database::Open(url);
        REQUIRE(db.ok());
        for (const char* table :
             {"customers", "identifiers", "events", "consent_history", "merges", "changes", "idempotency_keys"}) {
          for (const std::string& pii : {email, first_name, std::string("Quist-Lindqvist")}) {
            INFO(table << " " << pii);
            CHECK(ecrm::testing::RowVersionsHolding(**db, table, pii).value() == 0);
          }
        }
        CHECK(ecrm::testing::IndexEntriesHolding(**db, "identifiers_pkey", email).value() == 0);
      } else {  // stopped, so that the WAL is copied back and removed
        c.service->process().Signal(SIGTERM);
        REQUIRE(c.service->process().Wait(absl::Seconds(20)).has_value());
        for (const std::string& file : {path, path + "-wal"}) {
          for (const std::string& pii : {email, first_name, std::string("Quist-Lindqvist")}) {
            INFO(file << " " << pii);
            CHECK(ecrm::testing::Occurrences(file, pii) == 0);
          }
        }
      }
    }
  }
}

TEST_CASE("concurrent upserts with overlapping identifiers never create duplicates") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      Client c(args);
      constexpr int kPeople = 10, kThreads = 8, kCalls = 40;
      auto email = [](int k) { return Id(kEmail, absl::StrCat("person", k, "@example.com")); };
      auto phone = [](int k) { return Id(kPhone, absl::StrCat("+44791112", 1000 + k)); };
      std::atomic<int> failures{0};
      std::vector<std::thread> threads;
      for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
          auto stub = v1::InformationStore::NewStub(c.service->channel());
          for (int i = 0; i < kCalls; ++i) {
            int k = (t * 7 + i) % kPeople;
            v1::UpsertCustomerRequest req;
            switch ((t + i) % 3) {
              case 0:
                *req.add_identifiers() = email(k);
                break;
              case 1:
                *req.add_identifiers() = phone(k);
                break;
              default:
                *req.add_identifiers() = email(k);
                *req.add_identifiers() = phone(k);
            }
            if (!UpsertFromThread(*stub, req)) ++failures;
          }
        });
      }
      for (auto& th : threads) th.join();
      CHECK(failures == 0);
      for (int k = 0; k < kPeople; ++k) c.Upsert(WithIds({email(k), phone(k)}));  // joins any separate halves
      const v1::ListCustomersResponse all = c.ListAll();
      CHECK(all.customers_size() == kPeople);
      for (const auto& cu : all.customers()) CHECK(cu.identifiers_size() == 2);
    }
  }
}

TEST_CASE("concurrent upserts linking the same customers in any order never deadlock on PostgreSQL") {
  auto db_name = Postgres().CreateUniqueDatabase();
  REQUIRE(db_name.ok());
  auto stats = ecrm::sql::Database::Open(Postgres().url());
  REQUIRE(stats.ok());
  auto deadlocks = [&]() -> int64_t {
    auto r = (*stats)->Execute("SELECT deadlocks FROM pg_stat_database WHERE datname = $1", {*db_name});
    REQUIRE(r.ok());
    REQUIRE(r->size() == 1);
    return r->front().Int(0);
  };
  const int64_t before = deadlocks();
  {
    Client c({"--database-url=" + Postgres().url(*db_name)});
    constexpr int kRounds = 30, kThreads = 8;
    auto email = [](int round, int k) { return Id(kEmail, absl::StrCat("link", round, "-", k, "@example.com")); };
    std::atomic<int> failures{0};
    for (int round = 0; round < kRounds; ++round) {
      for (int k = 0; k < 3; ++k) c.Upsert(WithIds({email(round, k)}));  // three separate customers
      std::latch go(kThreads);
      std::vector<std::thread> threads;
      for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t, round] {
          // Each client names the three in another order, so each locks them in another order
          // unless the store imposes one.
          const int first = t % 3, step = t % 2 ? 1 : 2;
          v1::UpsertCustomerRequest req;
          for (int j = 0; j < 3; ++j) *req.add_identifiers() = email(round, (first + j * step) % 3);
          *req.add_identifiers() = Id(kPhone, absl::StrCat("+4479111", 10000 + round * 10 + t));
          auto stub = v1::InformationStore::NewStub(c.service->channel());
          go.arrive_and_wait();
          if (!UpsertFromThread(*stub, req)) ++failures;
        });
      }
      for (auto& th : threads) th.join();
    }
    CHECK(failures == 0);
    CHECK(c.ListAll().customers_size() == kRounds);  // each round's three are one customer
    c.service->process().Signal(SIGTERM);
    REQUIRE(c.service->process().Wait(absl::Seconds(30)).has_value());
  }
  // A backend reports its deadlocks to the statistics by the time it has gone from pg_stat_activity.
  for (;;) {
    auto r = (*stats)->Execute("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", {*db_name});
    REQUIRE(r.ok());
    if (r->front().Int(0) == 0) break;
    std::this_thread::yield();
  }
  CHECK(deadlocks() - before == 0);
}

TEST_CASE("kill -9 during a stream of event batches: a full resend leaves every event exactly once") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      ecrm::testing::TempDir dir;
      auto db_args = args;
      if (db_args.empty()) db_args.push_back(absl::StrCat("--database-url=sqlite://", dir.path(), "/kill.db"));
      std::vector<v1::RecordEventsRequest> batches;
      std::string id;
      {
        Client c(db_args);
        id = c.Upsert(WithIds({Id(kEmail, "stream@example.com")})).customer().id();
        for (int b = 0; b < 40; ++b) batches.push_back(Batch(absl::StrCat("k", b, "-"), 250, RefId(id)));
        grpc::ClientContext ctx;
        v1::RecordEventsResponse resp;
        auto writer = c.stub->RecordEvents(&ctx, &resp);
        for (int b = 0; b < 20; ++b) REQUIRE(writer->Write(batches[b]));
        c.service->process().Signal(SIGKILL);  // mid-stream, with batches in flight
        REQUIRE(c.service->process().Wait(absl::Seconds(10)).has_value());
        for (int b = 20; b < 40 && writer->Write(batches[b]); ++b) {
        }
        writer->WritesDone();
        CHECK_FALSE(writer->Finish().ok());  // nothing was acknowledged: the client resends it all
      }
      Client c(db_args);
      grpc::Status s;
      auto resent = SendBatches(c, batches, &s);
      REQUIRE(s.ok());
      CHECK(resent.accepted() + resent.duplicates() == 10000);
      CHECK(resent.duplicates() % 250 == 0);  // whole batches were durable, never half of one
      v1::Customer got;
      REQUIRE(c.Get(RefId(id), &got).ok());
      int64_t total = 0;
      for (const auto& [type, n] : got.behaviour().event_counts()) total += n;
      CHECK(total == 10000);
    }
  }
}

TEST_CASE("a consumer behind the feed's retention gets OUT_OF_RANGE with a way to resync") {
  Client c({"--feed-retention=1ms", "--feed-prune-interval=20ms"});
  for (int i = 0; i < 5; ++i) c.Upsert(WithIds({Id(kEmail, absl::StrCat("old", i, "@x.io"))}));
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  grpc::Status status;
  while (absl::Now() < deadline) {  // until the pruner has run
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    v1::WatchChangesRequest req;
    req.set_after_sequence(0);
    auto reader = c.stub->WatchChanges(&ctx, req);
    v1::WatchChangesResponse message;
    if (!reader->Read(&message)) {
      status = reader->Finish();
      break;
    }
    ctx.TryCancel();
    (void)reader->Finish();
  }
  CHECK(status.error_code() == grpc::StatusCode::OUT_OF_RANGE);
  CHECK_THAT(status.error_message(), Catch::Contains("ListCustomers"));
  // The documented resync: list everything, then watch from as_of_sequence.
  v1::ListCustomersRequest lreq;
  v1::ListCustomersResponse all;
  REQUIRE(c.Call(&v1::InformationStore::Stub::ListCustomers, lreq, &all).ok());
  CHECK(all.customers_size() == 5);
  c.Upsert(WithIds({Id(kEmail, "new@x.io")}));
  auto fresh = Watch(c, all.as_of_sequence(), 1);
  REQUIRE(fresh.size() == 1);
  CHECK(fresh[0].customer().identifiers(0).value() == "new@x.io");
}

TEST_CASE("the feed sends runs of changes per message, filters by kind and reports the position") {
  Client c({});
  std::string id;
  for (int i = 0; i < 5; ++i) id = c.Upsert(WithIds({Id(kEmail, absl::StrCat("run", i, "@x.io"))})).customer().id();
  v1::UpdateConsentRequest consent;
  *consent.mutable_customer() = RefId(id);
  consent.set_channel(common::CHANNEL_SMS);
  consent.set_purpose(common::PURPOSE_MARKETING);
  consent.set_status(v1::CONSENT_STATUS_GRANTED);
  v1::Customer out;
  REQUIRE(c.Call(&v1::InformationStore::Stub::UpdateConsent, consent, &out).ok());

  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  v1::WatchChangesRequest req;
  req.set_max_changes_per_message(2);
  req.set_heartbeat_seconds(1);
  auto reader = c.stub->WatchChanges(&ctx, req);
  std::vector<int> sizes;
  int64_t last = 0;
  v1::WatchChangesResponse message;
  while (reader->Read(&message) && !message.changes().empty()) {
    sizes.push_back(message.changes_size());
    for (const v1::Change& ch : message.changes()) CHECK(ch.sequence() == ++last);
    CHECK(message.position() == last);
  }
  CHECK(sizes == std::vector<int>{2, 2, 2});  // five identity changes and the consent
  ctx.TryCancel();
  (void)reader->Finish();

  // Only consents: the identity changes are skipped, but the position still moves past them.
  grpc::ClientContext ctx2;
  ctx2.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  req.add_kinds(v1::CHANGE_KIND_CONSENT);
  auto consents = c.stub->WatchChanges(&ctx2, req);
  REQUIRE(consents->Read(&message));
  REQUIRE(message.changes_size() == 1);
  CHECK(message.changes(0).kind() == v1::CHANGE_KIND_CONSENT);
  CHECK(message.position() == last);
  REQUIRE(consents->Read(&message));  // the heartbeat carries the position too
  CHECK(message.changes().empty());
  CHECK(message.position() == last);
  ctx2.TryCancel();
  (void)consents->Finish();

  grpc::ClientContext ctx3;
  ctx3.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  v1::WatchChangesRequest bad;
  bad.set_max_changes_per_message(-1);
  auto refused = c.stub->WatchChanges(&ctx3, bad);
  CHECK_FALSE(refused->Read(&message));
  grpc::Status s = refused->Finish();
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(s.error_message(), Catch::Contains("max_changes_per_message"));
}

TEST_CASE("an upsert retried with its request_id replays the first response and a reused id is refused") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      Client c(args);
      auto req = WithIds({Id(kEmail, "retry@x.io")});
      req.mutable_profile()->set_first_name("Ada");
      req.set_request_id("req-1");
      auto first = c.Upsert(req);
      CHECK(first.outcome() == v1::UpsertCustomerResponse::OUTCOME_CREATED);
      // A later write changes the customer; the retry still gets the first response, byte for byte.
      auto later = WithIds({Id(kEmail, "retry@x.io")});
      later.mutable_profile()->set_first_name("Grace");
      c.Upsert(later);
      auto again = c.Upsert(req);
      CHECK(again.SerializeAsString() == first.SerializeAsString());
      v1::Customer now;
      REQUIRE(c.Get(RefId(first.customer().id()), &now).ok());
      CHECK(now.profile().first_name() == "Grace");  // the replay wrote nothing

      auto other = req;
      other.mutable_profile()->set_first_name("Someone else");
      v1::UpsertCustomerResponse resp;
      grpc::Status s = c.Call(&v1::InformationStore::Stub::UpsertCustomer, other, &resp);
      CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);  // as every engine's keys
      CHECK_THAT(s.error_message(), Catch::Contains("request_id"));

      // Concurrent retries of one new request create one customer.
      auto fresh = WithIds({Id(kEmail, "racer@x.io")});
      fresh.set_request_id("req-2");
      std::vector<v1::UpsertCustomerResponse> got(6);
      std::vector<grpc::Status> status(got.size());
      std::vector<std::thread> threads;  // no assertions off the test thread
      for (size_t i = 0; i < got.size(); ++i) {
        threads.emplace_back(
            [&, i] { status[i] = c.Call(&v1::InformationStore::Stub::UpsertCustomer, fresh, &got[i]); });
      }
      for (auto& t : threads) t.join();
      for (size_t i = 0; i < got.size(); ++i) {
        CHECK(status[i].ok());
        CHECK(got[i].customer().id() == got[0].customer().id());
      }
    }
  }
}
