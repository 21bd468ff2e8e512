// ecrm-personalisation-bench: message rendering in process (no gRPC), as issue 15 sets the goals:
// "rendering alone >= 50,000 messages/s (a 5 KB HTML template with a loop of 10 products and 2
// offers, pre-parsed); BatchRender with profile, offers and recommendations fetched >= 10,000
// messages/s". One thread. JSON lines, each the median of --runs runs of --seconds:
//
//   render_preparsed   the HTML body's instruction list rendered against a context built once
//   baseline_copy      copying the rendered HTML into a string (the machine's floor, same run)
//   render_message     Messages::RenderFor: the customer's context built from the Customer
//                      (reflection, ICU money and dates) over the offers' and recommendations'
//                      (built once, as a batch does) and subject, text and HTML rendered: what
//                      each message of a batch costs
//   mstch_render       the same HTML with libmstch (Debian's libmstch-dev) from the same data as
//                      mstch maps: mstch parses the template on every render (it has no API to
//                      keep a parsed template)
//   batch_render       Messages::BatchRender of --batch customers: the template's variants and
//                      version read from SQLite, customers from the profile cache (in memory;
//                      serialized Customers parsed as from Redis), everything above
//   batch_render_redis (--redis-url) the same with customers in a real Redis: one MultiGet of
//                      the batch's profiles
//
// The rendered HTML of both renderers is compared once (the same bytes but for mstch's escaping
// of '/'), so the comparison is fair.
#include <prometheus/registry.h>

#include <cstdio>
#include <mstch/mstch.hpp>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "bench_util.h"
#include "context.h"
#include "customers.h"
#include "ecrm/config/flags.h"
#include "ecrm/util/util.h"
#include "messages.h"
#include "mustache.h"
#include "schema.h"
#include "templates.h"

namespace p = ecrm::personalisation;
namespace v1 = ecrm::personalisation::v1;

