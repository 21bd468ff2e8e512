// ecrm-broadcast end to end: the real binary on SQLite and on PostgreSQL, with a real
// ecrm-infostore and a real Redis: profiles from the shared cache or GetCustomer, the web inbox,
// broadcasts' progress, and the message_* events arriving in the information store.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "broadcast_completed.h"
#include "ecrm/broadcast/v1/broadcast.grpc.pb.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/privacy/v1/privacy.grpc.pb.h"
#include "ecrm/testing/process.h"
#include "ecrm/testing/servers.h"
#include "ecrm/testing/service.h"
#include "test_servers.h"

namespace v1 = ecrm::broadcast::v1;
namespace common = ecrm::common::v1;
namespace info = ecrm::infostore::v1;
using ecrm::testing::ServiceProcess;

using ecrm::testing::Redis;

using ecrm::testing::Eventually;
namespace {

const std::string kBroadcast = absl::StrCat(ECRM_BUILD_DIR, "/services/ecrm-broadcast");
const std::string kInfostore = absl::StrCat(ECRM_BUILD_DIR, "/services/ecrm-infostore");

std::vector<std::pair<std::string, std::vector<std::string>>> Backends() {
  auto pg = ecrm::testing::PostgresServer::Shared();
  REQUIRE(pg.ok());
  auto db = (*pg)->CreateUniqueDatabase();
  REQUIRE(db.ok());
  return {{"sqlite", {}}, {"postgres", {"--database-url=" + (*pg)->url(*db)}}};
}

std::unique_ptr<ServiceProcess> Start(const std::string& binary, std::vector<std::string> args) {
  auto s = ServiceProcess::Start(binary, args);
  if (!s.ok()) FAIL(s.status().ToString());
  return std::move(*s);
}

template <typename Fn>
auto Call(Fn fn) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  return fn(&ctx);
}

struct Suite {
  ecrm::testing::TempDir dir;
  std::unique_ptr<ServiceProcess> infostore;
  std::unique_ptr<ServiceProcess> broadcast;
  std::unique_ptr<info::InformationStore::Stub> hub;
  std::unique_ptr<v1::Broadcast::Stub> stub;

  explicit Suite(std::vector<std::string> args) {
    infostore = Start(kInfostore, {absl::StrCat("--database-url=sqlite://", dir.path(), "/infostore.db"),
                                   "--redis-url=" + Redis().url()});
    hub = info::InformationStore::NewStub(infostore->channel());
    args.push_back("--redis-url=" + Redis().url());
    args.push_back("--infostore-address=" + infostore->grpc_address());
    broadcast = Start(kBroadcast, args);
    stub = v1::Broadcast::NewStub(broadcast->channel());
  }

  std::string NewCustomer(const std::string& email) {
    info::UpsertCustomerRequest req;
    auto* id = req.add_identifiers();
    id->set_type(common::IDENTIFIER_TYPE_EMAIL);
    id->set_value(email);
    info::UpsertCustomerResponse resp;
    grpc::Status s = Call([&](grpc::ClientContext* ctx) { return hub->UpsertCustomer(ctx, req, &resp); });
    REQUIRE(s.ok());
    return resp.customer().id();
  }
  void Consent(const std::string& customer, common::Channel ch, info::ConsentStatus status) {
    info::UpdateConsentRequest req;
    req.mutable_customer()->set_customer_id(customer);
    req.set_channel(ch);
    req.set_purpose(common::PURPOSE_MARKETING);
    req.set_status(status);
    req.set_source(common::TOUCHPOINT_WEB);
    req.set_evidence("test");
    info::Customer resp;
    grpc::Status s = Call([&](grpc::ClientContext* ctx) { return hub->UpdateConsent(ctx, req, &resp); });
    INFO(s.error_message());
    REQUIRE(s.ok());
  }
  int64_t EventCount(const std::string& customer, const std::string& type) {
    info::GetCustomerRequest req;
    req.mutable_customer()->set_customer_id(customer);
    info::Customer c;
    if (!Call([&](grpc::ClientContext* ctx) { return hub->GetCustomer(ctx, req, &c); }).ok()) return -1;
    auto it = c.behaviour().event_counts().find(type);
    return it == c.behaviour().event_counts().end() ? 0 : it->second;
  }
  grpc::Status Send(const std::string& customer, v1::Delivery* out, common::Channel ch = common::CHANNEL_WEB) {
    v1::SendMessageRequest req;
    req.mutable_customer()->set_customer_id(customer);
    req.set_channel(ch);
    req.set_purpose(common::PURPOSE_MARKETING);
    req.mutable_content()->mutable_literal()->set_subject("Welcome back");
    req.mutable_content()->mutable_literal()->set_html_body("<p>10% off</p>");
    req.set_campaign_id("camp-e2e");
    return Call([&](grpc::ClientContext* ctx) { return stub->SendMessage(ctx, req, out); });
  }
  v1::GetInboxResponse Inbox(const std::string& customer) {
    v1::GetInboxRequest req;
    req.set_customer_id(customer);
    v1::GetInboxResponse resp;
    REQUIRE(Call([&](grpc::ClientContext* ctx) { return stub->GetInbox(ctx, req, &resp); }).ok());
    return resp;
  }
};

}  // namespace

