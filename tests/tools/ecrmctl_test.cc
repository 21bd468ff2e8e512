// ecrmctl: its file reading and printing in-process, and every command against the five real
// engines (SQLite, no Redis), run as the operator would run it.
#include <catch2/catch.hpp>

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "ecrm/infostore/v1/infostore.pb.h"
#include "ecrm/testing/process.h"
#include "ecrm/testing/service.h"
#include "mailbox.h"
#include "nlohmann/json.hpp"
#include "output.h"
#include "records.h"
#include "test_servers.h"

namespace is = ecrm::infostore::v1;
using ecrm::testing::Binary;
using ecrm::testing::Eventually;
using ecrm::testing::ServiceProcess;
using ecrm::testing::TempDir;

TEST_CASE("CSV records: quoted commas, doubled quotes, line breaks in a field, CRLF") {
  std::istringstream in("a,b,c\r\n\"x, y\",\"say \"\"hi\"\"\",\"two\nlines\"\nlast,,\n");
  ecrm::ctl::CsvReader csv(in);
  ecrm::ctl::Record r;
  REQUIRE(*csv.Next(&r));
  CHECK(r.fields == std::vector<std::string>{"a", "b", "c"});
  REQUIRE(*csv.Next(&r));
  CHECK(r.line == 2);
  CHECK(r.fields == std::vector<std::string>{"x, y", "say \"hi\"", "two\nlines"});
  REQUIRE(*csv.Next(&r));
  CHECK(r.line == 4);
  CHECK(r.fields == std::vector<std::string>{"last", "", ""});
  CHECK_FALSE(*csv.Next(&r));

  std::istringstream open_quote("\"never closed\n");
  ecrm::ctl::CsvReader bad(open_quote);
  CHECK(bad.Next(&r).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("CSV columns map onto the request by field path, with typed attributes, enums and hooks") {
  std::map<std::string, ecrm::ctl::ColumnHook> hooks = {
      {"email", [](const std::string& v, google::protobuf::Message& m) {
         auto* id = static_cast<is::UpsertCustomerRequest&>(m).add_identifiers();
         id->set_type(ecrm::common::v1::IDENTIFIER_TYPE_EMAIL);
         id->set_value(v);
         return absl::OkStatus();
       }}};
  auto mapping = ecrm::ctl::CsvMapping::Create(*is::UpsertCustomerRequest::descriptor(),
                                               {"email", "profile.first_name", "profile.gender", "attributes.tier",
                                                "attributes.visits:int", "attributes.vip:bool"},
                                               hooks);
  REQUIRE(mapping.ok());
  is::UpsertCustomerRequest req;
  REQUIRE(mapping->Fill({"ada@example.com", "Ada", "female", "gold", "12", "true"}, req).ok());
  CHECK(req.identifiers(0).value() == "ada@example.com");
  CHECK(req.profile().first_name() == "Ada");
  CHECK(req.profile().gender() == is::GENDER_FEMALE);
  CHECK(req.attributes().at("tier").string_value() == "gold");
  CHECK(req.attributes().at("visits").int_value() == 12);
  CHECK(req.attributes().at("vip").bool_value());
  // Empty cells are left out.
  REQUIRE(mapping->Fill({"b@example.com", "", "", "", "", ""}, req).ok());
  CHECK_FALSE(req.has_profile());

  absl::Status s = mapping->Fill({"c@example.com", "C", "dragon", "", "", ""}, req);
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(s.message(), "profile.gender"));
  s = mapping->Fill({"c@example.com", "C", "", "", "many", ""}, req);
  CHECK(absl::StrContains(s.message(), "attributes.visits:int"));
  CHECK(mapping->Fill({"too", "few"}, req).code() == absl::StatusCode::kInvalidArgument);

  auto unknown = ecrm::ctl::CsvMapping::Create(*is::UpsertCustomerRequest::descriptor(), {"profile.shoe_size"});
  REQUIRE_FALSE(unknown.ok());
  CHECK(absl::StrContains(unknown.status().message(), "shoe_size"));
}

TEST_CASE("answers print as field lines, tables and JSON") {
  is::ListCustomersResponse list;
  auto* a = list.add_customers();
  a->set_id("c_1");
  a->mutable_profile()->set_first_name("Ada");
  auto* b = list.add_customers();
  b->set_id("c_2");
  list.set_next_page_token("tok");
  std::ostringstream table;
  ecrm::ctl::Print(list, ecrm::ctl::Format::kTable, table);
  const std::string t = table.str();
  CHECK(absl::StrContains(t, "ID"));
  CHECK(absl::StrContains(t, "PROFILE.FIRST_NAME"));
  CHECK(absl::StrContains(t, "c_2"));
  CHECK(absl::StrContains(t, "next_page_token: tok"));

  std::ostringstream json;
  ecrm::ctl::Print(list, ecrm::ctl::Format::kJson, json);
  auto doc = nlohmann::json::parse(json.str());
  CHECK(doc["customers"][0]["profile"]["first_name"] == "Ada");

  auto fields = ecrm::ctl::Flatten(*a);
  CHECK(fields == std::vector<std::pair<std::string, std::string>>{{"id", "c_1"}, {"profile.first_name", "Ada"}});
}

namespace {

std::string Ctl() { return absl::StrCat(ECRM_BUILD_DIR, "/tools/ecrmctl/ecrmctl"); }

struct Run {
  int code;
  std::string out;  // standard output only
};

// Runs ecrmctl with `args`, standard error dropped (so JSON output can be parsed).
Run Stdout(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>/dev/null", Ctl()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = ecrm::testing::RunCommand(argv, absl::Minutes(5));
  if (!r.ok()) FAIL(r.status().ToString());
  return {r->exit_code, r->output};
}

// Runs ecrmctl with `args`, standard output and error together.
Run Both(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {Ctl()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = ecrm::testing::RunCommand(argv, absl::Minutes(5));
  if (!r.ok()) FAIL(r.status().ToString());
  return {r->exit_code, r->output};
}

nlohmann::json Json(const Run& r) {
  INFO(r.out);
  REQUIRE(r.code == 0);
  return nlohmann::json::parse(r.out);
}

// An engine without Redis.
std::unique_ptr<ServiceProcess> Start(const std::string& engine, std::vector<std::string> args) {
  args.push_back("--redis-url=");
  return ecrm::testing::StartEngine(engine, args);
}

}  // namespace

TEST_CASE("the demo's reader finds a mail's open pixel and tracked links under quoted-printable") {
  // As broadcast writes it: quoted-printable with soft breaks inside the URLs, &amp; in attributes.
  const std::string mail =
      "From: shop@shop.example\r\nTo: ada@example.com\r\nSubject: =?UTF-8?B?SGk=?=\r\n"
      "Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n"
      "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nUnsubscribe: http://t.example/u?d=d_1\r\n"
      "--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
      "<p>Hello L=C3=A9a</p><a href=3D\"http://t.example/c?d=3Dd_1&amp;u=3Dhttps%3A%2F%2Fshop=\r\n"
      ".example%2F&amp;s=3Dsig1\">Shop</a><a href=3D\"https://elsewhere.example/\">x</a>=\r\n"
      "--not-the-boundary"
      "<img src=3D\"http://t.example/o?d=3Dd_=\r\n1&amp;s=3Dsig2\" width=3D\"1\">\r\n--b--\r\n";
  ecrm::ctl::TrackingLinks links;
  CHECK(ecrm::ctl::LinksOfMessage(mail, "http://t.example", &links) == "d_1");
  CHECK(links.open == "http://t.example/o?d=d_1&s=sig2");
  REQUIRE(links.clicks.size() == 1);
  CHECK(links.clicks[0] == "http://t.example/c?d=d_1&u=https%3A%2F%2Fshop.example%2F&s=sig1");
  CHECK(ecrm::ctl::DecodeQuotedPrintable("caf=C3=A9 =3D 1=\nx = y") == "caf\xC3\xA9 = 1x = y");

  ecrm::ctl::TrackingLinks none;
  CHECK(ecrm::ctl::LinksOfMessage("Subject: plain\r\n\r\nno html here", "http://t.example", &none).empty());
  CHECK(none.open.empty());

  TempDir dir;
  std::ofstream(dir.path() + "/msg-00001.eml") << mail;
  std::ofstream(dir.path() + "/msg-00001.json") << "{}";
  auto found = ecrm::ctl::ReadMailbox(dir.path(), "http://t.example", {"d_1", "d_2"});
  REQUIRE(found.ok());
  REQUIRE(found->size() == 1);
  CHECK(found->at("d_1").open == links.open);
  CHECK(ecrm::ctl::ReadMailbox(dir.path(), "http://t.example", {"d_2"})->empty());
  CHECK(ecrm::ctl::ReadMailbox(dir.path() + "/missing", "http://t.example", {"d_1"}).status().code() ==
        absl::StatusCode::kNotFound);
}

TEST_CASE("every ecrmctl command against the running suite") {
  auto infostore = Start("infostore", {});
  const std::string store = "--infostore-address=" + infostore->grpc_address();
  auto broadcast = Start("broadcast", {store});
  auto segmentation =
      Start("segmentation", {store, "--broadcast-address=" + broadcast->grpc_address(), "--scores-interval=1s"});
  auto personalisation = Start("personalisation", {store});
  auto transaction = Start("transaction", {store});
  const std::vector<std::string> at = {store, "--segmentation-address=" + segmentation->grpc_address(),
                                       "--personalisation-address=" + personalisation->grpc_address(),
                                       "--broadcast-address=" + broadcast->grpc_address(),
                                       "--transaction-address=" + transaction->grpc_address()};
  auto cmd = [&](std::vector<std::string> args) {
    args.insert(args.end(), at.begin(), at.end());
    return args;
  };
  auto json = [&](std::vector<std::string> args) {
    args.push_back("--output=json");
    return Json(Stdout(cmd(args)));
  };

  // status: every engine serving.
  Run status = Both(cmd({"status"}));
  INFO(status.out);
  CHECK(status.code == 0);
  CHECK(std::count(status.out.begin(), status.out.end(), '\n') == 5);
  CHECK(absl::StrContains(status.out, "SERVING"));

  // customers upsert / get / find / export.
  auto created = json({"customers", "upsert", "--email=ada@example.com", "--first-name=Ada", "--locale=en-GB"});
  const std::string ada = created["customer"]["id"];
  CHECK(json({"customers", "get", ada})["profile"]["first_name"] == "Ada");
  CHECK(json({"customers", "find", "--email=ADA@example.com"})["id"] == ada);
  Run table = Stdout(cmd({"customers", "get", ada}));
  CHECK(absl::StrContains(table.out, "profile.first_name:"));
  Run exported = Stdout(cmd({"customers", "export", ada}));
  CHECK(exported.code == 0);
  CHECK(absl::StrContains(exported.out, "Ada"));
  CHECK(Both(cmd({"customers", "get", "c_does_not_exist"})).code == 3);
  CHECK(Both(cmd({"customers", "get"})).code == 2);
  CHECK(Both(cmd({"customers", "fly"})).code == 2);

  // Imports: customers (CSV), products (CSV), events (JSON lines), each with a bad row.
  TempDir dir;
  {
    std::ofstream f(dir.path() + "/customers.csv");
    f << "email,profile.first_name,attributes.visits:int\n"
      << "bob@example.com,Bob,3\n"
      << "cy@example.com,Cy,three\n"
      << "dee@example.com,Dee,5\n";
  }
  Run customers = Stdout(cmd({"customers", "import", dir.path() + "/customers.csv", "--output=json"}));
  CHECK(customers.code == 6);
  auto imported = nlohmann::json::parse(customers.out);
  CHECK(imported["imported"] == 2);
  REQUIRE(imported["errors"].size() == 1);
  CHECK(imported["errors"][0]["line"] == 3);
  {
    std::ofstream f(dir.path() + "/products.csv");
    f << "sku,title,category,price.amount_minor,price.currency,active\n"
      << "sku-1,Tea,drinks,450,EUR,true\n"
      << "sku-2,Cake,food,-5,EUR,true\n";
  }
  Run products = Both(cmd({"products", "import", dir.path() + "/products.csv"}));
  INFO(products.out);
  CHECK(products.code == 6);
  CHECK(absl::StrContains(products.out, "products.csv:3: "));
  CHECK(absl::StrContains(products.out, "1 imported, 1 rejected"));
  {
    std::ofstream f(dir.path() + "/events.jsonl");
    f << R"({"event_id":"e1","customer":{"customer_id":")" << ada
      << R"("},"type":"page_view","occurred_at":"2026-11-30T10:00:00Z"})"
      << "\n"
      << R"({"event_id":"e2","customer":{"customer_id":")" << ada << R"("},"occurred_at":"2026-11-30T10:00:00Z"})"
      << "\n"
      << "\n"
      << R"({"event_id":"e3","customer":{"customer_id":")" << ada
      << R"("},"type":"purchase","occurred_at":"2026-11-30T11:00:00Z","amount":{"amount_minor":"1200","currency":"EUR"}})"
      << "\n";
  }
  Run events = Both(cmd({"events", "import", dir.path() + "/events.jsonl"}));
  INFO(events.out);
  CHECK(events.code == 6);
  CHECK(absl::StrContains(events.out, "events.jsonl:2: "));
  CHECK(absl::StrContains(events.out, "3 rows, 2 imported, 1 rejected"));

  // Segments.
  auto segment =
      json({"segments", "create", "--name=buyers", "--rule=orders.count >= 0 && profile.first_name != \"\""});
  const std::string segment_id = segment["id"];
  CHECK(Both(cmd({"segments", "create", "--name=bad", "--rule=orders.count >= \"x\""})).code == 4);
  CHECK(Eventually([&] { return json({"segments", "preview", "profile.first_name == \"Ada\""})["count"] == "1"; }));
  CHECK(json({"segments", "list"})["segments"][0]["name"] == "buyers");
  CHECK(Eventually([&] {
    Run members = Stdout(cmd({"segments", "members", segment_id}));
    return members.code == 0 && std::count(members.out.begin(), members.out.end(), '\n') == 3;
  }));
  CHECK(Eventually([&] { return Stdout(cmd({"scores", ada})).code == 0; }));

  // Templates.
  auto tpl = json({"templates", "create", "--name=hello", "--channel=email", "--subject=Hello {{profile.first_name}}",
                   "--text=Hi {{profile.first_name}}"});
  const std::string template_id = tpl["id"];
  CHECK(json({"templates", "list"})["templates"].size() == 1);
  CHECK(json({"templates", "render", template_id, ada})["subject"] == "Hello Ada");

  // Campaigns, and the broadcast the launch hands over.
  auto campaign = json({"campaigns", "create", "--name=hello", "--type=one_off", "--segments=" + segment_id,
                        "--template=" + template_id, "--channels=web", "--control=0.2", "--goal=purchase"});
  const std::string campaign_id = campaign["id"];
  CHECK(Both(cmd({"campaigns", "create", "--name=x", "--segments=" + segment_id, "--control=0.9"})).code == 4);
  Run launched = Both(cmd({"campaigns", "launch", campaign_id, "--request-id=launch-1", "--output=json"}));
  INFO(launched.out);
  REQUIRE(launched.code == 0);
  CHECK(nlohmann::json::parse(launched.out)["state"] == "CAMPAIGN_STATE_RUNNING");
  CHECK(json({"campaigns", "list"})["campaigns"].size() == 1);
  auto report = json({"campaigns", "report", campaign_id});
  CHECK(report["campaign_id"] == campaign_id);
  std::string broadcast_id;
  REQUIRE(Eventually([&] {
    auto list = json({"broadcasts", "list", "--campaign=" + campaign_id});
    if (list["broadcasts"].empty()) return false;
    broadcast_id = list["broadcasts"][0]["id"];
    return true;
  }));
  CHECK(json({"broadcasts", "status", broadcast_id})["id"] == broadcast_id);
  Run paused = Both(cmd({"broadcasts", "pause", broadcast_id}));
  CHECK((paused.code == 0 || paused.code == 4));  // 4: it finished before the pause came
  Run cancelled = Both(cmd({"broadcasts", "cancel", broadcast_id}));
  CHECK((cancelled.code == 0 || cancelled.code == 4));

  // Erasure needs --yes.
  CHECK(Both(cmd({"customers", "erase", ada})).code == 2);
  Run erased = Both(cmd({"customers", "erase", ada, "--yes", "--reason=asked"}));
  INFO(erased.out);
  CHECK(erased.code == 0);
  CHECK(Both(cmd({"customers", "get", ada})).code == 3);

  // An engine that does not answer.
  std::vector<std::string> down = cmd({"status"});
  ecrm::testing::ClosedPort closed;
  down.push_back("--broadcast-address=" + closed.address());
  CHECK(Both(down).code == 5);
}