namespace {

// About 5 KB of HTML: a styled email shell, two offers and a grid of ten products.
std::string HtmlTemplate() {
  std::string html =
      "<!DOCTYPE html><html lang=\"{{locale}}\"><head><meta charset=\"utf-8\"><title>Your picks</title><style>"
      "body{margin:0;padding:0;background:#f4f4f4;font-family:Helvetica,Arial,sans-serif;color:#222}"
      ".wrap{max-width:640px;margin:0 auto;background:#fff}.hero{padding:24px;background:#0b6e4f;color:#fff}"
      ".offer{border:2px dashed #0b6e4f;margin:16px;padding:16px;border-radius:6px}.grid{display:flex;"
      "flex-wrap:wrap}.item{width:50%;box-sizing:border-box;padding:12px}.item img{width:100%;height:auto}"
      ".price{font-weight:bold;color:#0b6e4f}.foot{font-size:11px;color:#777;padding:24px}</style></head><body>"
      "<div class=\"wrap\"><div class=\"hero\"><h1>Hello {{profile.first_name}},</h1><p>We picked these for you "
      "in {{profile.address.city}}. As a {{attributes.tier}} member you have spent "
      "{{behaviour.total_spent_formatted}} with us since {{behaviour.first_order_at_formatted}}.</p></div>"
      "{{#offers}}<div class=\"offer\"><h2>{{headline}}</h2><p>{{name}}: {{percent_off}}% off until "
      "{{ends_at_formatted}}.</p><a href=\"https://shop.example.com/offers/{{id}}?utm_source=email\">Use it"
      "</a></div>{{/offers}}<div class=\"grid\">{{#recommendations}}<div class=\"item\"><a href=\"{{url}}\">"
      "<img src=\"https://cdn.example.com/p/{{sku}}.jpg\" alt=\"{{title}}\"></a><p>{{title}}</p><p "
      "class=\"price\">{{price_formatted}}</p></div>{{/recommendations}}</div>"
      "{{^recommendations}}<p>See what is new this week.</p>{{/recommendations}}<div class=\"foot\">";
  // Legal and footer text, as real emails carry.
  while (html.size() < 4800) {
    html +=
        "<p>You receive this email because you asked for news from Example Shop. Prices include VAT; offers "
        "cannot be combined and are valid while stocks last. Example Shop Ltd, 1 High Street, London.</p>";
  }
  html += "<a href=\"{{unsubscribe_url}}\">Unsubscribe</a></div></div></body></html>";
  return html;
}

ecrm::infostore::v1::Customer MakeCustomer(int i) {
  ecrm::infostore::v1::Customer c;
  c.set_id(absl::StrCat("c", i));
  c.set_version(1);
  auto* profile = c.mutable_profile();
  profile->set_first_name(absl::StrCat("Name", i));
  profile->set_last_name("Martin");
  profile->set_locale("en-GB");
  profile->set_time_zone("Europe/London");
  profile->mutable_address()->set_city("London");
  profile->mutable_address()->set_country("GB");
  (*c.mutable_attributes())["tier"].set_string_value("gold");
  (*c.mutable_attributes())["visits"].set_int_value(i % 50);
  c.mutable_preferences()->add_interests("cycling");
  c.mutable_behaviour()->set_order_count(3 + i % 7);
  c.mutable_behaviour()->mutable_total_spent()->set_amount_minor(12345 + i);
  c.mutable_behaviour()->mutable_total_spent()->set_currency("GBP");
  *c.mutable_behaviour()->mutable_first_order_at() = ecrm::util::Ts(1700000000000000 + int64_t{i} * 1000000);
  *c.mutable_behaviour()->mutable_last_order_at() = ecrm::util::Ts(1760000000000000);
  return c;
}

void AddInputs(google::protobuf::RepeatedPtrField<v1::Offer>* offers,
               google::protobuf::RepeatedPtrField<v1::Recommendation>* recs) {
  for (int i = 0; i < 2; ++i) {
    v1::Offer* o = offers->Add();
    o->set_id(absl::StrCat("offer-", i));
    o->set_name(absl::StrCat("Spring sale ", i));
    o->set_headline(i == 0 ? "20% off bikes & helmets" : "Free delivery this week");
    o->set_kind(v1::OFFER_KIND_PERCENT_OFF);
    o->set_percent_off(20);
    *o->mutable_ends_at() = ecrm::util::Ts(1770000000000000);
  }
  for (int i = 0; i < 10; ++i) {
    v1::Recommendation* r = recs->Add();
    r->set_sku(absl::StrCat("SKU-", 1000 + i));
    r->set_title(absl::StrCat("Product <", i, "> & accessories"));
    r->set_url(absl::StrCat("https://shop.example.com/p/SKU-", 1000 + i, "?ref=email&pos=", i));
    r->mutable_price()->set_amount_minor(1999 + 100 * i);
    r->mutable_price()->set_currency("GBP");
    r->set_score(1.0 / (i + 1));
    r->set_source("similar_items");
  }
}

// The same context as the engine's, as mstch nodes.
mstch::node ToMstch(const p::mustache::Value& v) {
  switch (v.kind()) {
    case p::mustache::Value::Kind::kNull:
      return std::string();
    case p::mustache::Value::Kind::kBool:
      return v.boolean();
    case p::mustache::Value::Kind::kString:
      return v.text();
    case p::mustache::Value::Kind::kList: {
      mstch::array a;
      for (const auto& item : v.items()) a.push_back(ToMstch(item));
      return a;
    }
    case p::mustache::Value::Kind::kMap: {
      mstch::map m;
      for (size_t i = 0; i < v.keys().size(); ++i) m[v.keys()[i]] = ToMstch(v.items()[i]);
      return m;
    }
  }
  return std::string();
}

}  // namespace

