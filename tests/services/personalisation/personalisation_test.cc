// The personalisation engine end to end: the real ecrm-personalisation binary reading customers
// from a real information store through a real Redis profile cache, on SQLite and PostgreSQL.
#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <csignal>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/personalisation/v1/personalisation.grpc.pb.h"
#include "ecrm/privacy/v1/privacy.grpc.pb.h"
#include "ecrm/testing/process.h"
#include "ecrm/testing/servers.h"
#include "ecrm/testing/service.h"
#include "test_servers.h"

namespace is = ecrm::infostore::v1;
namespace v1 = ecrm::personalisation::v1;
namespace common = ecrm::common::v1;
using ecrm::testing::ServiceProcess;

using ecrm::testing::Binary;
using ecrm::testing::Postgres;
using ecrm::testing::Redis;

using ecrm::testing::Call;

namespace {

// "1 234,50 €" with CLDR's no-break spaces as plain ones.
std::string Spaces(std::string s) {
  for (const char* nbsp : {"\xC2\xA0", "\xE2\x80\xAF"}) {
    for (size_t at; (at = s.find(nbsp)) != std::string::npos;) s.replace(at, strlen(nbsp), " ");
  }
  return s;
}

int64_t Metric(const ServiceProcess& p, const std::string& line_start) {
  auto text = ecrm::testing::HttpGet(absl::StrCat("http://", p.metrics_address(), "/metrics"));
  REQUIRE(text.ok());
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    if (absl::StartsWith(line, line_start))
      return static_cast<int64_t>(std::stod(std::string(line.substr(line.rfind(' ')))));
  }
  return 0;
}

}  // namespace

