#include "ecrm/idempotency/idempotency.h"

#include <google/protobuf/struct.pb.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ecrm/testing/process.h"
#include "ecrm/testing/servers.h"

namespace ecrm::idempotency {
namespace {

constexpr sql::Migration kTable[] = {{1, "idempotency keys", R"sql(
CREATE TABLE idempotency_keys (
  operation TEXT NOT NULL,
  key TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  response {{blob}} NOT NULL,
  created_at BIGINT NOT NULL,
  customer_id TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (operation, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
)sql"}};

constexpr Operation kCheckout{"Checkout", "idempotency_key"};

// A fresh database of each kind with the table.
std::vector<std::pair<std::string, std::unique_ptr<sql::Database>>> Databases() {
  static ecrm::testing::TempDir dir;
  static int n = 0;
  ++n;
  std::vector<std::pair<std::string, std::string>> urls = {
      {"sqlite", absl::StrCat("sqlite://", dir.path(), "/idem", n, ".db")}};
  auto pg = ecrm::testing::PostgresServer::Shared();
  REQUIRE(pg.ok());
  auto name = (*pg)->CreateUniqueDatabase();
  REQUIRE(name.ok());
  urls.emplace_back("postgres", (*pg)->url(*name));
  std::vector<std::pair<std::string, std::unique_ptr<sql::Database>>> out;
  for (auto& [kind, url] : urls) {
    auto db = sql::Database::Open(url);
    REQUIRE(db.ok());
    REQUIRE((*db)->Migrate("idempotency_test", kTable).ok());
    out.emplace_back(kind, std::move(*db));
  }
  return out;
}

google::protobuf::Struct Request(const std::string& value) {
  google::protobuf::Struct s;
  (*s.mutable_fields())["sku"].set_string_value(value);
  return s;
}

// Runs one keyed operation the way an engine does: claim, work (counted), complete.
absl::StatusOr<std::string> Run(sql::Database& db, Store& store, const std::string& key,
                                const google::protobuf::Message& request, const std::string& answer,
                                std::atomic<int>& runs) {
  std::string response;
  absl::Status s = db.InTransaction([&](sql::Connection& c) -> absl::Status {
    absl::StatusOr<std::optional<std::string>> replay = store.Claim(c, kCheckout, key, request);
    if (!replay.ok()) return replay.status();
    if (*replay) {
      response = **replay;
      return absl::OkStatus();
    }
    ++runs;
    response = answer;
    return store.Complete(c, kCheckout, key, response, "c_1");
  });
  if (!s.ok()) return s;
  return response;
}

TEST_CASE("a key replays its first response to the same request and refuses another request") {
  for (auto& [kind, db] : Databases()) {
    DYNAMIC_SECTION(kind) {
      Store store(*db);
      std::atomic<int> runs = 0;
      CHECK(*Run(*db, store, "k1", Request("a"), "first", runs) == "first");
      CHECK(*Run(*db, store, "k1", Request("a"), "second", runs) == "first");  // replayed, not run
      CHECK(runs == 1);
      absl::StatusOr<std::string> other = Run(*db, store, "k1", Request("b"), "third", runs);
      REQUIRE_FALSE(other.ok());
      CHECK(other.status().code() == absl::StatusCode::kFailedPrecondition);
      CHECK(other.status().message() ==
            "idempotency_key: \"k1\" was already used for a different Checkout request; use a new idempotency_key "
            "for a new request");
      // No key: the operation runs every time.
      CHECK(*Run(*db, store, "", Request("a"), "x", runs) == "x");
      CHECK(*Run(*db, store, "", Request("a"), "y", runs) == "y");
      CHECK(runs == 3);
    }
  }
}

TEST_CASE("a claim rolled back with its transaction leaves the key free") {
  for (auto& [kind, db] : Databases()) {
    DYNAMIC_SECTION(kind) {
      Store store(*db);
      absl::Status failed = db->InTransaction([&](sql::Connection& c) -> absl::Status {
        auto replay = store.Claim(c, kCheckout, "k", Request("a"));
        REQUIRE(replay.ok());
        REQUIRE_FALSE(replay->has_value());
        return absl::FailedPreconditionError("the cart is empty");
      });
      CHECK(failed.code() == absl::StatusCode::kFailedPrecondition);
      std::atomic<int> runs = 0;
      CHECK(*Run(*db, store, "k", Request("b"), "ok", runs) == "ok");  // another request may take it
      CHECK(runs == 1);
    }
  }
}

TEST_CASE("concurrent requests with one key run once and all get the first response") {
  for (auto& [kind, db] : Databases()) {
    DYNAMIC_SECTION(kind) {
      Store store(*db);
      for (int round = 0; round < 20; ++round) {
        const std::string key = absl::StrCat("key-", round);
        std::atomic<int> runs = 0;
        std::vector<absl::StatusOr<std::string>> got(4, absl::UnknownError("not run"));
        std::vector<std::thread> threads;
        for (size_t i = 0; i < got.size(); ++i) {
          threads.emplace_back(
              [&, i] { got[i] = Run(*db, store, key, Request("a"), absl::StrCat("answer-", i), runs); });
        }
        for (auto& t : threads) t.join();
        CHECK(runs == 1);
        for (const auto& g : got) {
          REQUIRE(g.ok());
          CHECK(*g == *got[0]);
        }
      }
    }
  }
}

TEST_CASE("fingerprints are deterministic: equal requests with maps built in any order match") {
  google::protobuf::Struct a, b;
  for (int i = 0; i < 50; ++i) (*a.mutable_fields())[absl::StrCat("f", i)].set_number_value(i);
  for (int i = 49; i >= 0; --i) (*b.mutable_fields())[absl::StrCat("f", i)].set_number_value(i);
  CHECK(Fingerprint(a) == Fingerprint(b));
  (*b.mutable_fields())["f0"].set_number_value(1);
  CHECK(Fingerprint(a) != Fingerprint(b));
  CHECK(Fingerprint(a).size() == 64);
}

TEST_CASE("keys are 1-255 printable ASCII characters") {
  CHECK(ValidateKey(kCheckout, "", false).ok());
  CHECK(ValidateKey(kCheckout, "", true).message() == "idempotency_key: is required");
  CHECK(ValidateKey(kCheckout, std::string(255, 'k'), true).ok());
  CHECK(ValidateKey(kCheckout, std::string(256, 'k'), true).code() == absl::StatusCode::kInvalidArgument);
  CHECK(ValidateKey(kCheckout, "tab\there", true).message() == "idempotency_key: must be printable ASCII");
}

TEST_CASE("pruning forgets keys claimed before the cutoff") {
  for (auto& [kind, db] : Databases()) {
    DYNAMIC_SECTION(kind) {
      Store store(*db);
      std::atomic<int> runs = 0;
      REQUIRE(Run(*db, store, "old", Request("a"), "first", runs).ok());
      absl::StatusOr<int64_t> pruned = store.Prune(absl::Now() + absl::Seconds(1));
      REQUIRE(pruned.ok());
      CHECK(*pruned == 1);
      CHECK(*Run(*db, store, "old", Request("b"), "new", runs) == "new");  // the key is free again
    }
  }
}

}  // namespace
}  // namespace ecrm::idempotency