int main(int argc, char** argv) {
  int64_t runs = 5, batch = 1000;
  double seconds = 1.0;
  std::string dir = "/tmp", redis_url;
  ecrm::config::Flags flags("ecrm-personalisation-bench", "message rendering throughput, in process");
  flags.AddInt("runs", &runs, "runs of each measurement (the median is reported)");
  flags.AddDouble("seconds", &seconds, "length of each run");
  flags.AddInt("batch", &batch, "customers per BatchRender (at most 1,000)");
  flags.AddString("dir", &dir, "directory for the temporary SQLite database");
  flags.AddString("redis-url", &redis_url,
                  "BatchRender reads customers from this Redis (redis://host:port) instead of memory");
  if (std::optional<int> exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  const absl::Duration run_length = absl::Seconds(seconds);

  const std::string html = HtmlTemplate();
  v1::Template proto;
  proto.set_id("tpl_bench");
  proto.set_name("picks");
  proto.set_channel(ecrm::common::v1::CHANNEL_EMAIL);
  proto.set_locale("en-GB");
  proto.set_version(1);
  proto.set_subject("{{profile.first_name}}, {{#offers}}{{headline}} {{/offers}}");
  proto.set_text_body(
      "Hello {{profile.first_name}}, see your picks: {{#recommendations}}{{title}} "
      "{{price_formatted}} {{url}}\n{{/recommendations}}Unsubscribe: {{unsubscribe_url}}");
  proto.set_html_body(html);
  absl::StatusOr<std::shared_ptr<const p::CompiledTemplate>> compiled = p::Templates::Compile(proto);
  if (!compiled.ok()) {
    std::fprintf(stderr, "%s\n", compiled.status().ToString().c_str());
    return 1;
  }
  std::printf("{\"template_html_bytes\":%zu}\n", html.size());

  v1::RenderMessageRequest inputs_holder;
  AddInputs(inputs_holder.mutable_offers(), inputs_holder.mutable_recommendations());
  p::MessageInputs inputs{&inputs_holder.offers(), &inputs_holder.recommendations(), &inputs_holder.vars()};
  const ecrm::infostore::v1::Customer customer = MakeCustomer(7);
  const p::mustache::Value context = p::BuildContext(customer, inputs, "en-GB");
  const p::mustache::Value shared = p::SharedContext(inputs, "en-GB", customer.profile().time_zone());
  size_t sink = 0;

  // --- rendering alone, pre-parsed --------------------------------------------------------------
  p::mustache::RenderResult result;
  const p::mustache::RenderOptions html_options{p::mustache::Escape::kHtml, {}};
  std::vector<double> r;
  for (int64_t i = 0; i < runs; ++i) {
    r.push_back(ecrm::bench::OpsPerSecond(run_length, 100, [&] {
      for (int k = 0; k < 100; ++k) {
        (*compiled)->html_body.Render(context, html_options, result);
        sink += result.text.size();
      }
    }));
  }
  ecrm::bench::PrintResult("render_preparsed", "messages/s", r);
  const std::string ours = result.text;
  std::printf("{\"rendered_html_bytes\":%zu}\n", ours.size());

  // --- baseline: copying the rendered HTML (the floor any renderer pays to produce it) ------------
  r.clear();
  std::string copy;
  for (int64_t i = 0; i < runs; ++i) {
    r.push_back(ecrm::bench::OpsPerSecond(run_length, 100, [&] {
      for (int k = 0; k < 100; ++k) {
        copy.assign(ours.data(), ours.size());
        sink += copy.size() + static_cast<unsigned char>(copy[k]);
      }
    }));
  }
  ecrm::bench::PrintResult("baseline_copy", "messages/s", r);

  // --- the whole message: context from the Customer, three parts -------------------------------
  r.clear();
  for (int64_t i = 0; i < runs; ++i) {
    r.push_back(ecrm::bench::OpsPerSecond(run_length, 10, [&] {
      for (int k = 0; k < 10; ++k) {
        absl::StatusOr<v1::RenderedMessage> m = p::Messages::RenderFor(**compiled, customer, shared, inputs, false);
        sink += m->html_body().size();
      }
    }));
  }
  ecrm::bench::PrintResult("render_message", "messages/s", r);

  // --- libmstch on the same template and data ---------------------------------------------------
  {
    const mstch::node mctx = ToMstch(context);
    // mstch also escapes '/' (as &#x2F;); otherwise the output is the same.
    std::string theirs = absl::StrReplaceAll(mstch::render(html, mctx), {{"&#x2F;", "/"}});
    std::printf("{\"mstch_same_output_but_slashes\":%s}\n", theirs == ours ? "true" : "false");
    r.clear();
    for (int64_t i = 0; i < runs; ++i) {
      r.push_back(ecrm::bench::OpsPerSecond(run_length, 10, [&] {
        for (int k = 0; k < 10; ++k) sink += mstch::render(html, mctx).size();
      }));
    }
    ecrm::bench::PrintResult("mstch_render", "messages/s", r);
  }

  // --- BatchRender through the domain: SQLite for the template, the cache for customers -------
  {
    std::string path = absl::StrCat(dir, "/ecrm-personalisation-bench-", getpid(), ".db");
    auto db = ecrm::sql::Database::Open("sqlite://" + path);
    if (!db.ok() || !(*db)->Migrate("personalisation", p::kMigrations).ok()) {
      std::fprintf(stderr, "cannot open %s\n", path.c_str());
      return 1;
    }
    prometheus::Registry registry;
    p::PersonalisationMetrics metrics(registry);
    // Customers in memory, or in a real Redis (--redis-url): one MultiGet per batch.
    ecrm::cache::InMemoryProfileCache memory;
    std::unique_ptr<ecrm::cache::RedisClient> redis;
    std::unique_ptr<ecrm::cache::CacheMetrics> cache_metrics;
    std::unique_ptr<ecrm::cache::RedisProfileCache> redis_cache;
    ecrm::cache::ProfileCache* cache = &memory;
    if (!redis_url.empty()) {
      absl::StatusOr<ecrm::cache::RedisOptions> options = ecrm::cache::ParseRedisUrl(redis_url);
      if (!options.ok()) {
        std::fprintf(stderr, "%s\n", options.status().ToString().c_str());
        return 1;
      }
      options->command_timeout = absl::Seconds(2);
      redis = std::make_unique<ecrm::cache::RedisClient>(*options);
      cache_metrics = std::make_unique<ecrm::cache::CacheMetrics>(registry);
      redis_cache = std::make_unique<ecrm::cache::RedisProfileCache>(
          *redis, *cache_metrics, ecrm::cache::ProfileCacheOptions{.prefix = "ecrm-bench:profile"});
      cache = redis_cache.get();
    }
    p::Customers customers(cache, nullptr, metrics);
    p::Templates templates(**db, metrics);
    p::Messages messages(templates, customers, metrics);
    absl::StatusOr<v1::Template> saved = templates.Create(proto);
    if (!saved.ok()) {
      std::fprintf(stderr, "%s\n", saved.status().ToString().c_str());
      return 1;
    }
    v1::BatchRenderRequest req;
    req.set_template_id(saved->id());
    AddInputs(req.mutable_offers(), req.mutable_recommendations());
    for (int i = 0; i < batch; ++i) {
      ecrm::infostore::v1::Customer c = MakeCustomer(i);
      cache->Put(c.id(), 1, c.SerializeAsString());
      req.add_customer_ids(c.id());
    }
    r.clear();
    for (int64_t i = 0; i < runs; ++i) {
      r.push_back(ecrm::bench::OpsPerSecond(run_length, batch, [&] {
        absl::StatusOr<v1::BatchRenderResponse> out = messages.BatchRender(req);
        if (!out.ok() || out->messages_size() != batch) {
          std::fprintf(stderr, "BatchRender failed: %s\n", out.status().ToString().c_str());
          std::exit(1);
        }
        sink += out->messages_size();
      }));
    }
    ecrm::bench::PrintResult(redis ? "batch_render_redis" : "batch_render", "messages/s", r);
    std::remove(path.c_str());
    std::remove((path + "-wal").c_str());
    std::remove((path + "-shm").c_str());
  }
  std::printf("{\"sink\":%zu}\n", sink);
  return 0;
}
