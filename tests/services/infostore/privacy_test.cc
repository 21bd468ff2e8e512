// The privacy fan-out in-process: a real CustomerStore on a temporary SQLite database, fake
// engines behind the CustomerDataClient interface (no servers).
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>

#include "absl/time/clock.h"
#include "customer_store.h"
#include "ecrm/server/deadline.h"
#include "ecrm/testing/process.h"
#include "privacy.h"
#include "schema.h"

namespace v1 = ecrm::infostore::v1;
namespace privacy = ecrm::privacy::v1;
using ecrm::infostore::CustomerDataClient;

namespace {

#define ECRM_STATUS_OR_FAIL(expr) \
  if (absl::Status s = (expr); !s.ok()) return s

// Every engine's call waits here until all of them have been called: they only all get through
// if the fan-out calls them at once. Gives up at the call's deadline.
class Rendezvous {
 public:
  explicit Rendezvous(int parties) : parties_(parties) {}
  bool Arrive(absl::Time deadline) {
    std::unique_lock lock(mu_);
    if (++arrived_ == parties_) cv_.notify_all();
    return cv_.wait_until(lock, absl::ToChronoTime(deadline), [&] { return arrived_ >= parties_; });
  }

 private:
  const int parties_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
};

enum class Behaviour { kAnswers, kDown, kTooSlow };

class FakeEngine final : public CustomerDataClient {
 public:
  FakeEngine(std::string engine, Behaviour behaviour, Rendezvous& rendezvous)
      : engine_(std::move(engine)), behaviour_(behaviour), rendezvous_(rendezvous) {}
  const std::string& engine() const override { return engine_; }

  absl::StatusOr<privacy::ExportCustomerDataResponse> Export(const privacy::ExportCustomerDataRequest& req,
                                                             absl::Time deadline) override {
    ECRM_STATUS_OR_FAIL(Answer(req.customer_id(), deadline));
    privacy::ExportCustomerDataResponse out;
    out.set_json_document("{\"orders\":[]}");
    return out;
  }
  absl::StatusOr<privacy::EraseCustomerDataResponse> Erase(const privacy::EraseCustomerDataRequest& req,
                                                           absl::Time deadline) override {
    ECRM_STATUS_OR_FAIL(Answer(req.customer_id(), deadline));
    privacy::EraseCustomerDataResponse out;
    privacy::ErasedItem* item = out.add_items();
    item->set_kind("orders");
    item->set_count(1);
    item->set_action("pseudonymised");
    return out;
  }

  absl::Time deadline_seen = absl::InfinitePast();
  std::string customer_seen;

 private:
  absl::Status Answer(const std::string& customer_id, absl::Time deadline) {
    deadline_seen = deadline;
    customer_seen = customer_id;
    if (!rendezvous_.Arrive(deadline)) return absl::DeadlineExceededError("not called at once with the others");
    switch (behaviour_) {
      case Behaviour::kAnswers:
        return absl::OkStatus();
      case Behaviour::kDown:
        return absl::UnavailableError("connection refused");
      case Behaviour::kTooSlow: {  // answers only after the deadline: the caller must not wait for it
        std::mutex mu;
        std::condition_variable never;
        std::unique_lock lock(mu);
        never.wait_until(lock, absl::ToChronoTime(deadline), [] { return false; });
        return absl::DeadlineExceededError("deadline exceeded");
      }
    }
    return absl::InternalError("unreachable");
  }

  const std::string engine_;
  const Behaviour behaviour_;
  Rendezvous& rendezvous_;
};

struct Fixture {
  ecrm::testing::TempDir dir;
  std::unique_ptr<ecrm::sql::Database> db;
  std::unique_ptr<ecrm::infostore::ChangeFeed> feed;
  std::unique_ptr<ecrm::infostore::CustomerStore> store;
  Rendezvous rendezvous{3};
  FakeEngine *answers, *down, *slow;
  std::unique_ptr<ecrm::infostore::PrivacyFanout> fanout;
  std::string customer_id;

  Fixture() {
    auto opened = ecrm::sql::Database::Open("sqlite://" + dir.path() + "/infostore.db");
    REQUIRE(opened.ok());
    db = std::move(*opened);
    REQUIRE(db->Migrate("infostore", ecrm::infostore::kMigrations).ok());
    feed = std::make_unique<ecrm::infostore::ChangeFeed>(*db);
    store = std::make_unique<ecrm::infostore::CustomerStore>(*db, *feed, nullptr, ecrm::infostore::StoreOptions{});
    std::vector<std::unique_ptr<CustomerDataClient>> engines;
    engines.push_back(std::make_unique<FakeEngine>("transaction", Behaviour::kAnswers, rendezvous));
    engines.push_back(std::make_unique<FakeEngine>("broadcast", Behaviour::kDown, rendezvous));
    engines.push_back(std::make_unique<FakeEngine>("personalisation", Behaviour::kTooSlow, rendezvous));
    answers = static_cast<FakeEngine*>(engines[0].get());
    down = static_cast<FakeEngine*>(engines[1].get());
    slow = static_cast<FakeEngine*>(engines[2].get());
    fanout = std::make_unique<ecrm::infostore::PrivacyFanout>(*store, std::move(engines), absl::Seconds(30),
                                                              ecrm::server::CurrentDeadline);
    v1::UpsertCustomerRequest upsert;
    auto* id = upsert.add_identifiers();
    id->set_type(ecrm::common::v1::IDENTIFIER_TYPE_EMAIL);
    id->set_value("ann@example.com");
    auto created = store->Upsert(upsert);
    REQUIRE(created.ok());
    customer_id = created->customer().id();
  }
};

}  // namespace

TEST_CASE("export asks every engine at once within the caller's budget: one down, one too slow, one answers") {
  Fixture f;
  const absl::Time caller = absl::Now() + absl::Seconds(2);  // the caller's budget, not the 30 s timeout
  ecrm::server::ScopedDeadline scope(caller);
  ecrm::common::v1::CustomerRef ref;
  ref.set_customer_id(f.customer_id);
  auto out = f.fanout->Export(ref);
  REQUIRE(out.ok());
  for (FakeEngine* e : {f.answers, f.down, f.slow}) {
    CHECK(e->deadline_seen == caller);
    CHECK(e->customer_seen == f.customer_id);
  }
  REQUIRE(out->parts_size() == 2);
  CHECK(out->parts(0).engine() == "infostore");
  CHECK(out->parts(1).engine() == "transaction");
  CHECK(std::vector<std::string>(out->unavailable_engines().begin(), out->unavailable_engines().end()) ==
        std::vector<std::string>{"broadcast", "personalisation"});
}

TEST_CASE("erasure keeps this engine's data while another engine could not erase, and names it") {
  Fixture f;
  const absl::Time caller = absl::Now() + absl::Seconds(2);
  ecrm::server::ScopedDeadline scope(caller);
  v1::EraseCustomerRequest req;
  req.mutable_customer()->set_customer_id(f.customer_id);
  req.set_request_id("erase-1");
  auto out = f.fanout->Erase(req);
  REQUIRE(out.ok());
  for (FakeEngine* e : {f.answers, f.down, f.slow}) CHECK(e->deadline_seen == caller);
  REQUIRE(out->receipts_size() == 1);
  CHECK(out->receipts(0).engine() == "transaction");
  CHECK(out->unavailable_engines_size() == 2);
  ecrm::common::v1::CustomerRef ref;
  ref.set_customer_id(f.customer_id);
  CHECK(f.store->Get(ref).ok());  // still here: a retry with the same request_id can find it
}
