// The templates domain in-process: a temporary SQLite database, the in-memory profile cache and
// a fake information store. Versions, locale fallback, escaping per channel, ICU formatting,
// missing variables, strict mode and parse errors with line and column.
#include <prometheus/registry.h>
#include <catch2/catch.hpp>

#include <atomic>

#include "absl/strings/match.h"
#include "context.h"
#include "customers.h"
#include "ecrm/testing/process.h"
#include "ecrm/util/util.h"
#include "format.h"
#include "messages.h"
#include "recommendations.h"
#include "recommender.h"
#include "schema.h"
#include "templates.h"

namespace {

namespace p = ecrm::personalisation;
namespace v1 = ecrm::personalisation::v1;
using ecrm::common::v1::CHANNEL_EMAIL;
using ecrm::common::v1::CHANNEL_PUSH;
using ecrm::common::v1::CHANNEL_SMS;
using ecrm::common::v1::CHANNEL_WEB;
using ecrm::infostore::v1::Customer;

// The information store: answers from its map; `down` answers UNAVAILABLE.
class FakeDirectory final : public p::CustomerDirectory {
 public:
  absl::StatusOr<ecrm::infostore::v1::BatchGetCustomersResponse> BatchGetCustomers(
      absl::Span<const std::string> ids) override {
    ++calls;
    if (down) return absl::UnavailableError("information store: down");
    ecrm::infostore::v1::BatchGetCustomersResponse resp;
    for (const std::string& id : ids) {
      auto it = customers.find(id);
      if (it == customers.end()) {
        resp.add_not_found(id);
      } else {
        *resp.add_customers() = it->second;
      }
    }
    return resp;
  }
  std::map<std::string, Customer> customers;
  bool down = false;
  std::atomic<int> calls{0};
};

std::unique_ptr<ecrm::sql::Database> OpenDatabase(const ecrm::testing::TempDir& dir) {
  auto db = ecrm::sql::Database::Open("sqlite://" + dir.path() + "/personalisation.db");
  REQUIRE(db.ok());
  REQUIRE((*db)->Migrate("personalisation", p::kMigrations).ok());
  return std::move(*db);
}

struct Engine {
  v1::Template Create(v1::Template t) {
    absl::StatusOr<v1::Template> created = templates.Create(t);
    INFO(created.status().ToString());
    REQUIRE(created.ok());
    return *created;
  }
  absl::StatusOr<v1::RenderedMessage> Render(const std::string& template_id, const std::string& customer_id,
                                             bool strict = false) {
    v1::RenderMessageRequest req;
    req.set_template_id(template_id);
    req.set_customer_id(customer_id);
    req.set_strict(strict);
    return messages.Render(req);
  }
  void AddCustomer(const Customer& c) { directory.customers[c.id()] = c; }