TEST_CASE("a template rendered for a customer upserted in the information store") {
  auto pg_a = Postgres().CreateUniqueDatabase();
  auto pg_b = Postgres().CreateUniqueDatabase();
  REQUIRE(pg_a.ok());
  REQUIRE(pg_b.ok());
  auto [backend, infostore_db, personalisation_db] = GENERATE_COPY(
      std::tuple<std::string, std::string, std::string>{"sqlite", "", ""},
      std::tuple<std::string, std::string, std::string>{"postgres", "--database-url=" + Postgres().url(*pg_a),
                                                        "--database-url=" + Postgres().url(*pg_b)});
  INFO("backend: " << backend);
  std::vector<std::string> infostore_args = {"--redis-url=" + Redis().url()};
  if (!infostore_db.empty()) infostore_args.push_back(infostore_db);
  auto infostore = ServiceProcess::Start(Binary("infostore"), infostore_args);
  REQUIRE(infostore.ok());
  std::vector<std::string> args = {"--redis-url=" + Redis().url(),
                                   "--infostore-address=" + (*infostore)->grpc_address()};
  if (!personalisation_db.empty()) args.push_back(personalisation_db);
  auto engine = ServiceProcess::Start(Binary("personalisation"), args);
  REQUIRE(engine.ok());
  auto store = is::InformationStore::NewStub((*infostore)->channel());
  auto personalisation = v1::Personalisation::NewStub((*engine)->channel());

  // A customer in the information store.
  is::UpsertCustomerRequest upsert;
  auto* email = upsert.add_identifiers();
  email->set_type(common::IDENTIFIER_TYPE_EMAIL);
  email->set_value(absl::StrCat("camille.", backend, "@example.com"));
  upsert.mutable_profile()->set_first_name("Camille");
  upsert.mutable_profile()->set_locale("fr-FR");
  (*upsert.mutable_attributes())["tier"].set_string_value("or & argent");
  is::UpsertCustomerResponse upserted;
  grpc::Status s = Call(*store, &is::InformationStore::Stub::UpsertCustomer, upsert, &upserted);
  INFO(s.error_message());
  REQUIRE(s.ok());
  const std::string customer = upserted.customer().id();

  // The message in English (default) and French.
  auto create = [&](const std::string& locale, const std::string& subject, const std::string& html) {
    v1::CreateTemplateRequest req;
    req.mutable_template_()->set_name("welcome");
    req.mutable_template_()->set_channel(common::CHANNEL_EMAIL);
    req.mutable_template_()->set_locale(locale);
    req.mutable_template_()->set_subject(subject);
    req.mutable_template_()->set_html_body(html);
    v1::Template t;
    grpc::Status st = Call(*personalisation, &v1::Personalisation::Stub::CreateTemplate, req, &t);
    INFO(st.error_message());
    REQUIRE(st.ok());
    return t;
  };
  v1::Template en = create("", "Welcome {{profile.first_name}}", "<p>Tier: {{attributes.tier}}</p>");
  v1::Template fr =
      create("fr", "Bienvenue {{profile.first_name}}",
             "<p>Niveau : {{attributes.tier}}</p>{{#recommendations}}<li>{{title}} {{price_formatted}}</li>"
             "{{/recommendations}}<a href=\"{{unsubscribe_url}}\">{{profile.last_name}}</a>");

  v1::RenderMessageRequest render;
  render.set_template_id(en.id());
  render.set_customer_id(customer);
  auto* rec = render.add_recommendations();
  rec->set_sku("VELO-1");
  rec->set_title("Vélo");
  rec->mutable_price()->set_amount_minor(123450);
  rec->mutable_price()->set_currency("EUR");
  v1::RenderedMessage m;
  s = Call(*personalisation, &v1::Personalisation::Stub::RenderMessage, render, &m);
  INFO(s.error_message());
  REQUIRE(s.ok());
  CHECK(m.template_id() == fr.id());
  CHECK(m.locale() == "fr");
  CHECK(m.subject() == "Bienvenue Camille");
  CHECK(Spaces(m.html_body()) ==
        "<p>Niveau : or &amp; argent</p><li>Vélo 1 234,50 €</li><a href=\"{{unsubscribe_url}}\"></a>");
  CHECK(std::vector<std::string>(m.missing_variables().begin(), m.missing_variables().end()) ==
        std::vector<std::string>{"profile.last_name"});
  CHECK(m.template_version() == 1);

  // Strict mode names the variable.
  render.set_strict(true);
  s = Call(*personalisation, &v1::Personalisation::Stub::RenderMessage, render, &m);
  CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(absl::StrContains(s.error_message(), "profile.last_name"));

  // An unclosed section: INVALID_ARGUMENT with line and column.
  v1::UpdateTemplateRequest update;
  update.mutable_template_()->set_id(fr.id());
  update.mutable_template_()->set_html_body("<p>\n{{#offers}}");
  update.mutable_update_mask()->add_paths("html_body");
  v1::Template updated;
  s = Call(*personalisation, &v1::Personalisation::Stub::UpdateTemplate, update, &updated);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(s.error_message() ==
        "template.html_body: line 2, column 1: section \"offers\" is not closed (expected {{/offers}})");

  // BatchRender: the customer, and one the store does not know, listed as failed.
  v1::BatchRenderRequest batch;
  batch.set_template_id(en.id());
  batch.add_customer_ids(customer);
  batch.add_customer_ids("c_unknown");
  v1::BatchRenderResponse rendered;
  s = Call(*personalisation, &v1::Personalisation::Stub::BatchRender, batch, &rendered);
  INFO(s.error_message());
  REQUIRE(s.ok());
  REQUIRE(rendered.messages_size() == 1);
  CHECK(rendered.messages(0).subject() == "Bienvenue Camille");
  CHECK(rendered.failed().count("c_unknown") == 1);

  // Bad input.
  v1::GetTemplateRequest get;
  get.set_id("tpl_nope");
  v1::Template t;
  CHECK(Call(*personalisation, &v1::Personalisation::Stub::GetTemplate, get, &t).error_code() ==
        grpc::StatusCode::NOT_FOUND);
  v1::RecommendRequest recommend;
  v1::RecommendResponse recommended;
  s = Call(*personalisation, &v1::Personalisation::Stub::Recommend, recommend, &recommended);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(absl::StrContains(s.error_message(), "customer_id"));

  // CustomerData is served (no offer shown to the customer yet).
  auto privacy = ecrm::privacy::v1::CustomerData::NewStub((*engine)->channel());
  ecrm::privacy::v1::ExportCustomerDataRequest export_req;
  export_req.set_customer_id(customer);
  ecrm::privacy::v1::ExportCustomerDataResponse exported;
  REQUIRE(Call(*privacy, &ecrm::privacy::v1::CustomerData::Stub::ExportCustomerData, export_req, &exported).ok());
  CHECK(exported.json_document() == "{\"offer_impressions\":[],\"recommendation_model\":{\"orders_learnt\":[]}}");
  CHECK(exported.engine() == "personalisation");

  // The information store filled the shared cache when it was read: with the store stopped,
  // the customer still renders, from the cache.
  (*infostore)->process().Signal(SIGTERM);
  REQUIRE((*infostore)->process().Wait(absl::Seconds(20)).has_value());
  render.set_strict(false);
  s = Call(*personalisation, &v1::Personalisation::Stub::RenderMessage, render, &m);
  INFO(s.error_message());
  REQUIRE(s.ok());
  CHECK(m.subject() == "Bienvenue Camille");
  CHECK(Metric(**engine, "ecrm_personalisation_customer_reads_total{source=\"cache\"}") >= 1);
}
