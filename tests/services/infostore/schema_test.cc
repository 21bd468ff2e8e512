#include "schema.h"

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "ecrm/testing/process.h"
#include "ecrm/testing/servers.h"

namespace ecrm::infostore {
namespace {

TEST_CASE("migration 8 carries UpsertCustomer request ids over into idempotency_keys") {
  ecrm::testing::TempDir dir;
  auto pg = ecrm::testing::PostgresServer::Shared();
  REQUIRE(pg.ok());
  auto pg_db = (*pg)->CreateUniqueDatabase();
  REQUIRE(pg_db.ok());
  for (const std::string& url : {absl::StrCat("sqlite://", dir.path(), "/infostore.db"), (*pg)->url(*pg_db)}) {
    DYNAMIC_SECTION(url.substr(0, url.find(':'))) {
      auto db = sql::Database::Open(url);
      REQUIRE(db.ok());
      const auto migrations = absl::MakeConstSpan(kMigrations);
      REQUIRE(migrations.size() >= 7);
      REQUIRE((*db)->Migrate("infostore", migrations.subspan(0, migrations.size() - 1)).ok());
      REQUIRE((*db)
                  ->Execute("INSERT INTO upsert_requests (request_id, request_hash, created_at, response, customer_id) "
                            "VALUES ('req-1', 'abc', 42, $1, 'c_1')",
                            {sql::Blob{"\x0a\x02hi"}})
                  .ok());
      REQUIRE((*db)->Migrate("infostore", migrations).ok());
      auto rows = (*db)->Execute(
          "SELECT operation, key, request_hash, response, created_at, customer_id FROM idempotency_keys");
      REQUIRE(rows.ok());
      REQUIRE(rows->size() == 1);
      const sql::Row row = rows->front();
      CHECK(row.Text(0) == "UpsertCustomer");
      CHECK(row.Text(1) == "req-1");
      CHECK(row.Text(2) == "abc");
      CHECK(row.Text(3) == "\x0a\x02hi");
      CHECK(row.Int(4) == 42);
      CHECK(row.Text(5) == "c_1");
      CHECK_FALSE((*db)->Execute("SELECT 1 FROM upsert_requests").ok());  // gone
    }
  }
}

}  // namespace
}  // namespace ecrm::infostore
