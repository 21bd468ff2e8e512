// The broadcast engine's domain in-process: a temporary database (SQLite, and PostgreSQL where
// concurrency matters), a fake information store behind the client interface, fake channels
// that accept, fail for now, fail for good or answer Retry-After, and an injected clock.
#include <prometheus/registry.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "broadcasts.h"
#include "deliveries.h"
#include "delivery_rows.h"
#include "dispatcher.h"
#include "ecrm/idempotency/idempotency.h"
#include "ecrm/outbox/outbox.h"
#include "ecrm/testing/process.h"
#include "ecrm/testing/servers.h"
#include "ecrm/util/util.h"
#include "frequency_caps.h"
#include "metrics.h"
#include "privacy.h"
#include "profiles.h"
#include "schema.h"
#include "suppressions.h"

namespace bc = ecrm::broadcast;
namespace v1 = ecrm::broadcast::v1;
namespace common = ecrm::common::v1;
namespace info = ecrm::infostore::v1;

namespace {

class FakeDirectory final : public bc::CustomerDirectory {
 public:
  absl::StatusOr<info::Customer> GetCustomer(const common::CustomerRef& ref, absl::Time) override {
    std::lock_guard lock(mu_);
    auto it = customers_.find(ref.customer_id());
    if (it == customers_.end()) return absl::NotFoundError("no such customer");
    return it->second;
  }
  // A customer with an email address and the marketing consents named.
  void Put(const std::string& id, std::vector<common::Channel> consented) {
    info::Customer c;
    c.set_id(id);
    auto* email = c.add_identifiers();
    email->set_type(common::IDENTIFIER_TYPE_EMAIL);
    email->set_value(id + "@example.com");
    for (common::Channel ch : consented) {
      auto* consent = c.add_consents();
      consent->set_channel(ch);
      consent->set_purpose(common::PURPOSE_MARKETING);
      consent->set_status(info::CONSENT_STATUS_GRANTED);
    }
    std::lock_guard lock(mu_);
    customers_[id] = c;
  }

 private:
  std::mutex mu_;
  std::map<std::string, info::Customer> customers_;
};

// Answers with the scripted outcomes in turn (then accepts), and records what it was given.
class FakeChannel final : public bc::Channel {
 public:
  std::function<void()> during_send;  // runs inside Send, once
  std::vector<bc::SendResult> script;

  std::vector<bc::SendResult> Send(absl::Span<const bc::OutgoingMessage> messages) override {
    std::function<void()> hook;
    std::vector<bc::SendResult> out;
    {
      std::lock_guard lock(mu_);
      for (const bc::OutgoingMessage& m : messages) {
        ++sent_[m.delivery_id];
        messages_.push_back(m);
        if (!script.empty()) {
          out.push_back(script.front());
          script.erase(script.begin());
        } else {
          out.push_back({bc::SendOutcome::kAccepted, "p-" + m.delivery_id, "", std::nullopt});
        }
      }
      hook = std::exchange(during_send, nullptr);
    }
    if (hook) hook();
    return out;
  }
  int Times(const std::string& id) {
    std::lock_guard lock(mu_);
    return sent_[id];
  }
  int Total() {
    std::lock_guard lock(mu_);
    return static_cast<int>(messages_.size());
  }
  std::vector<bc::OutgoingMessage> Messages() {
    std::lock_guard lock(mu_);
    return messages_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, int> sent_;
  std::vector<bc::OutgoingMessage> messages_;
};

// Personalisation: templates whose "{{name}}" is the customer's name, customers it cannot render
// (with the status why), or down altogether; records every call.
class FakeRenderer final : public bc::TemplateRenderer {
 public:
  struct Template {
    std::string subject, text, html;
  };
  std::map<std::string, Template> templates;
  std::map<std::string, std::string> names;
  std::map<std::string, absl::Status> failing;
  absl::Status down;
  std::vector<std::pair<std::string, std::vector<std::string>>> calls;
  std::vector<std::string> placements;              // of each call
  std::vector<std::string> offer_calls;             // the offer of each call
  std::map<std::string, bc::OfferSummary> offers;   // offer id -> its template id (may be empty), …
  std::map<std::string, std::string> not_eligible;  // customers offers are not for, with why

  absl::StatusOr<bc::RenderBatch> BatchRender(const bc::RenderSource& source,
                                              absl::Span<const std::string> customer_ids, absl::Time) override {
    std::lock_guard lock(mu_);
    std::string template_id = source.template_id;
    calls.emplace_back(template_id, std::vector<std::string>(customer_ids.begin(), customer_ids.end()));
    placements.push_back(source.placement);
    offer_calls.push_back(source.offer_id);
    if (!down.ok()) return down;
    if (!source.offer_id.empty()) {
      auto o = offers.find(source.offer_id);
      if (o == offers.end()) {
        return absl::NotFoundError(
            absl::StrCat("content.offer_id: personalisation has no offer \"", source.offer_id, "\""));
      }
      if (template_id.empty()) template_id = o->second.template_id;
    }
    auto t = templates.find(template_id);
    if (t == templates.end()) return absl::NotFoundError("no such template");
    bc::RenderBatch out;
    for (const std::string& id : customer_ids) {
      if (failing.contains(id)) {
        out.by_customer.emplace(id, failing[id]);
        continue;
      }
      if (!source.offer_id.empty() && not_eligible.contains(id)) {
        out.not_eligible.emplace(id, not_eligible[id]);
        continue;
      }
      auto fill = [&](std::string text) {
        for (size_t at; (at = text.find("{{name}}")) != std::string::npos;) text.replace(at, 8, names[id]);
        for (size_t at; (at = text.find("{{offer}}")) != std::string::npos;) text.replace(at, 9, source.offer_id);
        return text;
      };
      out.by_customer.emplace(
          id, bc::RenderedContent{fill(t->second.subject), fill(t->second.text), fill(t->second.html), 3, {}});
    }
    return out;
  }
  absl::StatusOr<bc::OfferSummary> Offer(const std::string& offer_id, absl::Time) override {
    std::lock_guard lock(mu_);
    if (!down.ok()) return down;
    auto o = offers.find(offer_id);
    if (o == offers.end()) {
      return absl::NotFoundError(absl::StrCat("content.offer_id: personalisation has no offer \"", offer_id, "\""));
    }
    return o->second;
  }
  absl::Status CheckTemplate(const std::string& template_id, absl::Time) override {
    std::lock_guard lock(mu_);
    if (!down.ok()) return down;
    if (!templates.contains(template_id)) return absl::NotFoundError("content.template_id: no such template");
    return absl::OkStatus();
  }

 private:
  std::mutex mu_;
};

// Segmentation: segments as lists of members, handed over two at a time.
class FakeSegments final : public bc::SegmentDirectory {
 public:
  std::map<std::string, std::vector<std::string>> segments;
  absl::Status down;
  int reads = 0;