TEST_CASE("the web inbox end to end: consent read from the hub, events back to it, broadcasts complete") {
  for (auto& [name, args] : Backends()) {
    DYNAMIC_SECTION(name) {
      Suite s(args);
      const std::string ann = s.NewCustomer("ann@example.com");
      const std::string bob = s.NewCustomer("bob@example.com");
      s.Consent(ann, common::CHANNEL_WEB, info::CONSENT_STATUS_GRANTED);

      v1::Delivery d;
      grpc::Status st = s.Send(ann, &d);
      INFO(st.error_message());
      REQUIRE(st.ok());
      CHECK(d.state() == v1::DELIVERY_STATE_QUEUED);
      CHECK(d.channel() == common::CHANNEL_WEB);
      REQUIRE(Eventually([&] { return s.Inbox(ann).messages_size() == 1; }));
      v1::GetInboxResponse inbox = s.Inbox(ann);
      CHECK(inbox.messages(0).delivery_id() == d.id());
      CHECK(inbox.messages(0).subject() == "Welcome back");
      CHECK(inbox.messages(0).html_body() == "<p>10% off</p>");
      CHECK(inbox.unread_count() == 1);
      CHECK(Eventually(
          [&] { return s.EventCount(ann, "message_sent") == 1 && s.EventCount(ann, "message_delivered") == 1; }));

      // No consent: held back with its reason, not an error. No email channel: a precise error.
      v1::Delivery held;
      REQUIRE(s.Send(bob, &held).ok());
      CHECK(held.state() == v1::DELIVERY_STATE_SUPPRESSED);
      CHECK(held.suppression_reason() == v1::SUPPRESSION_REASON_NO_CONSENT);
      CHECK(s.Send(ann, &held, common::CHANNEL_EMAIL).error_code() == grpc::StatusCode::FAILED_PRECONDITION);
      CHECK(s.Send("c_nobody", &held).error_code() == grpc::StatusCode::NOT_FOUND);

      // A broadcast to both: one delivered, one suppressed, then completed.
      v1::CreateBroadcastRequest create;
      create.set_campaign_id("camp-e2e");
      create.add_customer_ids(ann);
      create.add_customer_ids(bob);
      create.add_channels(common::CHANNEL_WEB);
      create.set_purpose(common::PURPOSE_MARKETING);
      create.mutable_content()->mutable_literal()->set_subject("Flash sale");
      create.set_idempotency_key("e2e-launch");
      v1::BroadcastJob job;
      REQUIRE(Call([&](grpc::ClientContext* ctx) { return s.stub->CreateBroadcast(ctx, create, &job); }).ok());
      REQUIRE(ecrm::testing::BroadcastCompleted(*s.stub, job.id(), job));
      CHECK(job.by_state().at("DELIVERED") == 1);
      CHECK(job.by_state().at("SUPPRESSED") == 1);
      CHECK(job.by_suppression_reason().at("NO_CONSENT") == 1);
      CHECK(s.Inbox(ann).messages_size() == 2);

      // Reading the inbox is the open; the hub sees each event once, with the campaign id.
      v1::MarkInboxReadRequest read;
      read.set_customer_id(ann);
      read.add_delivery_ids(d.id());
      v1::MarkInboxReadResponse marked;
      REQUIRE(Call([&](grpc::ClientContext* ctx) { return s.stub->MarkInboxRead(ctx, read, &marked); }).ok());
      CHECK(marked.marked() == 1);
      CHECK(Eventually(
          [&] { return s.EventCount(ann, "message_opened") == 1 && s.EventCount(ann, "message_delivered") == 2; }));
      info::ListEventsRequest events;
      events.mutable_customer()->set_customer_id(ann);
      events.add_types("message_opened");
      info::ListEventsResponse listed;
      REQUIRE(Call([&](grpc::ClientContext* ctx) { return s.hub->ListEvents(ctx, events, &listed); }).ok());
      REQUIRE(listed.events_size() == 1);
      CHECK(listed.events(0).properties().at("campaign_id").string_value() == "camp-e2e");
      CHECK(listed.events(0).properties().at("delivery_id").string_value() == d.id());
      CHECK(listed.events(0).properties().at("channel").string_value() == "CHANNEL_WEB");

      // Consent withdrawn in the hub: the next message is held back.
      s.Consent(ann, common::CHANNEL_WEB, info::CONSENT_STATUS_WITHDRAWN);
      CHECK(Eventually([&] {
        v1::Delivery after;
        return s.Send(ann, &after).ok() && after.suppression_reason() == v1::SUPPRESSION_REASON_NO_CONSENT;
      }));

      // The engine's CustomerData: an export names the deliveries, an erasure removes them.
      auto privacy = ecrm::privacy::v1::CustomerData::NewStub(s.broadcast->channel());
      ecrm::privacy::v1::EraseCustomerDataRequest erase;
      erase.set_customer_id(ann);
      ecrm::privacy::v1::EraseCustomerDataResponse receipt;
      REQUIRE(Call([&](grpc::ClientContext* ctx) { return privacy->EraseCustomerData(ctx, erase, &receipt); }).ok());
      CHECK(receipt.engine() == "broadcast");
      CHECK(s.Inbox(ann).messages_size() == 0);

      // A stop: the workers stop claiming, the relay stops, the process exits cleanly.
      s.broadcast->process().Signal(SIGTERM);
      INFO(s.broadcast->process().Output());
      CHECK(s.broadcast->process().Wait(absl::Seconds(60)).value_or(-1) == 0);
    }
  }
}