  ecrm::testing::TempDir dir;
  std::unique_ptr<ecrm::sql::Database> db = OpenDatabase(dir);
  prometheus::Registry registry;
  p::PersonalisationMetrics metrics{registry};
  ecrm::cache::InMemoryProfileCache cache;
  FakeDirectory directory;
  p::Customers customers{&cache, &directory, metrics};
  p::Templates templates{*db, metrics};
  p::Messages messages{templates, customers, metrics};
};

v1::Template Email(const std::string& name, const std::string& subject, const std::string& html,
                   const std::string& text = "", const std::string& locale = "") {
  v1::Template t;
  t.set_name(name);
  t.set_channel(CHANNEL_EMAIL);
  t.set_subject(subject);
  t.set_html_body(html);
  t.set_text_body(text);
  t.set_locale(locale);
  return t;
}

Customer Person(const std::string& id, const std::string& first_name, const std::string& locale = "") {
  Customer c;
  c.set_id(id);
  c.mutable_profile()->set_first_name(first_name);
  c.mutable_profile()->set_locale(locale);
  c.set_version(1);
  return c;
}

// A non-breaking or narrow no-break space (as CLDR writes them in French and some others) as a
// plain space, so that the expectations read naturally.
std::string Spaces(std::string s) {
  for (const char* nbsp : {"\xC2\xA0", "\xE2\x80\xAF"}) {
    for (size_t at; (at = s.find(nbsp)) != std::string::npos;) s.replace(at, strlen(nbsp), " ");
  }
  return s;
}

TEST_CASE("an update makes a new version and every version stays readable") {
  Engine e;
  v1::Template t = e.Create(Email("welcome", "Hello {{profile.first_name}}", "<p>Hi</p>"));
  CHECK(t.version() == 1);
  CHECK(absl::StartsWith(t.id(), "tpl_"));

  v1::UpdateTemplateRequest update;
  update.mutable_template_()->set_id(t.id());
  update.mutable_template_()->set_subject("Welcome, {{profile.first_name}}");
  update.mutable_update_mask()->add_paths("subject");
  absl::StatusOr<v1::Template> v2 = e.templates.Update(update);
  REQUIRE(v2.ok());
  CHECK(v2->version() == 2);
  CHECK(v2->subject() == "Welcome, {{profile.first_name}}");
  CHECK(v2->html_body() == "<p>Hi</p>");  // not in the mask: kept

  CHECK(e.templates.Get(t.id(), 0)->subject() == "Welcome, {{profile.first_name}}");
  CHECK(e.templates.Get(t.id(), 1)->subject() == "Hello {{profile.first_name}}");
  CHECK(e.templates.Get(t.id(), 2)->version() == 2);
  absl::StatusOr<v1::Template> v9 = e.templates.Get(t.id(), 9);
  CHECK(absl::IsNotFound(v9.status()));
  CHECK(absl::StrContains(v9.status().message(), "latest: 2"));
  CHECK(absl::IsNotFound(e.templates.Get("tpl_nope", 0).status()));

  SECTION("an update against an older version is refused (optimistic concurrency)") {
    update.mutable_template_()->set_version(1);
    absl::StatusOr<v1::Template> stale = e.templates.Update(update);
    CHECK(absl::IsAborted(stale.status()));
    CHECK(absl::StrContains(stale.status().message(), "is at version 2, not 1"));
    update.mutable_template_()->set_version(2);
    CHECK(e.templates.Update(update)->version() == 3);
  }
  SECTION("the channel cannot change and unknown fields are named") {
    update.mutable_update_mask()->add_paths("channel");
    CHECK(absl::StrContains(e.templates.Update(update).status().message(), "channel cannot change"));
    update.mutable_update_mask()->clear_paths();
    update.mutable_update_mask()->add_paths("colour");
    CHECK(absl::StrContains(e.templates.Update(update).status().message(), "\"colour\""));
  }
  SECTION("an update that does not parse changes nothing") {
    update.mutable_template_()->set_subject("{{#a}}");
    CHECK(absl::IsInvalidArgument(e.templates.Update(update).status()));
    CHECK(e.templates.Get(t.id(), 0)->version() == 2);
  }
  SECTION("delete removes every version") {
    REQUIRE(e.templates.Delete(t.id()).ok());
    CHECK(absl::IsNotFound(e.templates.Get(t.id(), 1).status()));
    CHECK(absl::IsNotFound(e.templates.Delete(t.id())));
  }
}

TEST_CASE("templates are listed by id, a page at a time") {
  Engine e;
  for (int i = 0; i < 5; ++i) e.Create(Email("t" + std::to_string(i), "s", "h"));
  v1::ListTemplatesRequest req;
  req.set_page_size(2);
  std::vector<std::string> seen;
  for (int pages = 0; pages < 10; ++pages) {
    absl::StatusOr<v1::ListTemplatesResponse> page = e.templates.List(req);
    REQUIRE(page.ok());
    for (const v1::Template& t : page->templates()) seen.push_back(t.name());
    if (page->next_page_token().empty()) break;
    req.set_page_token(page->next_page_token());
  }
  std::sort(seen.begin(), seen.end());
  CHECK(seen == std::vector<std::string>{"t0", "t1", "t2", "t3", "t4"});
  req.set_page_token("made-up");
  CHECK(absl::IsInvalidArgument(e.templates.List(req).status()));
}

TEST_CASE("a template is checked when saved: fields per channel, and syntax errors with line and column") {
  Engine e;
  auto error = [&](const v1::Template& t) {
    absl::StatusOr<v1::Template> r = e.templates.Create(t);
    REQUIRE(absl::IsInvalidArgument(r.status()));
    return std::string(r.status().message());
  };
  CHECK(error(Email("x", "Hi", "<p>\n  {{#offers}}<b>{{headline}}</b>\n</p>")) ==
        "template.html_body: line 2, column 3: section \"offers\" is not closed (expected {{/offers}})");
  CHECK(error(Email("x", "Hi {{name", "b")) == "template.subject: line 1, column 4: tag not closed (expected \"}}\")");
  CHECK(error(Email("x", "Hi", "{{#a}}\n{{/b}}")) ==
        "template.html_body: line 2, column 1: {{/b}} does not close section \"a\" opened at line 1, column 1");
  CHECK(error(Email("x", "Hi", "{{>footer}}")) ==
        "template.html_body: line 1, column 1: partials ({{>footer}}) are not supported here");
  CHECK(error(Email("", "Hi", "b")) == "template.name: required");
  CHECK(error(Email("x", "", "b")) == "template.subject: required for email templates");
  CHECK(error(Email("x", "Hi", "b", "", "not a locale!")).rfind("template.locale:", 0) == 0);

  v1::Template sms;
  sms.set_name("sms");
  sms.set_channel(CHANNEL_SMS);
  CHECK(error(sms) == "template.text_body: required for SMS templates (the message)");
  sms.set_text_body("Hi");
  sms.set_html_body("<p>");
  CHECK(error(sms) == "template.html_body: must be empty for SMS templates");
  v1::Template push;
  push.set_name("push");
  push.set_channel(CHANNEL_PUSH);
  push.set_subject("Title");
  CHECK(error(push) == "template.text_body: required for push templates (the body)");
  v1::Template phone = push;
  phone.set_channel(ecrm::common::v1::CHANNEL_PHONE);
  CHECK(absl::StartsWith(error(phone), "template.channel:"));

  SECTION("the same name, channel and locale twice is ALREADY_EXISTS") {
    e.Create(Email("dup", "s", "h", "", "fr"));
    CHECK(absl::IsAlreadyExists(e.templates.Create(Email("dup", "s", "h", "", "fr")).status()));
    e.Create(Email("dup", "s", "h", "", "de"));  // another locale of the same message
  }
}

TEST_CASE("HTML bodies are escaped, and subjects, text, SMS and push are not") {
  Engine e;
  Customer c = Person("c1", "Tom & <Jerry>");
  (*c.mutable_attributes())["note"].set_string_value("\"quoted\" 'single'");
  e.AddCustomer(c);
  v1::Template email = e.Create(Email("escape", "Hi {{profile.first_name}}",
                                      "<p>{{profile.first_name}} {{attributes.note}} {{{profile.first_name}}}</p>",
                                      "Hi {{profile.first_name}}"));
  absl::StatusOr<v1::RenderedMessage> m = e.Render(email.id(), "c1");
  REQUIRE(m.ok());
  CHECK(m->subject() == "Hi Tom & <Jerry>");
  CHECK(m->text_body() == "Hi Tom & <Jerry>");
  CHECK(m->html_body() == "<p>Tom &amp; &lt;Jerry&gt; &quot;quoted&quot; &#39;single&#39; Tom & <Jerry></p>");

  v1::Template sms;
  sms.set_name("sms");
  sms.set_channel(CHANNEL_SMS);
  sms.set_text_body("{{profile.first_name}}: <b>50%</b> off");
  m = e.Render(e.Create(sms).id(), "c1");
  REQUIRE(m.ok());
  CHECK(m->text_body() == "Tom & <Jerry>: <b>50%</b> off");

  v1::Template push;
  push.set_name("push");
  push.set_channel(CHANNEL_PUSH);
  push.set_subject("For {{profile.first_name}}");
  push.set_text_body("A & B");
  m = e.Render(e.Create(push).id(), "c1");
  CHECK(m->subject() == "For Tom & <Jerry>");

  v1::Template web;
  web.set_name("web");
  web.set_channel(CHANNEL_WEB);
  web.set_subject("For {{profile.first_name}}");
  web.set_html_body("<h1>{{profile.first_name}}</h1>");
  m = e.Render(e.Create(web).id(), "c1");
  CHECK(m->subject() == "For Tom & <Jerry>");
  CHECK(m->html_body() == "<h1>Tom &amp; &lt;Jerry&gt;</h1>");
}

TEST_CASE("the customer's locale picks the template: fr-CA, then fr, then the default, then the one asked for") {
  Engine e;
  v1::Template fallback = e.Create(Email("news", "Hello", "en"));
  v1::Template fr = e.Create(Email("news", "Bonjour", "fr", "", "fr"));
  v1::Template fr_ca = e.Create(Email("news", "Allô", "fr-CA", "", "fr_ca"));
  CHECK(fr_ca.locale() == "fr-CA");  // written canonically
  e.Create(Email("other", "Salut", "other message", "", "fr-BE"));
  e.AddCustomer(Person("quebec", "A", "fr-CA"));
  e.AddCustomer(Person("paris", "B", "fr-FR"));
  e.AddCustomer(Person("belgium", "C", "fr-BE"));
  e.AddCustomer(Person("london", "D", "en-GB"));
  e.AddCustomer(Person("nobody", "E", ""));

  for (const std::string& asked : {fallback.id(), fr.id(), fr_ca.id()}) {
    CHECK(e.Render(asked, "quebec")->subject() == "Allô");
    CHECK(e.Render(asked, "quebec")->template_id() == fr_ca.id());
    CHECK(e.Render(asked, "paris")->subject() == "Bonjour");
    CHECK(e.Render(asked, "belgium")->subject() == "Bonjour");  // fr-BE is another message's
    CHECK(e.Render(asked, "london")->subject() == "Hello");
    CHECK(e.Render(asked, "nobody")->subject() == "Hello");
    CHECK(e.Render(asked, "nobody")->locale().empty());
  }
  SECTION("without a default variant, the template asked for") {
    REQUIRE(e.templates.Delete(fallback.id()).ok());
    CHECK(e.Render(fr_ca.id(), "london")->subject() == "Allô");
    CHECK(e.Render(fr.id(), "london")->subject() == "Bonjour");
  }
  CHECK(p::Templates::Pick({{"a", ""}, {"b", "zh-Hant"}, {"c", "zh-Hant-TW"}}, "zh_hant_tw").id == "c");
  CHECK(p::Templates::Pick({{"a", ""}, {"b", "zh-Hant"}, {"c", "zh-Hant-TW"}}, "zh-Hant-HK").id == "b");
}

TEST_CASE("money and dates are formatted for the template's locale with ICU") {
  CHECK(Spaces(p::FormatMoney(123450, "USD", "en-US")) == "$1,234.50");
  CHECK(Spaces(p::FormatMoney(123450, "EUR", "fr-FR")) == "1 234,50 €");
  CHECK(Spaces(p::FormatMoney(123450, "EUR", "de-DE")) == "1.234,50 €");
  CHECK(Spaces(p::FormatMoney(1999, "JPY", "en-US")) == "¥1,999");
  CHECK(p::DecimalAmount(-505, "EUR") == "-5.05");
  CHECK(p::DecimalAmount(1999, "JPY") == "1999");
  absl::Time t = absl::FromCivil(absl::CivilSecond(2026, 3, 5, 23, 30, 0), absl::UTCTimeZone());
  CHECK(Spaces(p::FormatDate(t, "en-US", "")) == "Mar 5, 2026");
  CHECK(Spaces(p::FormatDate(t, "fr-FR", "")) == "5 mars 2026");
  CHECK(Spaces(p::FormatDate(t, "de-DE", "")) == "05.03.2026");
  CHECK(Spaces(p::FormatDate(t, "en-US", "Asia/Tokyo")) == "Mar 6, 2026");  // the customer's day

  Engine e;
  Customer c = Person("c1", "Ann");
  c.mutable_behaviour()->mutable_total_spent()->set_amount_minor(123450);
  c.mutable_behaviour()->mutable_total_spent()->set_currency("EUR");
  *c.mutable_behaviour()->mutable_last_order_at() = ecrm::util::Ts(absl::ToUnixMicros(t));
  e.AddCustomer(c);
  const std::string body =
      "{{behaviour.total_spent_formatted}}|{{behaviour.total_spent.amount}} "
      "{{behaviour.total_spent.currency}}|{{behaviour.last_order_at_formatted}}|{{behaviour.last_order_at}}";
  for (auto [locale, expected] :
       {std::pair<std::string, std::string>{"en-US", "€1,234.50|1234.50 EUR|Mar 5, 2026|2026-03-05T23:30:00Z"},
        {"fr-FR", "1 234,50 €|1234.50 EUR|5 mars 2026|2026-03-05T23:30:00Z"},
        {"de-DE", "1.234,50 €|1234.50 EUR|05.03.2026|2026-03-05T23:30:00Z"}}) {
    v1::Template sms;
    sms.set_name("spent");
    sms.set_channel(CHANNEL_SMS);
    sms.set_locale(locale);
    sms.set_text_body(body);
    // The template's locale, not the customer's (who has none), formats.
    absl::StatusOr<v1::RenderedMessage> m = e.Render(e.Create(sms).id(), "c1");
    REQUIRE(m.ok());
    CHECK(Spaces(m->text_body()) == expected);
  }
}

TEST_CASE("offers, recommendations, vars and broadcast's placeholders") {
  Engine e;
  Customer c = Person("c1", "Ann");
  c.mutable_preferences()->add_interests("cycling");
  c.mutable_preferences()->add_interests("running");
  c.mutable_preferences()->set_preferred_channel(CHANNEL_SMS);
  (*c.mutable_attributes())["tier"].set_string_value("gold");
  (*c.mutable_attributes())["visits"].set_int_value(12);
  (*c.mutable_attributes())["vip"].set_bool_value(true);
  e.AddCustomer(c);
  v1::Template t =
      e.Create(Email("full", "{{#offers}}{{headline}} {{/offers}}",
                     "{{#recommendations}}<a href=\"{{url}}\">{{title}} {{price_formatted}}</a>{{/recommendations}}"
                     "{{#attributes.vip}}VIP {{attributes.tier}} {{attributes.visits}}{{/attributes.vip}}"
                     "{{#preferences.interests}}[{{.}}]{{/preferences.interests}} {{preferences.preferred_channel}} "
                     "{{vars.campaign}} <a href=\"{{unsubscribe_url}}\">unsubscribe</a>",
                     "", "en-GB"));
  v1::RenderMessageRequest req;
  req.set_template_id(t.id());
  req.set_customer_id("c1");
  v1::Offer* offer = req.add_offers();
  offer->set_id("o1");
  offer->set_headline("20% off");
  v1::Recommendation* rec = req.add_recommendations();
  rec->set_sku("SKU-1");
  rec->set_title("Helmet & lights");
  rec->set_url("https://shop.example/p/1?a=1&b=2");
  rec->mutable_price()->set_amount_minor(4999);
  rec->mutable_price()->set_currency("GBP");
  (*req.mutable_vars())["campaign"] = "spring";
  absl::StatusOr<v1::RenderedMessage> m = e.messages.Render(req);
  REQUIRE(m.ok());
  CHECK(m->subject() == "20% off ");
  CHECK(m->html_body() ==
        "<a href=\"https://shop.example/p/1?a=1&amp;b=2\">Helmet &amp; lights £49.99</a>VIP gold 12"
        "[cycling][running] sms spring <a href=\"{{unsubscribe_url}}\">unsubscribe</a>");
  CHECK(std::vector<std::string>(m->offer_ids().begin(), m->offer_ids().end()) == std::vector<std::string>{"o1"});
  CHECK(std::vector<std::string>(m->skus().begin(), m->skus().end()) == std::vector<std::string>{"SKU-1"});
  CHECK(m->missing_variables().empty());
}

TEST_CASE("a template that reads recommendations gets each customer's own from the model when none are given") {
  Engine e;
  e.AddCustomer(Person("c1", "Ann"));
  e.AddCustomer(Person("c2", "Bob"));
  p::Recommender model;
  const absl::Time t0 = absl::FromUnixSeconds(1'780'000'000);
  for (const char* buyer : {"x1", "x2", "x3"}) {
    REQUIRE(model.Purchase(buyer, "bike", t0).ok());
    REQUIRE(model.Purchase(buyer, "helmet", t0).ok());
  }
  REQUIRE(model.Purchase("x4", "tent", t0).ok());
  REQUIRE(model.Purchase("c1", "bike", t0).ok());
  p::Catalogue catalogue(nullptr, &model);
  p::Recommendations recommendations(model, catalogue, nullptr);
  e.messages.SetRecommendations(&recommendations);
  v1::Template t = e.Create(Email("recs", "Hi", "{{#recommendations}}[{{sku}} {{source}}]{{/recommendations}}"));
  absl::StatusOr<v1::RenderedMessage> m = e.Render(t.id(), "c1");
  REQUIRE(m.ok());
  CHECK(m->html_body() == "[helmet similar_items][tent popular]");
  CHECK(std::vector<std::string>(m->skus().begin(), m->skus().end()) == std::vector<std::string>{"helmet", "tent"});
  // Per customer in a batch: Bob bought nothing, so popular ones.
  v1::BatchRenderRequest batch;
  batch.set_template_id(t.id());
  batch.add_customer_ids("c1");
  batch.add_customer_ids("c2");
  absl::StatusOr<v1::BatchRenderResponse> b = e.messages.BatchRender(batch);
  REQUIRE(b.ok());
  REQUIRE(b->messages_size() == 2);
  CHECK(b->messages(0).html_body() == "[helmet similar_items][tent popular]");
  CHECK(b->messages(1).html_body() == "[bike popular][helmet popular][tent popular]");
  // The request's own win.
  v1::RenderMessageRequest given;
  given.set_template_id(t.id());
  given.set_customer_id("c1");
  given.add_recommendations()->set_sku("chosen");
  m = e.messages.Render(given);
  REQUIRE(m.ok());
  CHECK(m->html_body() == "[chosen ]");
}

TEST_CASE("a missing variable renders empty and is listed, or fails in strict mode") {
  Engine e;
  e.AddCustomer(Person("named", "Ann"));
  e.AddCustomer(Person("anonymous", ""));
  v1::Template t = e.Create(Email("m", "Hi {{profile.first_name}}",
                                  "<p>{{profile.first_name}} {{attributes.shoe_size}}{{#profile.nickname}}x"
                                  "{{/profile.nickname}}</p>"));
  absl::StatusOr<v1::RenderedMessage> m = e.Render(t.id(), "anonymous");
  REQUIRE(m.ok());
  CHECK(m->subject() == "Hi ");
  CHECK(m->html_body() == "<p> </p>");
  CHECK(std::vector<std::string>(m->missing_variables().begin(), m->missing_variables().end()) ==
        std::vector<std::string>{"profile.first_name", "attributes.shoe_size"});

  absl::StatusOr<v1::RenderedMessage> strict = e.Render(t.id(), "anonymous", /*strict=*/true);
  CHECK(absl::IsFailedPrecondition(strict.status()));
  CHECK(absl::StrContains(strict.status().message(), "{{profile.first_name}}"));
  CHECK(absl::IsFailedPrecondition(e.Render(t.id(), "named", true).status()));  // still no shoe size

  SECTION("in a batch, failures are listed per customer and the others rendered") {
    v1::Template hi = e.Create(Email("hi", "Hi {{profile.first_name}}", "x"));
    v1::BatchRenderRequest req;
    req.set_template_id(hi.id());
    for (const char* id : {"named", "anonymous", "ghost"}) req.add_customer_ids(id);
    req.set_strict(true);
    absl::StatusOr<v1::BatchRenderResponse> batch = e.messages.BatchRender(req);
    REQUIRE(batch.ok());
    REQUIRE(batch->messages_size() == 1);
    CHECK(batch->messages(0).customer_id() == "named");
    CHECK(batch->messages(0).subject() == "Hi Ann");
    CHECK(batch->failed().size() == 2);
    CHECK(absl::StrContains(batch->failed().at("anonymous"), "profile.first_name"));
    CHECK(absl::StrContains(batch->failed().at("ghost"), "does not exist"));
    CHECK(batch->failed_codes().at("anonymous") == static_cast<int>(absl::StatusCode::kFailedPrecondition));
    CHECK(batch->failed_codes().at("ghost") == static_cast<int>(absl::StatusCode::kNotFound));
    req.set_strict(false);
    batch = e.messages.BatchRender(req);
    CHECK(batch->messages_size() == 2);
    CHECK(batch->failed().size() == 1);
  }
}

TEST_CASE("customers come from the profile cache first, the information store for the rest") {
  Engine e;
  Customer cached = Person("cached", "FromCache");
  REQUIRE(e.cache.Put("cached", 1, cached.SerializeAsString()));
  e.AddCustomer(Person("stored", "FromStore"));
  v1::Template t = e.Create(Email("src", "{{profile.first_name}}", "x"));
  CHECK(e.Render(t.id(), "cached")->subject() == "FromCache");
  CHECK(e.directory.calls == 0);
  CHECK(e.Render(t.id(), "stored")->subject() == "FromStore");
  CHECK(e.directory.calls == 1);
  CHECK(absl::IsNotFound(e.Render(t.id(), "ghost").status()));
  CHECK(absl::IsNotFound(e.Render("tpl_ghost", "stored").status()));
  e.directory.down = true;
  CHECK(absl::IsUnavailable(e.Render(t.id(), "stored").status()));
  CHECK(e.Render(t.id(), "cached").ok());
  v1::BatchRenderRequest req;
  req.set_template_id(t.id());
  req.add_customer_ids("cached");
  req.add_customer_ids("stored");
  absl::StatusOr<v1::BatchRenderResponse> batch = e.messages.BatchRender(req);
  REQUIRE(batch.ok());
  CHECK(batch->messages_size() == 1);
  CHECK(absl::StrContains(batch->failed().at("stored"), "down"));
  CHECK(batch->failed_codes().at("stored") == static_cast<int>(absl::StatusCode::kUnavailable));
  CHECK(absl::IsInvalidArgument(e.Render("", "x").status()));
  CHECK(absl::IsInvalidArgument(e.messages.BatchRender(v1::BatchRenderRequest()).status()));
}

}  // namespace