  absl::Status ForEachMember(const std::string& segment_id, absl::Time,
                             const std::function<absl::Status(std::vector<std::string>)>& each) override {
    ++reads;
    if (!down.ok()) return down;
    auto it = segments.find(segment_id);
    if (it == segments.end()) return absl::NotFoundError("segment_id: no such segment");
    for (size_t i = 0; i < it->second.size(); i += 2) {
      std::vector<std::string> batch(it->second.begin() + i, it->second.begin() + std::min(i + 2, it->second.size()));
      if (absl::Status s = each(std::move(batch)); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
};

struct Clock {
  std::mutex mu;
  absl::Time now = absl::FromCivil(absl::CivilSecond(2026, 6, 1, 12, 0, 0), absl::UTCTimeZone());
  absl::Time Get() {
    std::lock_guard lock(mu);
    return now;
  }
  void Advance(absl::Duration d) {
    std::lock_guard lock(mu);
    now += d;
  }
};

// The whole domain over one database.
struct Engine {
  std::unique_ptr<ecrm::sql::Database> db;
  prometheus::Registry registry;
  bc::BroadcastMetrics metrics{registry};
  FakeDirectory directory;
  FakeChannel email;
  FakeRenderer renderer;
  FakeSegments segments;
  Clock clock;
  ecrm::idempotency::Store keys{*db};
  ecrm::outbox::Outbox outbox{*db};
  bc::Profiles profiles{nullptr, &directory};
  bc::FrequencyCaps caps;
  bc::DispatcherOptions options;
  std::unique_ptr<bc::Dispatcher> dispatcher;
  std::unique_ptr<bc::Deliveries> deliveries;
  std::unique_ptr<bc::Broadcasts> broadcasts;

  Engine(std::unique_ptr<ecrm::sql::Database> database, bc::CapConfig caps_config = {}, bc::DispatcherOptions opts = {})
      : db(std::move(database)), caps(std::move(caps_config)), options(std::move(opts)) {
    auto now = [this] { return clock.Get(); };
    dispatcher = std::make_unique<bc::Dispatcher>(*db, outbox, profiles, &renderer, caps,
                                                  bc::Dispatcher::Channels{{common::CHANNEL_EMAIL, &email}}, metrics,
                                                  options, now);
    deliveries = std::make_unique<bc::Deliveries>(
        *db, keys, outbox, profiles, bc::DeliveriesOptions{.available = dispatcher->available()}, nullptr, now);
    broadcasts = std::make_unique<bc::Broadcasts>(*db, keys, dispatcher->available(), nullptr, now);
  }
  // Gives CreateBroadcast a segmentation engine to resolve segment_id.
  void WithSegments() { broadcasts->SetSegments(&segments, absl::Minutes(1)); }
  // Gives CreateBroadcast personalisation to check a template_id with.
  void WithTemplates() { broadcasts->SetTemplates(&renderer, absl::Seconds(5)); }

  v1::SendMessageRequest Request(const std::string& customer, common::Channel ch = common::CHANNEL_EMAIL) {
    v1::SendMessageRequest req;
    req.mutable_customer()->set_customer_id(customer);
    req.set_channel(ch);
    req.set_purpose(common::PURPOSE_MARKETING);
    req.mutable_content()->mutable_literal()->set_subject("Hello");
    req.mutable_content()->mutable_literal()->set_text_body("Body");
    return req;
  }
  v1::Delivery Send(const std::string& customer, common::Channel ch = common::CHANNEL_EMAIL) {
    auto d = deliveries->SendMessage(Request(customer, ch));
    INFO(d.status().ToString());
    REQUIRE(d.ok());
    return *d;
  }
  v1::Delivery Get(const std::string& id) {
    auto r = db->Execute("SELECT customer_id FROM deliveries WHERE id = $1", {id});
    REQUIRE(r.ok());
    REQUIRE(r->size() == 1);
    v1::ListDeliveriesRequest req;
    v1::Delivery out;
    req.set_customer_id(std::string(r->front().Text(0)));
    req.set_page_size(1000);
    auto list = deliveries->ListDeliveries(req);
    REQUIRE(list.ok());
    for (const auto& d : list->deliveries()) {
      if (d.id() == id) out = d;
    }
    return out;
  }
  // Runs claims until nothing is due now; false on an error (safe on any thread).
  bool DrainQuietly() {
    for (int i = 0; i < 1000; ++i) {
      auto n = dispatcher->RunOnce();
      if (!n.ok()) return false;
      if (*n == 0) return true;
    }
    return false;
  }
  // Runs claims until nothing is due now.
  void Drain() {
    for (int i = 0; i < 1000; ++i) {
      auto n = dispatcher->RunOnce();
      REQUIRE(n.ok());
      if (*n == 0) return;
    }
    FAIL("the outbox never drained");
  }
  std::multiset<std::string> EventTypes() {
    auto events = outbox.PendingEvents(10000);
    REQUIRE(events.ok());
    std::multiset<std::string> out;
    for (const auto& e : *events) out.insert(e.event.type());
    return out;
  }
};

// A SQLite database in `dir`, migrated up to `migrations`.
std::unique_ptr<ecrm::sql::Database> Sqlite(const ecrm::testing::TempDir& dir,
                                            absl::Span<const ecrm::sql::Migration> migrations = bc::kMigrations) {
  auto db = ecrm::sql::Database::Open("sqlite://" + dir.path() + "/broadcast.db");
  REQUIRE(db.ok());
  REQUIRE((*db)->Migrate("broadcast", migrations).ok());
  return std::move(*db);
}

// A fresh PostgreSQL database, migrated up to `migrations`.
std::unique_ptr<ecrm::sql::Database> Postgres(absl::Span<const ecrm::sql::Migration> migrations = bc::kMigrations) {
  auto pg = ecrm::testing::PostgresServer::Shared();
  REQUIRE(pg.ok());
  auto name = (*pg)->CreateUniqueDatabase();
  REQUIRE(name.ok());
  auto db = ecrm::sql::Database::Open((*pg)->url(*name));
  REQUIRE(db.ok());
  REQUIRE((*db)->Migrate("broadcast", migrations).ok());
  return std::move(*db);
}

std::unique_ptr<ecrm::sql::Database> Open(const std::string& backend, const ecrm::testing::TempDir& dir,
                                          absl::Span<const ecrm::sql::Migration> migrations = bc::kMigrations) {
  return backend == "sqlite" ? Sqlite(dir, migrations) : Postgres(migrations);
}

// GetBroadcast's counts (kept as the rows change) against the rows counted.
void CheckProgressMatchesRows(Engine& e, const std::string& id) {
  auto job = e.broadcasts->Get(id);
  REQUIRE(job.ok());
  std::map<std::string, int64_t> counted;
  auto rows = e.db->Execute("SELECT state, COUNT(*) FROM deliveries WHERE broadcast_id = $1 GROUP BY state", {id});
  REQUIRE(rows.ok());
  for (ecrm::sql::Row r : *rows) {
    counted[std::string(absl::StripPrefix(v1::DeliveryState_Name(static_cast<v1::DeliveryState>(r.Int(0))),
                                          "DELIVERY_STATE_"))] = r.Int(1);
  }
  CHECK(std::map<std::string, int64_t>(job->by_state().begin(), job->by_state().end()) == counted);
}

}  // namespace

TEST_CASE("a message is a row before it is sent, goes out once, and raises its events") {
  ecrm::testing::TempDir dir;
  Engine e(Sqlite(dir));
  e.directory.Put("ann", {common::CHANNEL_EMAIL, common::CHANNEL_WEB});
  v1::Delivery d = e.Send("ann");
  CHECK(d.state() == v1::DELIVERY_STATE_QUEUED);
  CHECK(d.channel() == common::CHANNEL_EMAIL);
  CHECK(e.email.Total() == 0);
  e.Drain();
  CHECK(e.email.Times(d.id()) == 1);
  v1::Delivery sent = e.Get(d.id());
  CHECK(sent.state() == v1::DELIVERY_STATE_SENT);
  CHECK(sent.attempts() == 1);
  CHECK(sent.provider_message_id() == "p-" + d.id());
  CHECK(sent.address() == "a***@example.com");  // masked in listings
  CHECK(e.EventTypes() == std::multiset<std::string>{"message_sent"});

  // The web inbox: delivered in the outbox's own transaction, read once.
  v1::Delivery web = e.Send("ann", common::CHANNEL_WEB);
  e.Drain();
  CHECK(e.Get(web.id()).state() == v1::DELIVERY_STATE_DELIVERED);
  v1::GetInboxRequest inbox;
  inbox.set_customer_id("ann");
  auto got = e.deliveries->GetInbox(inbox);
  REQUIRE(got.ok());
  REQUIRE(got->messages_size() == 1);
  CHECK(got->messages(0).subject() == "Hello");
  CHECK(got->messages(0).html_body() == "Body");
  CHECK(got->unread_count() == 1);
  v1::MarkInboxReadRequest read;
  read.set_customer_id("ann");
  read.add_delivery_ids(web.id());
  read.add_delivery_ids(web.id());
  CHECK(e.deliveries->MarkInboxRead(read)->marked() == 1);
  CHECK(e.deliveries->MarkInboxRead(read)->marked() == 0);
  CHECK(e.deliveries->GetInbox(inbox)->unread_count() == 0);
  CHECK(e.EventTypes() ==
        std::multiset<std::string>{"message_sent", "message_sent", "message_delivered", "message_opened"});

  // Idempotent by key: the same key replays the first delivery and sends nothing more.
  v1::SendMessageRequest keyed = e.Request("ann");
  keyed.set_idempotency_key("k-1");
  auto first = e.deliveries->SendMessage(keyed);
  auto again = e.deliveries->SendMessage(keyed);
  REQUIRE(first.ok());
  REQUIRE(again.ok());
  CHECK(first->id() == again->id());
  keyed.mutable_content()->mutable_literal()->set_subject("Other");
  CHECK(e.deliveries->SendMessage(keyed).status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("bad requests name the field") {
  ecrm::testing::TempDir dir;
  Engine e(Sqlite(dir));
  e.directory.Put("ann", {common::CHANNEL_EMAIL});
  auto code = [&](v1::SendMessageRequest req) { return e.deliveries->SendMessage(req).status(); };
  v1::SendMessageRequest r = e.Request("nobody");
  CHECK(code(r).code() == absl::StatusCode::kNotFound);
  r = e.Request("ann", common::CHANNEL_SMS);
  CHECK(code(r).code() == absl::StatusCode::kFailedPrecondition);  // no SMS channel here
  r = e.Request("ann");
  r.mutable_content()->clear_literal();
  CHECK(code(r).message().find("content") != std::string::npos);
  r = e.Request("ann");
  r.mutable_content()->mutable_literal()->Clear();
  CHECK(code(r).code() == absl::StatusCode::kInvalidArgument);
  r = e.Request("ann");
  *r.mutable_send_at() = ecrm::util::Ts(absl::ToUnixMicros(e.clock.Get() - absl::Hours(1)));
  CHECK(code(r).message().find("send_at") != std::string::npos);
  r = e.Request("ann");
  r.set_purpose(common::PURPOSE_UNSPECIFIED);
  CHECK(code(r).message().find("purpose") != std::string::npos);
  v1::CreateBroadcastRequest b;
  b.add_customer_ids("ann");
  b.set_purpose(common::PURPOSE_MARKETING);
  b.mutable_content()->mutable_literal()->set_subject("x");
  b.set_rate_limit_per_second(-1);
  CHECK(e.broadcasts->Create(b).status().message().find("rate_limit_per_second") != std::string::npos);
  b.set_rate_limit_per_second(0);
  b.set_segment_id("seg");
  b.clear_customer_ids();
  CHECK(e.broadcasts->Create(b).status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("a consent withdrawn or an unsubscribe after queueing stops the message when it comes up") {
  ecrm::testing::TempDir dir;
  Engine e(Sqlite(dir));
  e.directory.Put("ann", {common::CHANNEL_EMAIL});
  e.directory.Put("bob", {common::CHANNEL_EMAIL});
  v1::Delivery a = e.Send("ann");
  v1::Delivery b = e.Send("bob");
  REQUIRE(a.state() == v1::DELIVERY_STATE_QUEUED);
  e.directory.Put("ann", {});  // consent withdrawn in the information store
  v1::AddSuppressionRequest unsubscribe;
  unsubscribe.mutable_suppression()->set_channel(common::CHANNEL_EMAIL);
  unsubscribe.mutable_suppression()->set_customer_id("bob");
  unsubscribe.mutable_suppression()->set_reason("unsubscribed");
  bc::Suppressions suppressions(*e.db);
  REQUIRE(suppressions.Add(unsubscribe).ok());
  e.Drain();
  CHECK(e.email.Total() == 0);
  CHECK(e.Get(a.id()).suppression_reason() == v1::SUPPRESSION_REASON_NO_CONSENT);
  CHECK(e.Get(b.id()).suppression_reason() == v1::SUPPRESSION_REASON_SUPPRESSION_LIST);
  // A service message still reaches bob; the suppression list is listed and removable.
  v1::SendMessageRequest service = e.Request("bob");
  service.set_purpose(common::PURPOSE_SERVICE);
  REQUIRE(e.deliveries->SendMessage(service).ok());
  e.Drain();
  CHECK(e.email.Total() == 1);
  v1::ListSuppressionsRequest list;
  CHECK(suppressions.List(list)->suppressions_size() == 1);
  v1::RemoveSuppressionRequest remove;
  remove.set_channel(common::CHANNEL_EMAIL);
  remove.set_customer_id("bob");
  CHECK(suppressions.Remove(remove).ok());
  CHECK(suppressions.Remove(remove).code() == absl::StatusCode::kNotFound);
}

TEST_CASE("temporary failures back off (or wait the Retry-After), permanent ones fail at once") {
  ecrm::testing::TempDir dir;
  bc::DispatcherOptions opts;
  opts.backoff_base = absl::Seconds(10);
  opts.max_attempts = 3;
  Engine e(Sqlite(dir), {}, opts);
  e.directory.Put("ann", {common::CHANNEL_EMAIL});
  e.email.script = {{bc::SendOutcome::kTemporaryFailure, "", "450 mailbox busy", std::nullopt}};
  v1::Delivery retried = e.Send("ann");
  e.Drain();
  e.email.script = {{bc::SendOutcome::kTemporaryFailure, "", "429", absl::Seconds(90)}};
  v1::Delivery throttled = e.Send("ann");
  e.Drain();
  e.email.script = {{bc::SendOutcome::kPermanentFailure, "", "550 no such user", std::nullopt}};
  v1::Delivery refused = e.Send("ann");
  e.Drain();
  const absl::Time t0 = e.clock.Get();
  v1::Delivery r = e.Get(retried.id());
  CHECK(r.state() == v1::DELIVERY_STATE_QUEUED);
  CHECK(r.last_error() == "450 mailbox busy");
  const absl::Time next = absl::FromUnixMicros(ecrm::util::Micros(r.next_attempt_at()));
  CHECK(next >= t0 + absl::Seconds(5));  // half the base, plus jitter up to the other half
  CHECK(next <= t0 + absl::Seconds(10));
  v1::Delivery t = e.Get(throttled.id());
  CHECK(absl::FromUnixMicros(ecrm::util::Micros(t.next_attempt_at())) == t0 + absl::Seconds(90));
  v1::Delivery p = e.Get(refused.id());
  CHECK(p.state() == v1::DELIVERY_STATE_FAILED);
  CHECK(p.attempts() == 1);
  CHECK(p.last_error() == "550 no such user");
  CHECK(e.EventTypes() == std::multiset<std::string>{"message_failed"});

  // Not due yet: nothing is claimed. Once due, the retry goes out.
  CHECK(e.dispatcher->RunOnce().value() == 0);
  e.clock.Advance(absl::Seconds(11));
  e.Drain();
  CHECK(e.Get(retried.id()).state() == v1::DELIVERY_STATE_SENT);
  CHECK(e.Get(retried.id()).attempts() == 2);
  CHECK(e.Get(throttled.id()).state() == v1::DELIVERY_STATE_QUEUED);
  e.clock.Advance(absl::Seconds(80));
  e.Drain();
  CHECK(e.Get(throttled.id()).state() == v1::DELIVERY_STATE_SENT);

  // The last attempt's temporary failure is final.
  v1::Delivery doomed = e.Send("ann");
  for (int i = 0; i < 3; ++i) {
    e.email.script = {{bc::SendOutcome::kTemporaryFailure, "", "421 try later", std::nullopt}};
    e.Drain();
    e.clock.Advance(absl::Hours(2));
  }
  v1::Delivery f = e.Get(doomed.id());
  CHECK(f.state() == v1::DELIVERY_STATE_FAILED);
  CHECK(f.attempts() == 3);
  CHECK(e.email.Times(doomed.id()) == 3);
}

TEST_CASE("a lease that expires while a channel sends is claimed again: nothing lost, the duplicate counted") {
  ecrm::testing::TempDir dir;
  bc::DispatcherOptions opts;
  opts.lease = absl::Seconds(30);
  Engine e(Sqlite(dir), {}, opts);
  for (int i = 0; i < 5; ++i) e.directory.Put(absl::StrCat("c", i), {common::CHANNEL_EMAIL});
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(e.Send(absl::StrCat("c", i)).id());
  // The first worker stalls in the channel past its lease (as a crashed one would): another
  // claims the same rows, sends and records them; the first one's late outcome is ignored.
  bc::Dispatcher other(*e.db, e.outbox, e.profiles, &e.renderer, e.caps, {{common::CHANNEL_EMAIL, &e.email}}, e.metrics,
                       opts, [&] { return e.clock.Get(); });
  e.email.during_send = [&] {
    e.clock.Advance(absl::Seconds(31));
    auto n = other.RunOnce();
    REQUIRE(n.ok());
    CHECK(*n == 5);
  };
  REQUIRE(e.dispatcher->RunOnce().value() == 5);
  for (const std::string& id : ids) {
    CHECK(e.Get(id).state() == v1::DELIVERY_STATE_SENT);
    CHECK(e.email.Times(id) == 2);
  }
  CHECK(e.metrics.duplicates.Value() == 5);
  CHECK(e.EventTypes().count("message_sent") == 5);  // one event each: the id dedupes
  CHECK(e.dispatcher->RunOnce().value() == 0);
}

TEST_CASE("broadcasts: progress by state and reason, pause, resume without re-sending, cancel, completion") {
  for (const std::string backend : {"sqlite", "postgres"}) {
    DYNAMIC_SECTION(backend) {
      ecrm::testing::TempDir dir;
      bc::DispatcherOptions opts;
      opts.batch = 4;
      Engine e(Open(backend, dir), {}, opts);
      v1::CreateBroadcastRequest req;
      req.set_campaign_id("camp-1");
      for (int i = 0; i < 12; ++i) {
        const std::string id = absl::StrCat("m", i);
        e.directory.Put(id,
                        i < 10 ? std::vector<common::Channel>{common::CHANNEL_EMAIL} : std::vector<common::Channel>{});
        req.add_customer_ids(id);
      }
      req.add_customer_ids("m0");  // listed twice: messaged once
      req.add_channels(common::CHANNEL_EMAIL);
      req.set_purpose(common::PURPOSE_MARKETING);
      req.mutable_content()->mutable_literal()->set_subject("Sale");
      req.set_idempotency_key("launch-1");
      auto job = e.broadcasts->Create(req);
      REQUIRE(job.ok());
      CHECK(job->audience_size() == 12);
      CHECK(job->by_state().at("QUEUED") == 12);
      CHECK(e.broadcasts->Create(req)->id() == job->id());  // the key replays

      REQUIRE(e.dispatcher->RunOnce().value() == 4);
      CheckProgressMatchesRows(e, job->id());
      REQUIRE(e.broadcasts->Pause(job->id()).ok());
      CHECK(e.dispatcher->RunOnce().value() == 0);  // nothing of a paused broadcast is claimed
      CHECK(e.broadcasts->Pause(job->id())->state() == v1::BROADCAST_STATE_PAUSED);
      CHECK(e.broadcasts->Resume(job->id())->state() == v1::BROADCAST_STATE_RUNNING);
      e.Drain();
      auto done = e.broadcasts->Get(job->id());
      REQUIRE(done.ok());
      CHECK(done->state() == v1::BROADCAST_STATE_COMPLETED);
      CHECK(done->has_completed_at());
      CHECK(done->by_state().at("SENT") == 10);
      CHECK(done->by_state().at("SUPPRESSED") == 2);
      CHECK(done->by_suppression_reason().at("NO_CONSENT") == 2);
      CheckProgressMatchesRows(e, job->id());
      for (int i = 0; i < 10; ++i) {
        CHECK(e.email.Times(bc::Broadcasts::DeliveryId(job->id(), absl::StrCat("m", i))) == 1);
      }
      CHECK(e.broadcasts->Resume(job->id()).status().code() == absl::StatusCode::kFailedPrecondition);

      // Cancel: what was not sent is cancelled, nothing more goes out.
      req.set_idempotency_key("launch-2");
      auto second = e.broadcasts->Create(req);
      REQUIRE(second.ok());
      REQUIRE(e.dispatcher->RunOnce().value() == 4);
      auto cancelled = e.broadcasts->Cancel(second->id());
      REQUIRE(cancelled.ok());
      CHECK(cancelled->state() == v1::BROADCAST_STATE_CANCELLED);
      CHECK(cancelled->by_state().at("CANCELLED") == 8);
      const int sent = e.email.Total();
      e.Drain();
      CHECK(e.email.Total() == sent);
      CheckProgressMatchesRows(e, second->id());
      // A delivery event moves its row's count; an erased customer's rows leave the counts.
      v1::RecordDeliveryEventRequest delivered;
      delivered.set_delivery_id(bc::Broadcasts::DeliveryId(job->id(), "m1"));
      delivered.set_type(v1::DELIVERY_EVENT_TYPE_DELIVERED);
      REQUIRE(e.deliveries->RecordDeliveryEvent(delivered).ok());
      CHECK(e.broadcasts->Get(job->id())->by_state().at("DELIVERED") == 1);
      CheckProgressMatchesRows(e, job->id());
      ecrm::privacy::v1::EraseCustomerDataRequest erase;
      erase.set_customer_id("m2");
      REQUIRE(bc::CustomerData(*e.db).EraseCustomerData(erase).ok());
      CHECK(e.broadcasts->Get(job->id())->by_state().at("SENT") == 8);
      CheckProgressMatchesRows(e, job->id());
      CheckProgressMatchesRows(e, second->id());
      v1::ListBroadcastsRequest list;
      list.set_campaign_id("camp-1");
      list.set_page_size(1);
      auto page = e.broadcasts->List(list);
      REQUIRE(page.ok());
      REQUIRE(page->broadcasts_size() == 1);
      list.set_page_token(page->next_page_token());
      auto next = e.broadcasts->List(list);
      REQUIRE(next.ok());
      REQUIRE(next->broadcasts_size() == 1);
      CHECK(next->broadcasts(0).id() != page->broadcasts(0).id());
      CHECK(next->next_page_token().empty());
    }
  }
}

// Migration 4 rebuilds the deliveries table (keyed in insertion order, progress counted apart):
// the rows already there come through, keyed in the order they were created, their broadcasts'
// progress counted, and the engine carries on with them.
TEST_CASE("migrating deliveries to keys in insertion order keeps every row and counts progress") {
  for (const std::string backend : {"sqlite", "postgres"}) {
    DYNAMIC_SECTION(backend) {
      ecrm::testing::TempDir dir;
      std::unique_ptr<ecrm::sql::Database> db = Open(backend, dir, absl::MakeConstSpan(bc::kMigrations).subspan(0, 3));
      const int64_t t0 =
          absl::ToUnixMicros(absl::FromCivil(absl::CivilSecond(2026, 6, 1, 11, 0, 0), absl::UTCTimeZone()));
      ecrm::broadcast::internal::BroadcastRecord record;
      record.mutable_message()->add_channels(common::CHANNEL_EMAIL);
      record.mutable_message()->mutable_content()->mutable_literal()->set_subject("Old");
      record.set_purpose(common::PURPOSE_MARKETING);
      REQUIRE(
          db->Execute("INSERT INTO broadcasts (id, campaign_id, state, loaded, audience_size, created_at, "
                      "completed_at, body) VALUES ('b_old', 'camp', $1, 1, 3, $2, 0, $3)",
                      {static_cast<int>(v1::BROADCAST_STATE_RUNNING), t0, ecrm::sql::Blob{record.SerializeAsString()}})
              .ok());
      // Inserted out of creation order: the rebuilt table keys them by created_at.
      struct Old {
        std::string id, customer, broadcast;
        v1::DeliveryState state;
        v1::SuppressionReason reason;
        int64_t created;
      };
      const std::vector<Old> old = {
          {"d_3", "cu", "b_old", v1::DELIVERY_STATE_QUEUED, v1::SUPPRESSION_REASON_UNSPECIFIED, t0 + 3},
          {"d_1", "ca", "b_old", v1::DELIVERY_STATE_SENT, v1::SUPPRESSION_REASON_UNSPECIFIED, t0 + 1},
          {"d_2", "cs", "b_old", v1::DELIVERY_STATE_SUPPRESSED, v1::SUPPRESSION_REASON_NO_CONSENT, t0 + 2},
          {"d_0", "single", "", v1::DELIVERY_STATE_SENT, v1::SUPPRESSION_REASON_UNSPECIFIED, t0},
      };
      for (const Old& o : old) {
        bc::DeliveryRow row;
        row.delivery.set_id(o.id);
        row.delivery.set_customer_id(o.customer);
        row.delivery.set_broadcast_id(o.broadcast);
        row.delivery.set_purpose(common::PURPOSE_MARKETING);
        row.delivery.set_state(o.state);
        row.delivery.set_suppression_reason(o.reason);
        *row.delivery.mutable_created_at() = ecrm::util::Ts(o.created);
        auto c = db->Acquire();
        REQUIRE(c.ok());
        REQUIRE(bc::InsertDelivery(**c, row, o.created).ok());
      }
      REQUIRE(db->Migrate("broadcast", bc::kMigrations).ok());
      auto keyed = db->Execute("SELECT id FROM deliveries ORDER BY seq");
      REQUIRE(keyed.ok());
      std::vector<std::string> order;
      for (ecrm::sql::Row r : *keyed) order.emplace_back(r.Text(0));
      CHECK(order == std::vector<std::string>{"d_0", "d_1", "d_2", "d_3"});

      Engine e(std::move(db));
      e.directory.Put("cu", {common::CHANNEL_EMAIL});
      auto job = e.broadcasts->Get("b_old");
      REQUIRE(job.ok());
      CHECK(job->by_state().at("QUEUED") == 1);
      CHECK(job->by_state().at("SENT") == 1);
      CHECK(job->by_suppression_reason().at("NO_CONSENT") == 1);
      e.Drain();
      CHECK(e.email.Times("d_3") == 1);
      job = e.broadcasts->Get("b_old");
      REQUIRE(job.ok());
      CHECK(job->state() == v1::BROADCAST_STATE_COMPLETED);
      CHECK(job->by_state().at("SENT") == 2);
      CheckProgressMatchesRows(e, "b_old");
      // A new row takes the next key, and a lookup by id still finds the old ones.
      const v1::Delivery fresh = e.Send("cu");
      auto last = e.db->Execute("SELECT id FROM deliveries ORDER BY seq DESC LIMIT 1");
      REQUIRE(last.ok());
      CHECK(last->front().Text(0) == fresh.id());
      CHECK(e.Get("d_1").state() == v1::DELIVERY_STATE_SENT);
    }
  }
}

// Migration 5 keeps event ids unique except message_sent's (raised once, as its row becomes
// SENT): the pending events come through in order, an event that can be raised again (an open)
// is still kept once, and the engine raises its events into the rebuilt table.
TEST_CASE("migrating the outbox keeps its events, and event ids unique except message_sent's") {
  for (const std::string backend : {"sqlite", "postgres"}) {
    DYNAMIC_SECTION(backend) {
      ecrm::testing::TempDir dir;
      std::unique_ptr<ecrm::sql::Database> db = Open(backend, dir, absl::MakeConstSpan(bc::kMigrations).subspan(0, 4));
      auto event = [](const std::string& id, const std::string& customer) {
        ecrm::infostore::v1::Event e;
        e.set_event_id(id);
        e.set_type(id.substr(0, id.find(':')));
        e.mutable_customer()->set_customer_id(customer);
        return e;
      };
      {
        ecrm::outbox::Outbox old{*db};
        auto c = db->Acquire();
        REQUIRE(c.ok());
        REQUIRE(old.AddMany(**c, {event("message_sent:d_1", "ann"), event("message_opened:d_1", "ann")}).ok());
      }
      REQUIRE(db->Migrate("broadcast", bc::kMigrations).ok());
      Engine e(std::move(db));
      auto pending = e.outbox.PendingEvents(100);
      REQUIRE(pending.ok());
      REQUIRE(pending->size() == 2);
      CHECK((*pending)[0].event.event_id() == "message_sent:d_1");
      CHECK((*pending)[1].event.event_id() == "message_opened:d_1");
      {
        auto c = e.db->Acquire();
        REQUIRE(c.ok());
        REQUIRE(e.outbox
                    .AddMany(**c, {event("message_opened:d_1", "ann"), event("message_clicked:d_1", "ann"),
                                   event("message_clicked:d_1", "ann")})
                    .ok());
        REQUIRE(e.outbox.Add(**c, event("message_opened:d_1", "ann")).ok());
      }
      CHECK(e.EventTypes() == std::multiset<std::string>{"message_sent", "message_opened", "message_clicked"});
      e.directory.Put("bob", {common::CHANNEL_EMAIL});
      const v1::Delivery d = e.Send("bob");
      e.Drain();
      CHECK(e.email.Times(d.id()) == 1);
      CHECK(e.EventTypes() ==
            std::multiset<std::string>{"message_sent", "message_sent", "message_opened", "message_clicked"});
      // Erasure still finds a customer's pending events through outbox_customer.
      auto left = e.db->Execute("SELECT COUNT(*) FROM outbox WHERE customer_id = 'ann'");
      REQUIRE(left.ok());
      CHECK(left->front().Int(0) == 3);
    }
  }
}

TEST_CASE("frequency caps are exact with concurrent workers, and transactional messages are exempt") {
  for (const char* backend : {"sqlite", "postgres"}) {
    DYNAMIC_SECTION(backend) {
      ecrm::testing::TempDir dir;
      bc::CapConfig caps;
      caps.rules = *bc::ParseCapRules("email=2/24h,global=3/7d,category:news=1/7d");
      bc::DispatcherOptions opts;
      opts.batch = 1;  // the workers compete row by row
      Engine e(std::string(backend) == "sqlite" ? Sqlite(dir) : Postgres(), caps, opts);
      e.directory.Put("ann", {common::CHANNEL_EMAIL, common::CHANNEL_WEB});
      // 8 broadcasts to overlapping audiences, all drained by 4 workers at once.
      for (int b = 0; b < 8; ++b) {
        v1::CreateBroadcastRequest req;
        req.add_customer_ids("ann");
        req.add_channels(common::CHANNEL_EMAIL);
        req.set_purpose(common::PURPOSE_MARKETING);
        req.mutable_content()->mutable_literal()->set_subject(absl::StrCat("b", b));
        REQUIRE(e.broadcasts->Create(req).ok());
      }
      std::atomic<int> failed{0};
      std::vector<std::thread> workers;
      for (int w = 0; w < 4; ++w) workers.emplace_back([&] { failed += !e.DrainQuietly(); });
      for (std::thread& t : workers) t.join();
      REQUIRE(failed == 0);
      CHECK(e.email.Total() == 2);  // the email cap
      auto suppressed = e.db->Execute("SELECT COUNT(*) FROM deliveries WHERE suppression_reason = $1",
                                      {static_cast<int>(v1::SUPPRESSION_REASON_FREQUENCY_CAP)});
      CHECK(suppressed->front().Int(0) == 6);
      // The global cap: one more on the web inbox, then nothing.
      v1::Delivery w1 = e.Send("ann", common::CHANNEL_WEB);
      v1::Delivery w2 = e.Send("ann", common::CHANNEL_WEB);
      e.Drain();
      CHECK(e.Get(w1.id()).suppression_reason() + e.Get(w2.id()).suppression_reason() ==
            v1::SUPPRESSION_REASON_FREQUENCY_CAP);
      // Transactional: neither capped nor counted.
      v1::SendMessageRequest receipt = e.Request("ann");
      receipt.set_purpose(common::PURPOSE_TRANSACTIONAL);
      REQUIRE(e.deliveries->SendMessage(receipt).ok());
      e.Drain();
      CHECK(e.email.Total() == 3);
      // A week later the windows have rolled on; a category cap still holds per category.
      e.clock.Advance(absl::Hours(24 * 7 + 1));
      v1::SendMessageRequest news = e.Request("ann");
      news.set_category("news");
      auto n1 = e.deliveries->SendMessage(news);
      auto n2 = e.deliveries->SendMessage(news);
      e.Drain();
      // Whichever comes up first goes; the other is held back.
      const std::multiset<int> outcomes = {e.Get(n1->id()).state(), e.Get(n2->id()).state()};
      CHECK(outcomes == std::multiset<int>{v1::DELIVERY_STATE_SENT, v1::DELIVERY_STATE_SUPPRESSED});
      CHECK(e.Get(n1->id()).suppression_reason() + e.Get(n2->id()).suppression_reason() ==
            v1::SUPPRESSION_REASON_FREQUENCY_CAP);
    }
  }
}

TEST_CASE("delivery events: opens, clicks, hard bounces suppress the address, unsubscribes the customer") {
  ecrm::testing::TempDir dir;
  Engine e(Sqlite(dir));
  e.directory.Put("ann", {common::CHANNEL_EMAIL});
  v1::Delivery d = e.Send("ann");
  v1::RecordDeliveryEventRequest early;
  early.set_delivery_id(d.id());
  early.set_type(v1::DELIVERY_EVENT_TYPE_OPENED);
  CHECK(e.deliveries->RecordDeliveryEvent(early).status().code() == absl::StatusCode::kFailedPrecondition);
  e.Drain();
  v1::RecordDeliveryEventRequest ev;
  ev.set_provider_message_id("p-" + d.id());
  ev.set_type(v1::DELIVERY_EVENT_TYPE_DELIVERED);
  CHECK(e.deliveries->RecordDeliveryEvent(ev)->state() == v1::DELIVERY_STATE_DELIVERED);
  ev.set_type(v1::DELIVERY_EVENT_TYPE_CLICKED);
  ev.set_detail("https://example.com/sale");
  auto clicked = e.deliveries->RecordDeliveryEvent(ev);
  REQUIRE(clicked.ok());
  CHECK(clicked->has_clicked_at());
  CHECK(clicked->has_opened_at());
  REQUIRE(e.deliveries->RecordDeliveryEvent(ev).ok());  // a second click: the same event id
  ev.set_type(v1::DELIVERY_EVENT_TYPE_UNSUBSCRIBED);
  REQUIRE(e.deliveries->RecordDeliveryEvent(ev).ok());
  // The click, with no open before it, raised the open it implies (once: the second click did not).
  CHECK(e.EventTypes() == std::multiset<std::string>{"message_sent", "message_delivered", "message_opened",
                                                     "message_clicked", "message_unsubscribed"});
  v1::Delivery after = e.Send("ann");
  CHECK(after.state() == v1::DELIVERY_STATE_SUPPRESSED);
  CHECK(after.suppression_reason() == v1::SUPPRESSION_REASON_SUPPRESSION_LIST);

  // A hard bounce fails the delivery and suppresses the address for every purpose.
  e.directory.Put("bob", {common::CHANNEL_EMAIL});
  v1::Delivery b = e.Send("bob");
  e.Drain();
  v1::RecordDeliveryEventRequest bounce;
  bounce.set_delivery_id(b.id());
  bounce.set_type(v1::DELIVERY_EVENT_TYPE_HARD_BOUNCE);
  bounce.set_detail("5.1.1 user unknown");
  CHECK(e.deliveries->RecordDeliveryEvent(bounce)->state() == v1::DELIVERY_STATE_FAILED);
  v1::SendMessageRequest service = e.Request("bob");
  service.set_purpose(common::PURPOSE_SERVICE);
  CHECK(e.deliveries->SendMessage(service)->suppression_reason() == v1::SUPPRESSION_REASON_SUPPRESSION_LIST);
}

TEST_CASE("privacy: export, then erasure keeps only a hashed suppression of the address") {
  ecrm::testing::TempDir dir;
  Engine e(Sqlite(dir));
  e.directory.Put("ann", {common::CHANNEL_EMAIL, common::CHANNEL_WEB});
  e.Send("ann");
  e.Send("ann", common::CHANNEL_WEB);
  e.Drain();
  bc::CustomerData data(*e.db);
  ecrm::privacy::v1::ExportCustomerDataRequest exp;
  exp.set_customer_id("ann");
  auto doc = data.ExportCustomerData(exp);
  REQUIRE(doc.ok());
  CHECK(doc->find("ann@example.com") != std::string::npos);
  CHECK(doc->find("\"inbox\":[{") != std::string::npos);
  ecrm::privacy::v1::EraseCustomerDataRequest erase;
  erase.set_customer_id("ann");
  auto receipt = data.EraseCustomerData(erase);
  REQUIRE(receipt.ok());
  CHECK(data.ExportCustomerData(exp).value() == "{}");
  auto rows = e.db->Execute("SELECT address, reason FROM suppressions");
  REQUIRE(rows->size() == 1);
  CHECK(rows->front().Text(0) == bc::HashedAddress("ann@example.com"));
  CHECK(e.EventTypes().empty());  // undelivered events about her are gone
  // The address comes back under a new customer: not messaged.
  e.directory.Put("ann", {common::CHANNEL_EMAIL});
  CHECK(e.Send("ann").suppression_reason() == v1::SUPPRESSION_REASON_SUPPRESSION_LIST);
}

TEST_CASE("a template's placement goes to personalisation with it, one call per template and placement") {
  ecrm::testing::TempDir dir;
  Engine e(Sqlite(dir));
  e.renderer.templates["welcome"] = {"Hi {{name}}", "Hello {{name}}", ""};
  for (const std::string id : {"ann", "bob", "cid"}) e.directory.Put(id, {common::CHANNEL_EMAIL});
  auto templated = [&](const std::string& customer, const std::string& placement) {
    v1::SendMessageRequest req = e.Request(customer);
    req.mutable_content()->set_template_id("welcome");
    req.mutable_content()->set_placement(placement);
    auto d = e.deliveries->SendMessage(req);
    REQUIRE(d.ok());
  };
  templated("ann", "campaign_email");
  templated("bob", "campaign_email");
  templated("cid", "");
  e.Drain();
  REQUIRE(e.renderer.calls.size() == 2);
  std::map<std::string, std::vector<std::string>> by_placement;
  for (size_t i = 0; i < e.renderer.calls.size(); ++i)
    by_placement[e.renderer.placements[i]] = e.renderer.calls[i].second;
  CHECK(by_placement["campaign_email"] == std::vector<std::string>{"ann", "bob"});
  CHECK(by_placement[""] == std::vector<std::string>{"cid"});
  CHECK(e.email.Messages().size() == 3);

  // A placement decides a template's offers: literal content with one is refused, naming it.
  v1::SendMessageRequest literal = e.Request("ann");
  literal.mutable_content()->set_placement("campaign_email");
  auto refused = e.deliveries->SendMessage(literal);
  CHECK(refused.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(refused.status().message(), "content.placement"));
}

TEST_CASE("template content is rendered through personalisation, its placeholders filled per delivery") {
  ecrm::testing::TempDir dir;
  bc::DispatcherOptions opts;
  auto links = bc::TrackingLinks::Create("https://t.example.com", "a secret of sixteen bytes or more");
  REQUIRE(links.ok());
  opts.links = &*links;
  opts.preferences_url_base = "https://t.example.com/p";
  Engine e(Sqlite(dir), {}, opts);
  e.renderer.templates["welcome"] = {"Hi {{name}}", "Hello {{name}}. Unsubscribe: {{unsubscribe_url}}",
                                     "<p>Hello {{name}}</p><a href=\"{{ unsubscribe_url }}\">out</a>"
                                     "<a href=\"{{preferences_url}}\">prefs</a>{{view_in_browser_url}}{{other}}"};
  for (const std::string id : {"ann", "bob", "cid", "dan"}) {
    e.directory.Put(id, {common::CHANNEL_EMAIL, common::CHANNEL_WEB});
    e.renderer.names[id] = id == "ann" ? "Ann" : id == "bob" ? "Bob" : "Cid";
  }
  e.directory.Put("eve", {});  // no consent: held back by the gate, never rendered
  auto templated = [&](const std::string& customer, const std::string& template_id,
                       common::Channel ch = common::CHANNEL_EMAIL) {
    v1::SendMessageRequest req = e.Request(customer, ch);
    req.mutable_content()->set_template_id(template_id);
    auto d = e.deliveries->SendMessage(req);
    REQUIRE(d.ok());
    return *d;
  };
  v1::Delivery ann = templated("ann", "welcome");
  v1::Delivery bob = templated("bob", "welcome");
  v1::Delivery web = templated("ann", "welcome", common::CHANNEL_WEB);
  v1::Delivery unknown = templated("cid", "nope");
  e.renderer.failing["dan"] = absl::FailedPreconditionError("missing variable profile.first_name");
  v1::Delivery dan = templated("dan", "welcome");
  v1::Delivery eve = templated("eve", "welcome");
  // Literal content carries the placeholders too.
  v1::SendMessageRequest literal = e.Request("bob");
  literal.mutable_content()->mutable_literal()->set_text_body("Bye: {{unsubscribe_url}}");
  v1::Delivery lit = *e.deliveries->SendMessage(literal);
  e.Drain();

  // One call per template for every customer the gate lets through (ann once for two rows).
  REQUIRE(e.renderer.calls.size() == 2);
  std::map<std::string, std::vector<std::string>> calls(e.renderer.calls.begin(), e.renderer.calls.end());
  CHECK(calls["welcome"] == std::vector<std::string>{"ann", "bob", "dan"});
  CHECK(calls["nope"] == std::vector<std::string>{"cid"});

  std::map<std::string, bc::OutgoingMessage> sent;
  for (const bc::OutgoingMessage& m : e.email.Messages()) sent[m.delivery_id] = m;
  REQUIRE(sent.size() == 3);
  const bc::OutgoingMessage& m = sent.at(ann.id());
  CHECK(m.subject == "Hi Ann");
  const std::string unsubscribe = links->UnsubscribeUrl(ann.id());
  CHECK(m.text_body == "Hello Ann. Unsubscribe: " + unsubscribe);
  // (then the open pixel: the engine's own links are not wrapped as clicks)
  CHECK(m.html_body.find("<p>Hello Ann</p><a href=\"" + absl::StrReplaceAll(unsubscribe, {{"&", "&amp;"}}) +
                         "\">out</a><a href=\"https://t.example.com/p?d=" + ann.id() + "\">prefs</a>{{other}}") == 0);
  CHECK(m.unsubscribe_url == unsubscribe);
  CHECK(sent.at(bob.id()).subject == "Hi Bob");
  CHECK(sent.at(lit.id()).text_body == "Bye: " + links->UnsubscribeUrl(lit.id()));
  CHECK(e.Get(ann.id()).subject() == "Hi Ann");  // the delivery records the rendered subject
  CHECK(e.Get(ann.id()).state() == v1::DELIVERY_STATE_SENT);

  // The web inbox shows the rendered HTML.
  v1::GetInboxRequest inbox;
  inbox.set_customer_id("ann");
  auto got = e.deliveries->GetInbox(inbox);
  REQUIRE(got.ok());
  REQUIRE(got->messages_size() == 1);
  CHECK(got->messages(0).delivery_id() == web.id());
  CHECK(got->messages(0).subject() == "Hi Ann");
  CHECK(got->messages(0).html_body().find("<p>Hello Ann</p><a href=\"https://t.example.com/u?d=" + web.id()) == 0);

  // An unknown template, a customer personalisation cannot render: failed, saying why.
  v1::Delivery u = e.Get(unknown.id());
  CHECK(u.state() == v1::DELIVERY_STATE_FAILED);
  CHECK(u.last_error().find("content.template_id") != std::string::npos);
  CHECK(u.last_error().find("\"nope\"") != std::string::npos);
  v1::Delivery f = e.Get(dan.id());
  CHECK(f.state() == v1::DELIVERY_STATE_FAILED);
  CHECK(f.last_error().find("missing variable profile.first_name") != std::string::npos);
  CHECK(e.Get(eve.id()).suppression_reason() == v1::SUPPRESSION_REASON_NO_CONSENT);
  CHECK(e.EventTypes().count("message_failed") == 2);
}

TEST_CASE("personalisation unavailable leaves template deliveries queued for a later attempt") {
  ecrm::testing::TempDir dir;
  Engine e(Sqlite(dir));
  e.renderer.templates["welcome"] = {"Hi {{name}}", "Hello {{name}}", ""};
  e.renderer.names["ann"] = "Ann";
  e.renderer.names["bob"] = "Bob";
  e.directory.Put("ann", {common::CHANNEL_EMAIL});
  e.directory.Put("bob", {common::CHANNEL_EMAIL});
  auto templated = [&](const std::string& customer) {
    v1::SendMessageRequest req = e.Request(customer);
    req.mutable_content()->set_template_id("welcome");
    return *e.deliveries->SendMessage(req);
  };
  v1::Delivery ann = templated("ann");
  v1::Delivery bob = templated("bob");
  e.renderer.down = absl::UnavailableError("personalisation: connection refused");
  e.renderer.failing["bob"] = absl::UnavailableError("personalisation: information store: down");
  e.Drain();
  CHECK(e.email.Total() == 0);
  for (const v1::Delivery& d : {ann, bob}) {
    v1::Delivery q = e.Get(d.id());
    CHECK(q.state() == v1::DELIVERY_STATE_QUEUED);
    CHECK(q.attempts() == 0);
    CHECK(q.last_error() == "personalisation: connection refused");
    CHECK(absl::FromUnixMicros(ecrm::util::Micros(q.next_attempt_at())) == e.clock.Get() + absl::Seconds(5));
  }
  // Back up: ann goes out; bob's store trouble at personalisation is temporary too.
  e.renderer.down = absl::OkStatus();
  e.clock.Advance(absl::Seconds(5));
  e.Drain();
  CHECK(e.email.Times(ann.id()) == 1);
  CHECK(e.Get(ann.id()).subject() == "Hi Ann");
  CHECK(e.Get(bob.id()).state() == v1::DELIVERY_STATE_QUEUED);
  CHECK(e.Get(bob.id()).last_error() == "personalisation: information store: down");
  e.renderer.failing.clear();
  e.clock.Advance(absl::Seconds(5));
  e.Drain();
  CHECK(e.Get(bob.id()).state() == v1::DELIVERY_STATE_SENT);
  CHECK(e.EventTypes() == std::multiset<std::string>{"message_sent", "message_sent"});
}

TEST_CASE("without personalisation, template deliveries fail naming the missing configuration") {
  ecrm::testing::TempDir dir;
  Engine e(Sqlite(dir));
  e.directory.Put("ann", {common::CHANNEL_EMAIL});
  bc::Dispatcher plain(*e.db, e.outbox, e.profiles, nullptr, e.caps, {{common::CHANNEL_EMAIL, &e.email}}, e.metrics, {},
                       [&] { return e.clock.Get(); });
  v1::SendMessageRequest req = e.Request("ann");
  req.mutable_content()->set_template_id("welcome");
  v1::Delivery d = *e.deliveries->SendMessage(req);
  REQUIRE(plain.RunOnce().value() == 1);
  v1::Delivery f = e.Get(d.id());
  CHECK(f.state() == v1::DELIVERY_STATE_FAILED);
  CHECK(f.last_error().find("content.template_id") != std::string::npos);
  CHECK(f.last_error().find("--personalisation-address") != std::string::npos);
  CHECK(e.email.Total() == 0);
}

TEST_CASE("a segment_id audience is resolved through segmentation and loaded once") {
  ecrm::testing::TempDir dir;
  Engine e(Sqlite(dir));
  e.WithSegments();
  e.segments.segments["vip"] = {"ann", "bob", "ann", "cid"};
  e.segments.segments["empty"] = {};
  for (const std::string id : {"ann", "bob", "cid"}) e.directory.Put(id, {common::CHANNEL_EMAIL});
  v1::CreateBroadcastRequest req;
  req.set_segment_id("vip");
  req.set_purpose(common::PURPOSE_MARKETING);
  req.mutable_content()->mutable_literal()->set_subject("VIP");
  req.set_idempotency_key("vip-1");
  auto job = e.broadcasts->Create(req);
  INFO(job.status().ToString());
  REQUIRE(job.ok());
  CHECK(job->audience_size() == 3);
  CHECK(job->by_state().at("QUEUED") == 3);
  // The same key again: the same broadcast, the segment not read again, nothing loaded twice.
  auto again = e.broadcasts->Create(req);
  REQUIRE(again.ok());
  CHECK(again->id() == job->id());
  CHECK(e.segments.reads == 1);
  e.Drain();
  CHECK(e.email.Total() == 3);
  CHECK(e.broadcasts->Get(job->id())->state() == v1::BROADCAST_STATE_COMPLETED);

  auto code = [&](const std::string& segment) {
    v1::CreateBroadcastRequest r = req;
    r.set_segment_id(segment);
    r.clear_idempotency_key();
    return e.broadcasts->Create(r).status();
  };
  CHECK(code("nope").code() == absl::StatusCode::kNotFound);
  CHECK(code("empty").code() == absl::StatusCode::kFailedPrecondition);
  e.segments.down = absl::UnavailableError("segmentation: down");
  CHECK(code("vip").code() == absl::StatusCode::kUnavailable);
  auto listed = e.broadcasts->List({});
  REQUIRE(listed.ok());
  CHECK(listed->broadcasts_size() == 1);  // the failures left nothing behind
  req.add_customer_ids("ann");
  CHECK(e.broadcasts->Create(req).status().code() == absl::StatusCode::kInvalidArgument);  // both
}

TEST_CASE("CreateBroadcast refuses an unknown template, and still takes one when personalisation is down") {
  ecrm::testing::TempDir dir;
  Engine e(Sqlite(dir));
  e.WithTemplates();
  e.renderer.templates["welcome"] = {"Hi {{name}}", "", ""};
  e.renderer.names["ann"] = "Ann";
  e.directory.Put("ann", {common::CHANNEL_EMAIL});
  v1::CreateBroadcastRequest req;
  req.add_customer_ids("ann");
  req.set_purpose(common::PURPOSE_MARKETING);
  req.mutable_content()->set_template_id("nope");
  absl::Status refused = e.broadcasts->Create(req).status();
  CHECK(refused.code() == absl::StatusCode::kNotFound);
  CHECK(refused.message().find("content.template_id") != std::string::npos);
  CHECK(e.broadcasts->List({})->broadcasts_size() == 0);

  req.mutable_content()->set_template_id("welcome");
  req.set_idempotency_key("w-1");
  e.renderer.down = absl::UnavailableError("personalisation: down");
  auto job = e.broadcasts->Create(req);
  REQUIRE(job.ok());
  e.renderer.templates.clear();  // a replay does not ask again
  CHECK(e.broadcasts->Create(req).ok());
  e.renderer.templates["welcome"] = {"Hi {{name}}", "", ""};
  e.renderer.down = absl::OkStatus();
  e.Drain();
  CHECK(e.broadcasts->Get(job->id())->state() == v1::BROADCAST_STATE_COMPLETED);
  REQUIRE(e.email.Messages().size() == 1);
  CHECK(e.email.Messages()[0].subject == "Hi Ann");
}

TEST_CASE("an offer's content: validated, rendered with its template, and held back from customers it is not for") {
  ecrm::testing::TempDir dir;
  Engine e(Sqlite(dir));
  e.WithTemplates();
  e.renderer.templates["offer_tpl"] = {"{{offer}} for {{name}}", "Take {{offer}}", ""};
  e.renderer.templates["other"] = {"Other {{offer}}", "", ""};
  e.renderer.offers["off_10"] = {"offer_tpl", true};
  e.renderer.offers["off_bare"] = {"", true};  // no template of its own
  e.renderer.offers["off_paused"] = {"offer_tpl", false};
  e.renderer.offers["off_over"] = {"offer_tpl", true, e.clock.Get() - absl::Hours(1)};
  for (const std::string id : {"ann", "bob", "cid"}) e.directory.Put(id, {common::CHANNEL_EMAIL});
  e.renderer.names["ann"] = "Ann";
  e.renderer.names["bob"] = "Bob";
  e.renderer.names["cid"] = "Cid";
  e.renderer.not_eligible["bob"] = "not eligible: rule clause `orders.count >= 2` is false";

  // Validation: a message needs literal content, a template or an offer; an offer is not sent
  // with literal content nor with a placement.
  auto invalid = [&](const std::function<void(v1::MessageContent&)>& edit, const std::string& field) {
    v1::SendMessageRequest req = e.Request("ann");
    req.clear_content();
    edit(*req.mutable_content());
    absl::Status s = e.deliveries->SendMessage(req).status();
    INFO(s.ToString());
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK(absl::StrContains(s.message(), field));
  };
  invalid([](v1::MessageContent&) {}, "content");
  invalid([](v1::MessageContent& c) { c.set_placement("home"); }, "content.placement");
  invalid(
      [](v1::MessageContent& c) {
        c.set_offer_id("off_10");
        c.mutable_literal()->set_subject("Hi");
      },
      "content.offer_id");
  invalid(
      [](v1::MessageContent& c) {
        c.set_offer_id("off_10");
        c.set_placement("home");
      },
      "content.placement");
  invalid([](v1::MessageContent& c) { c.set_offer_id(std::string(129, 'x')); }, "content.offer_id");

  // CreateBroadcast refuses an unknown offer and an offer with no template to render it with.
  v1::CreateBroadcastRequest breq;
  for (const std::string id : {"ann", "bob", "cid"}) breq.add_customer_ids(id);
  breq.set_purpose(common::PURPOSE_MARKETING);
  breq.set_campaign_id("cmp_1");
  breq.mutable_content()->set_offer_id("off_nope");
  absl::Status unknown = e.broadcasts->Create(breq).status();
  CHECK(unknown.code() == absl::StatusCode::kNotFound);
  CHECK(absl::StrContains(unknown.message(), "content.offer_id"));
  CHECK(absl::StrContains(unknown.message(), "off_nope"));
  breq.mutable_content()->set_offer_id("off_bare");
  absl::Status bare = e.broadcasts->Create(breq).status();
  CHECK(bare.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(absl::StrContains(bare.message(), "content.offer_id"));
  // … and one no customer could have: inactive, or over.
  breq.mutable_content()->set_offer_id("off_paused");
  absl::Status paused = e.broadcasts->Create(breq).status();
  CHECK(paused.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(absl::StrContains(paused.message(), "content.offer_id: offer \"off_paused\" is not active"));
  breq.mutable_content()->set_offer_id("off_over");
  absl::Status over = e.broadcasts->Create(breq).status();
  CHECK(over.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(absl::StrContains(over.message(), "content.offer_id: offer \"off_over\" ended at "));
  CHECK(e.broadcasts->List({})->broadcasts_size() == 0);

  // An offer-only broadcast: the offer's template, for those it is for; bob is held back.
  breq.mutable_content()->set_offer_id("off_10");
  auto job = e.broadcasts->Create(breq);
  INFO(job.status().ToString());
  REQUIRE(job.ok());
  e.Drain();
  REQUIRE(e.renderer.offer_calls.size() == 1);
  CHECK(e.renderer.offer_calls[0] == "off_10");
  std::map<std::string, std::string> subjects;
  for (const bc::OutgoingMessage& m : e.email.Messages()) subjects[m.subject] = m.text_body;
  CHECK(subjects ==
        std::map<std::string, std::string>{{"off_10 for Ann", "Take off_10"}, {"off_10 for Cid", "Take off_10"}});
  v1::BroadcastJob done = *e.broadcasts->Get(job->id());
  CHECK(done.state() == v1::BROADCAST_STATE_COMPLETED);
  CHECK(done.by_state().at("SENT") == 2);
  CHECK(done.by_state().at("SUPPRESSED") == 1);
  CHECK(done.by_suppression_reason().at("OFFER_NOT_ELIGIBLE") == 1);
  v1::ListDeliveriesRequest list;
  list.set_customer_id("bob");
  auto bobs = e.deliveries->ListDeliveries(list);
  REQUIRE(bobs.ok());
  REQUIRE(bobs->deliveries_size() == 1);
  const v1::Delivery& held = bobs->deliveries(0);
  CHECK(held.state() == v1::DELIVERY_STATE_SUPPRESSED);
  CHECK(held.suppression_reason() == v1::SUPPRESSION_REASON_OFFER_NOT_ELIGIBLE);
  CHECK(held.last_error() == "offer \"off_10\": not eligible: rule clause `orders.count >= 2` is false");
  CHECK(e.EventTypes() == std::multiset<std::string>{"message_sent", "message_sent", "message_suppressed"});

  // With a template_id too: that template, the offer still judged.
  v1::SendMessageRequest both = e.Request("cid");
  both.clear_content();
  both.mutable_content()->set_template_id("other");
  both.mutable_content()->set_offer_id("off_10");
  v1::Delivery d = *e.deliveries->SendMessage(both);
  // SendMessage does not ask personalisation: an unknown offer fails its delivery, naming it.
  v1::SendMessageRequest nope = e.Request("ann");
  nope.clear_content();
  nope.mutable_content()->set_offer_id("off_nope");
  v1::Delivery failed = *e.deliveries->SendMessage(nope);
  e.Drain();
  CHECK(e.Get(d.id()).subject() == "Other off_10");
  v1::Delivery f = e.Get(failed.id());
  CHECK(f.state() == v1::DELIVERY_STATE_FAILED);
  CHECK(f.last_error() == "content.offer_id: personalisation has no offer \"off_nope\"");
}