TEST_CASE("an import of 100,000 customers with 1% bad rows lists each bad row and imports the rest") {
  auto infostore = Start("infostore", {});
  TempDir dir;
  const std::string path = dir.path() + "/customers.csv";
  std::set<int64_t> bad_lines;
  {
    std::ofstream f(path);
    f << "customer_id,email,profile.first_name,profile.gender,attributes.visits:int\n";
    for (int i = 0; i < 100000; ++i) {
      const int64_t line = i + 2;
      if (i % 100 == 37) {
        bad_lines.insert(line);
        // Half refused by ecrmctl (a gender there is none of), half by the store (an email that is none).
        f << "," << (i % 200 == 37 ? absl::StrCat("c", i, "@example.com") : "not an email") << ",N" << i << ","
          << (i % 200 == 37 ? "dragon" : "female") << "," << i << "\n";
      } else {
        f << ",c" << i << "@example.com,N" << i << ",female," << i << "\n";
      }
    }
  }
  Run r = Stdout({"customers", "import", path, "--output=json", "--infostore-address=" + infostore->grpc_address()});
  CHECK(r.code == 6);
  auto doc = nlohmann::json::parse(r.out);
  CHECK(doc["rows"] == 100000);
  CHECK(doc["imported"] == 99000);
  CHECK(doc["rejected"] == 1000);
  std::set<int64_t> reported;
  for (const auto& e : doc["errors"]) reported.insert(e["line"].get<int64_t>());
  CHECK(reported == bad_lines);
}
