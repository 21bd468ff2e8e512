// `ecrmctl demo`: the suite's main job. Seeds a synthetic business into the running suite,
// scores it, runs a win-back campaign with a control group through the local SMTP server,
// simulates the customers' answers with a known true uplift, and prints the campaign report.
// Everything it writes is keyed (emails, skus, event ids, idempotency keys), so running it
// again adds one more campaign and nothing twice.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <iostream>
#include <random>
#include <set>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "cli.h"
#include "ecrm/broadcast/v1/broadcast.grpc.pb.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/personalisation/v1/personalisation.grpc.pb.h"
#include "ecrm/segmentation/v1/segmentation.grpc.pb.h"
#include "ecrm/transaction/v1/transaction.grpc.pb.h"
#include "google/protobuf/util/time_util.h"
#include "mailbox.h"

namespace ecrm::ctl {
namespace {

namespace bc = ecrm::broadcast::v1;
namespace is = ecrm::infostore::v1;
namespace ps = ecrm::personalisation::v1;
namespace sg = ecrm::segmentation::v1;
namespace tx = ecrm::transaction::v1;
using google::protobuf::util::TimeUtil;

constexpr const char* kFirstNames[] = {"Ada",     "Grace",  "Alan",  "Edsger", "Barbara", "Ken",   "Margaret", "Linus",
                                       "Frances", "Dennis", "Radia", "Bjarne", "Sophie",  "Tim",   "Hedy",     "Claude",
                                       "Amélie",  "Jürgen", "Chloé", "Élodie", "Lukas",   "Marie", "Noah",     "Léa"};
constexpr const char* kLastNames[] = {"Lovelace", "Hopper",      "Turing", "Dijkstra", "Liskov",  "Thompson",
                                      "Hamilton", "Torvalds",    "Allen",  "Ritchie",  "Perlman", "Stroustrup",
                                      "Wilson",   "Berners-Lee", "Lamarr", "Shannon",  "Dubois",  "Schmidt",
                                      "Martin",   "Bernard",     "Müller"};
constexpr const char* kPlaces[][2] = {{"en-GB", "Europe/London"},   {"en-US", "America/New_York"},
                                      {"fr-FR", "Europe/Paris"},    {"de-DE", "Europe/Berlin"},
                                      {"fr-CA", "America/Toronto"}, {"en-US", "America/Los_Angeles"}};
constexpr const char* kCategories[] = {"coffee", "tea",    "kitchen", "books", "garden",
                                       "toys",   "beauty", "outdoor", "music", "stationery"};
constexpr const char* kCells[] = {
    "champions",      "loyal",   "potential_loyalist", "new",         "promising", "need_attention",
    "about_to_sleep", "at_risk", "cannot_lose",        "hibernating", "lost"};

struct DemoOptions {
  int64_t customers = 20000;
  int64_t products = 500;
  int64_t seed = 1;
  double base_conversion = 0.06;  // control's chance of buying within the window
  double true_uplift = 0.04;      // what the campaign adds, absolute
  std::string mail_dir;           // the local SMTP server's mailbox: opens and clicks follow its mail
  std::string tracking_url = "http://127.0.0.1:8080";  // broadcast's --public-base-url
  double open_rate = 0.40;                             // of the mails, the share opened
  double click_rate = 0.12;                            // of the mails, the share clicked (all of them opened too)
};

struct Order {
  absl::Time at;
  std::vector<int> products;
};

struct Customer {
  std::string email;
  std::string id;  // once upserted
  int place = 0;
  int persona = 0;  // 0 loyal, 1 regular, 2 lapsing, 3 one-off
  int favourite[2] = {0, 0};
  bool consents = true;
  std::vector<Order> orders;
};

std::string Money(int64_t minor) { return absl::StrFormat("€%s", absl::StrFormat("%.2f", minor / 100.0)); }

std::string Count(int64_t n) {
  std::string digits = absl::StrCat(n < 0 ? -n : n), out = n < 0 ? "-" : "";
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

class Demo {
 public:
  Demo(Invocation& inv, DemoOptions options) : inv_(inv), o_(options), rng_(static_cast<uint64_t>(options.seed)) {}

  int Run() {
    began_ = absl::Now();
    std::cout << "ecrm demo: a synthetic shop of " << Count(o_.customers) << " customers, " << Count(o_.products)
              << " products and 12 months of orders (seed " << o_.seed << ")\n\n";
    if (!Check()) return kUnavailable;
    Generate();
    if (!Step("customers, profiles and consents -> information store", [&] { return LoadCustomers(); })) return kFailed;
    if (!Step("catalogue -> transaction engine", [&] { return LoadProducts(); })) return kFailed;
    if (!Step("12 months of purchases and web visits -> information store", [&] { return LoadHistory(); }))
      return kFailed;
    if (!Step("segmentation follows the change feed", [&] { return WaitForFeatures(); })) return kFailed;
    if (!Step("RFM and lifetime value scores", [&] { return WaitForScores(); })) return kFailed;
    if (!Step("the recommendation model learns the orders, and reads the catalogue", [&] { return WaitForModel(); })) {
      return kFailed;
    }
    if (!Step("win-back segment, email template and campaign", [&] { return CreateCampaign(); })) return kFailed;
    if (!Step("campaign launched: the treatment group is mailed through the local SMTP server",
              [&] { return Send(); })) {
      return kFailed;
    }
    if (!o_.mail_dir.empty() &&
        !Step("customers read their mail: open pixels and tracked links, from the SMTP server's mailbox",
              [&] { return ReadMail(); })) {
      return kFailed;
    }
    if (!Step("customers answer: orders through the transaction engine", [&] { return Respond(); })) return kFailed;
    if (!Step("the campaign report counts them", [&] { return WaitForReport(); })) return kFailed;
    PrintReport();
    return kOk;
  }

 private:
  template <typename Fn>
  bool Step(const std::string& what, Fn fn) {
    const absl::Time t = absl::Now();
    std::cout << "==> " << what << std::flush;
    std::string detail;
    const bool ok = fn();
    std::cout << "  (" << absl::StrFormat("%.1f s", absl::ToDoubleSeconds(absl::Now() - t)) << ")"
              << (note_.empty() ? "" : absl::StrCat("\n    ", note_)) << "\n";
    note_.clear();
    if (!ok) std::cerr << "ecrmctl demo: " << error_ << "\n";
    return ok;
  }

  bool Fail(const std::string& what, const grpc::Status& s) {
    error_ = absl::StrCat(what, ": ", s.error_message(), " (", static_cast<int>(s.error_code()), ")");
    return false;
  }

  std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(absl::ToChronoTime(inv_.Deadline()));
    return ctx;
  }

  // Runs fn(i) for i in [0, n) on `threads` threads; the first failure stops it.
  bool Parallel(int64_t n, const std::function<grpc::Status(int64_t)>& fn, const std::string& what, int threads = 8) {
    std::atomic<int64_t> next = 0;
    std::atomic<bool> failed = false;
    std::mutex mu;
    grpc::Status first;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&] {
        for (int64_t i; !failed && (i = next++) < n;) {
          grpc::Status s = fn(i);
          for (int attempt = 0; s.error_code() == grpc::StatusCode::UNAVAILABLE && attempt < 5; ++attempt) {
            std::this_thread::sleep_for(std::chrono::milliseconds(200 << attempt));
            s = fn(i);
          }
          if (!s.ok() && !failed.exchange(true)) {
            std::lock_guard lock(mu);
            first = s;
          }
        }
      });
    }
    for (auto& t : pool) t.join();
    return failed ? Fail(what, first) : true;
  }

  bool Check() {
    for (const auto& [engine, address] : inv_.addresses) {
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(3)));
      is::ListCustomersRequest req;  // any call will do: the channel connects or not
      auto ch = inv_.Channel(engine);
      if (!ch->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(5)))) {
        std::cerr << "ecrmctl demo: the " << engine << " engine does not answer at " << address
                  << ": start the suite first (scripts/run-suite.sh)\n";
        return false;
      }
    }
    return true;
  }

  void Generate() {
    const absl::Time now = absl::Now();
    const absl::Time start = now - absl::Hours(24 * 365);
    prices_.resize(static_cast<size_t>(o_.products));
    std::uniform_real_distribution<double> price(0, 1);
    for (auto& p : prices_) p = 500 + static_cast<int64_t>(price(rng_) * 19500);  // €5 – €200
    customers_.resize(static_cast<size_t>(o_.customers));
    for (size_t i = 0; i < customers_.size(); ++i) {
      // Each customer from their own stream: who they are does not depend on anyone's history
      // (a second run, minutes later, makes the same customers and so the same requests).
      std::mt19937_64 rng(static_cast<uint64_t>(o_.seed) * 1000003u + i);
      auto u = [&rng] { return std::uniform_real_distribution<double>(0, 1)(rng); };
      Customer& c = customers_[i];
      c.email = absl::StrCat("customer", i, "@shop.example");
      c.place = static_cast<int>(u() * std::size(kPlaces));
      const double r = u();
      c.persona = r < 0.2 ? 0 : r < 0.5 ? 1 : r < 0.8 ? 2 : 3;
      c.favourite[0] = static_cast<int>(u() * std::size(kCategories));
      c.favourite[1] = static_cast<int>(u() * std::size(kCategories));
      c.consents = u() < 0.88;
      const double mean_gap_days[] = {25, 55, 40, 0};
      absl::Time end = now - absl::Hours(24);
      if (c.persona == 2) end = now - absl::Hours(24 * (100 + u() * 150));  // stopped 100-250 days ago
      absl::Time t = start + absl::Hours(24 * u() * (c.persona == 3 ? 360 : 40));
      while (t < end) {
        const int month = absl::ToCivilMonth(t, absl::UTCTimeZone()).month();
        const bool season = month == 11 || month == 12;
        if (c.persona == 3 || u() < (season ? 1.0 : 0.65)) {  // more orders before Christmas
          Order order{t, {}};
          const int lines = 1 + static_cast<int>(u() * 3);
          for (int l = 0; l < lines; ++l) order.products.push_back(Product(c, u));
          c.orders.push_back(std::move(order));
        }
        if (c.persona == 3) break;
        t += absl::Hours(24 * mean_gap_days[c.persona] * -std::log(1 - u() * 0.999));
      }
    }
  }

  // A product, from the customer's favourite categories four times out of five.
  template <typename U>
  int Product(const Customer& c, U& u) {
    const int per_category = static_cast<int>(o_.products / static_cast<int64_t>(std::size(kCategories)));
    const int category = u() < 0.8 ? c.favourite[u() < 0.5 ? 0 : 1] : static_cast<int>(u() * std::size(kCategories));
    return category * per_category + static_cast<int>(u() * per_category);
  }

  std::string Sku(int p) const { return absl::StrFormat("%s-%04d", kCategories[p / (o_.products / 10)], p); }

  bool LoadCustomers() {
    auto store = is::InformationStore::NewStub(inv_.Channel("infostore"));
    std::atomic<int64_t> consented = 0;
    bool ok = Parallel(
        o_.customers,
        [&](int64_t i) {
          Customer& c = customers_[static_cast<size_t>(i)];
          is::UpsertCustomerRequest req;
          auto* id = req.add_identifiers();
          id->set_type(common::v1::IDENTIFIER_TYPE_EMAIL);
          id->set_value(c.email);
          auto* p = req.mutable_profile();
          p->set_first_name(kFirstNames[static_cast<size_t>(i * 7 + 3) % std::size(kFirstNames)]);
          p->set_last_name(kLastNames[static_cast<size_t>(i * 11 + 5) % std::size(kLastNames)]);
          p->set_locale(kPlaces[c.place][0]);
          p->set_time_zone(kPlaces[c.place][1]);
          (*req.mutable_attributes())["persona"].set_string_value(
              std::array{"loyal", "regular", "lapsing", "one_off"}[static_cast<size_t>(c.persona)]);
          req.set_source(common::v1::TOUCHPOINT_WEB);
          req.set_request_id(absl::StrCat("demo-customer-", i));
          is::UpsertCustomerResponse resp;
          grpc::Status s = store->UpsertCustomer(Ctx().get(), req, &resp);
          if (!s.ok()) return s;
          c.id = resp.customer().id();
          is::UpdateConsentRequest consent;
          consent.mutable_customer()->set_customer_id(c.id);
          consent.set_channel(common::v1::CHANNEL_EMAIL);
          consent.set_purpose(common::v1::PURPOSE_MARKETING);
          consent.set_status(c.consents ? is::CONSENT_STATUS_GRANTED : is::CONSENT_STATUS_DENIED);
          consent.set_source(common::v1::TOUCHPOINT_WEB);
          consent.set_evidence("demo: newsletter box at sign-up");
          is::Customer updated;
          consented += c.consents;
          return store->UpdateConsent(Ctx().get(), consent, &updated);
        },
        "loading customers");
    note_ = absl::StrCat(Count(o_.customers), " customers in ", std::size(kPlaces), " locales and time zones; ",
                         Count(consented), " agreed to marketing email");
    return ok;
  }

  bool LoadProducts() {
    auto shop = tx::Transaction::NewStub(inv_.Channel("transaction"));
    return Parallel(
        o_.products,
        [&](int64_t i) {
          const int p = static_cast<int>(i);
          tx::UpsertProductRequest req;
          auto* product = req.mutable_product();
          product->set_sku(Sku(p));
          product->set_title(absl::StrCat(kCategories[p / (o_.products / 10)], " no. ", p));
          product->set_category(kCategories[p / (o_.products / 10)]);
          product->mutable_price()->set_amount_minor(prices_[static_cast<size_t>(p)]);
          product->mutable_price()->set_currency("EUR");
          product->set_active(true);
          tx::Product out;
          return shop->UpsertProduct(Ctx().get(), req, &out);
        },
        "loading the catalogue");
  }

  // Purchases as the shop's order history (events with their lines, as the transaction engine
  // writes them), and product page views of the last 90 days.
  bool LoadHistory() {
    std::vector<is::Event> events;
    auto u = [this] { return std::uniform_real_distribution<double>(0, 1)(rng_); };
    const absl::Time now = absl::Now();
    int64_t orders = 0;
    for (size_t i = 0; i < customers_.size(); ++i) {
      const Customer& c = customers_[i];
      for (size_t k = 0; k < c.orders.size(); ++k) {
        const Order& order = c.orders[k];
        is::Event e;
        e.set_event_id(absl::StrCat("demo-order-", i, "-", k));
        e.mutable_customer()->set_customer_id(c.id);
        e.set_type("purchase");
        *e.mutable_occurred_at() = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(order.at));
        e.set_touchpoint(common::v1::TOUCHPOINT_WEB);
        int64_t total = 0;
        std::vector<std::string> skus;
        for (int p : order.products) {
          total += prices_[static_cast<size_t>(p)];
          skus.push_back(Sku(p));
        }
        e.mutable_amount()->set_amount_minor(total);
        e.mutable_amount()->set_currency("EUR");
        auto& props = *e.mutable_properties();
        props["order_id"].set_string_value(absl::StrCat("hist-", i, "-", k));
        props["lines"].set_int_value(static_cast<int64_t>(skus.size()));
        props["units"].set_int_value(static_cast<int64_t>(skus.size()));
        props["skus"].set_string_value(absl::StrJoin(skus, ","));
        events.push_back(std::move(e));
        ++orders;
      }
      const int views = c.persona == 2 ? 0 : static_cast<int>(u() * 4);
      for (int k = 0; k < views; ++k) {
        is::Event e;
        e.set_event_id(absl::StrCat("demo-view-", i, "-", k));
        e.mutable_customer()->set_customer_id(c.id);
        e.set_type("product_viewed");
        *e.mutable_occurred_at() =
            TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(now - absl::Hours(24 * 90 * u())));
        e.set_touchpoint(common::v1::TOUCHPOINT_WEB);
        (*e.mutable_properties())["sku"].set_string_value(Sku(Product(c, u)));
        events.push_back(std::move(e));
      }
    }
    auto store = is::InformationStore::NewStub(inv_.Channel("infostore"));
    constexpr int64_t kBatch = 1000;
    const int64_t batches = (static_cast<int64_t>(events.size()) + kBatch - 1) / kBatch;
    bool ok = Parallel(
        batches,
        [&](int64_t b) {
          is::RecordEventsRequest req;
          for (int64_t i = b * kBatch; i < std::min<int64_t>((b + 1) * kBatch, static_cast<int64_t>(events.size()));
               ++i) {
            *req.add_events() = events[static_cast<size_t>(i)];
          }
          auto ctx = Ctx();
          is::RecordEventsResponse resp;
          auto writer = store->RecordEvents(ctx.get(), &resp);
          writer->Write(req);
          writer->WritesDone();
          return writer->Finish();
        },
        "recording the history", 2);
    note_ = absl::StrCat(Count(orders),
                         " orders (more in November and December; loyal, regular, lapsing and one-off "
                         "buyers) and ",
                         Count(static_cast<int64_t>(events.size()) - orders), " product views");
    return ok;
  }

  // Polls `done` every 200 ms for up to `timeout`.
  bool Until(const std::function<bool()>& done, absl::Duration timeout, const std::string& what) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!done()) {
      if (absl::Now() > deadline) {
        error_ = absl::StrCat(what, " did not happen within ", absl::FormatDuration(timeout),
                              error_.empty() ? "" : absl::StrCat(": ", error_));
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return true;
  }

  absl::StatusOr<int64_t> Preview(const std::string& rule) {
    auto seg = sg::Segmentation::NewStub(inv_.Channel("segmentation"));
    sg::PreviewSegmentRequest req;
    req.set_rule(rule);
    sg::PreviewSegmentResponse resp;
    grpc::Status s = seg->PreviewSegment(Ctx().get(), req, &resp);
    if (!s.ok()) return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    return resp.count();
  }

  bool WaitForFeatures() {
    int64_t buyers = 0;
    for (const Customer& c : customers_) buyers += !c.orders.empty();
    // The newest history event of every buyer has reached segmentation when each buyer's last
    // order is where the history says.
    return Until(
        [&] {
          absl::StatusOr<int64_t> n = Preview("orders.count >= 1");
          if (!n.ok()) error_ = std::string(n.status().message());
          note_ = absl::StrCat(n.ok() ? Count(*n) : "?", " of ", Count(buyers), " buyers seen");
          return n.ok() && *n >= buyers;
        },
        absl::Minutes(2), "segmentation catching up with the information store");
  }

  bool WaitForScores() {
    auto seg = sg::Segmentation::NewStub(inv_.Channel("segmentation"));
    const absl::Time loaded = absl::Now();
    const std::string probe = customers_.front().id;
    if (!Until(
            [&] {
              sg::GetCustomerScoresRequest req;
              req.set_customer_id(probe);
              sg::CustomerScores scores;
              grpc::Status s = seg->GetCustomerScores(Ctx().get(), req, &scores);
              return s.ok() && TimeUtil::TimestampToMicroseconds(scores.computed_at()) > absl::ToUnixMicros(loaded);
            },
            absl::Minutes(2), "a scoring run over the loaded history")) {
      return false;
    }
    std::vector<std::string> cells;
    for (const char* cell : kCells) {
      absl::StatusOr<int64_t> n = Preview(absl::StrCat("rfm.cell == \"", cell, "\""));
      if (n.ok() && *n > 0) cells.push_back(absl::StrCat(cell, " ", Count(*n)));
    }
    note_ = absl::StrCat("RFM cells: ", absl::StrJoin(cells, ", "));
    return true;
  }

  // Personalisation learns every order from the change feed and reads the catalogue from the
  // transaction engine every --catalogue-refresh: both in, the mail can recommend products.
  bool WaitForModel() {
    auto pers = ps::Personalisation::NewStub(inv_.Channel("personalisation"));
    int64_t orders = 0;
    for (const Customer& c : customers_) orders += static_cast<int64_t>(c.orders.size());
    ps::ModelInfo info;
    if (!Until(
            [&] {
              grpc::Status s = pers->GetModelInfo(Ctx().get(), ps::GetModelInfoRequest(), &info);
              if (!s.ok()) error_ = s.error_message();
              return s.ok() && info.orders() >= orders && info.catalogue_products() >= o_.products;
            },
            absl::Minutes(2), "the recommendation model learning every order and the catalogue")) {
      return false;
    }
    note_ = absl::StrCat(Count(info.orders()), " orders, ", Count(info.item_pairs()), " item pairs, ",
                         Count(info.catalogue_products()), " products in the catalogue copy");
    return true;
  }

  bool CreateCampaign() {
    auto seg = sg::Segmentation::NewStub(inv_.Channel("segmentation"));
    auto pers = ps::Personalisation::NewStub(inv_.Channel("personalisation"));
    // The segment: regular buyers who have not bought for three months.
    const std::string name = "lapsed-regulars";
    sg::CreateSegmentRequest create;
    create.mutable_segment()->set_name(name);
    create.mutable_segment()->set_description("bought at least twice, but not in the last 90 days");
    create.mutable_segment()->set_rule("orders.count >= 2 && days_since(orders.last_at) > 90");
    sg::Segment segment;
    grpc::Status s = seg->CreateSegment(Ctx().get(), create, &segment);
    if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS) {  // an earlier run made it
      sg::ListSegmentsRequest list;
      list.set_page_size(1000);
      sg::ListSegmentsResponse segments;
      if (s = seg->ListSegments(Ctx().get(), list, &segments); !s.ok()) return Fail("listing segments", s);
      for (const auto& x : segments.segments()) {
        if (x.name() == name) segment = x;
      }
    } else if (!s.ok()) {
      return Fail("creating the segment", s);
    }
    segment_id_ = segment.id();
    // The offer, decided per customer by personalisation for the campaign's placement.
    ps::ListOffersRequest offers;
    offers.set_page_size(1000);
    ps::ListOffersResponse listed;
    if (s = pers->ListOffers(Ctx().get(), offers, &listed); !s.ok()) return Fail("listing offers", s);
    bool have_offer = false;
    for (const auto& x : listed.offers()) have_offer = have_offer || x.name() == "comeback-15";
    if (!have_offer) {  // an earlier run made it otherwise
      ps::CreateOfferRequest create_offer;
      ps::Offer* o = create_offer.mutable_offer();
      o->set_name("comeback-15");
      o->set_headline("15% off your next order with the code COMEBACK15");
      o->set_kind(ps::OFFER_KIND_PERCENT_OFF);
      o->set_percent_off(15);
      o->add_segment_ids(segment_id_);
      o->add_channels(common::v1::CHANNEL_EMAIL);
      o->add_placements("win-back-email");
      o->set_priority(10);
      o->set_active(true);
      ps::Offer created_offer;
      if (s = pers->CreateOffer(Ctx().get(), create_offer, &created_offer); !s.ok()) {
        return Fail("creating the offer", s);
      }
    }
    // The message, rendered per customer by personalisation: their name, their offer and the
    // products the recommendation model picks for them.
    ps::CreateTemplateRequest tpl;
    auto* t = tpl.mutable_template_();
    t->set_name("win-back");
    t->set_channel(common::v1::CHANNEL_EMAIL);
    t->set_subject("We miss you, {{profile.first_name}}");
    t->set_text_body(
        "Hello {{profile.first_name}},\n\nit has been a while.{{#offers}} {{headline}}.{{/offers}}\n\n"
        "Picked for you:\n{{#recommendations}}- {{title}}\n{{/recommendations}}\nUnsubscribe: {{unsubscribe_url}}\n");
    t->set_html_body(
        "<p>Hello {{profile.first_name}},</p><p>it has been a while.{{#offers}} <b>{{headline}}</b>.{{/offers}}</p>"
        "<p>Picked for you:</p><ul>{{#recommendations}}<li><a href=\"https://shop.example/p/{{sku}}\">{{title}}</a>"
        "</li>{{/recommendations}}</ul><p><a href=\"https://shop.example/?code=COMEBACK15\">Shop now</a></p>"
        "<p><small><a href=\"{{unsubscribe_url}}\">Unsubscribe</a></small></p>");
    ps::Template saved;
    s = pers->CreateTemplate(Ctx().get(), tpl, &saved);
    if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
      ps::ListTemplatesRequest list;
      list.set_page_size(1000);
      ps::ListTemplatesResponse templates;
      if (s = pers->ListTemplates(Ctx().get(), list, &templates); !s.ok()) return Fail("listing templates", s);
      for (const auto& x : templates.templates()) {
        if (x.name() == t->name() && x.locale().empty()) saved = x;
      }
    } else if (!s.ok()) {
      return Fail("saving the template", s);
    }
    // The campaign.
    sg::CreateCampaignRequest campaign;
    auto* c = campaign.mutable_campaign();
    c->set_name(absl::StrCat("win-back ", absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::Now(), absl::UTCTimeZone())));
    c->set_type(sg::CAMPAIGN_TYPE_ONE_OFF);
    c->add_include_segment_ids(segment_id_);
    c->mutable_channel_policy()->add_channels(common::v1::CHANNEL_EMAIL);
    c->set_template_id(saved.id());
    c->set_placement("win-back-email");
    c->set_control_fraction(0.2);
    c->set_goal_event_type("purchase");
    c->mutable_attribution_window()->set_seconds(14 * 24 * 3600);
    sg::Campaign created;
    if (s = seg->CreateCampaign(Ctx().get(), campaign, &created); !s.ok()) return Fail("creating the campaign", s);
    campaign_ = created;
    note_ =
        absl::StrCat("segment \"", name, "\" (", segment_id_, "): orders.count >= 2 && days_since(orders.last_at) > 90",
                     "\n    offer comeback-15, template ", saved.id(), " (name, offer, recommendations), campaign ",
                     created.id(), " with a 20% control group");
    return true;
  }

  bool Send() {
    auto seg = sg::Segmentation::NewStub(inv_.Channel("segmentation"));
    auto bcast = bc::Broadcast::NewStub(inv_.Channel("broadcast"));
    sg::LaunchCampaignRequest launch;
    launch.set_id(campaign_.id());
    launch.set_request_id(absl::StrCat("demo-launch-", campaign_.id()));
    if (grpc::Status s = seg->LaunchCampaign(Ctx().get(), launch, &campaign_); !s.ok()) return Fail("launching", s);
    // Who was addressed: the segment's members now (nothing changes them meanwhile).
    sg::ListSegmentMembersRequest members;
    members.set_segment_id(segment_id_);
    members.set_page_size(10000);
    for (;;) {
      sg::ListSegmentMembersResponse page;
      if (grpc::Status s = seg->ListSegmentMembers(Ctx().get(), members, &page); !s.ok()) return Fail("members", s);
      audience_.insert(page.customer_ids().begin(), page.customer_ids().end());
      if (page.next_page_token().empty()) break;
      members.set_page_token(page.next_page_token());
    }
    bc::BroadcastJob job;
    if (!Until(
            [&] {
              bc::GetBroadcastRequest req;
              req.set_id(campaign_.broadcast_id());
              grpc::Status s = bcast->GetBroadcast(Ctx().get(), req, &job);
              if (!s.ok()) error_ = s.error_message();
              return s.ok() && job.state() == bc::BROADCAST_STATE_COMPLETED;
            },
            absl::Minutes(3), "the broadcast completing")) {
      return false;
    }
    // The treatment group: everyone the broadcast had a delivery for.
    bc::ListDeliveriesRequest list;
    list.set_broadcast_id(campaign_.broadcast_id());
    list.set_page_size(1000);
    for (;;) {
      bc::ListDeliveriesResponse page;
      if (grpc::Status s = bcast->ListDeliveries(Ctx().get(), list, &page); !s.ok()) return Fail("deliveries", s);
      for (const auto& d : page.deliveries()) {
        treatment_.insert(d.customer_id());
        if (d.state() == bc::DELIVERY_STATE_SENT || d.state() == bc::DELIVERY_STATE_DELIVERED) sent_.insert(d.id());
      }
      if (page.next_page_token().empty()) break;
      list.set_page_token(page.next_page_token());
    }
    std::vector<std::string> states;
    for (const auto& [state, n] : job.by_state()) states.push_back(absl::StrCat(n, " ", state));
    note_ = absl::StrCat("audience ", Count(static_cast<int64_t>(audience_.size())), ": ",
                         Count(static_cast<int64_t>(treatment_.size())), " mailed (", absl::StrJoin(states, ", "),
                         "), the rest held out as control");
    return true;
  }

  // The share of mails the options say are opened, and of those the share clicked, picked at
  // random: each reader fetches the open pixel and follows the first tracked link, as a mail
  // client would, so the events flow back through broadcast's HTTP endpoints.
  bool ReadMail() {
    absl::StatusOr<std::map<std::string, TrackingLinks>> mails = ReadMailbox(o_.mail_dir, o_.tracking_url, sent_);
    if (!mails.ok()) {
      error_ = std::string(mails.status().message());
      return false;
    }
    if (mails->size() != sent_.size()) {
      error_ = absl::StrCat(sent_.size(), " mails sent, ", mails->size(), " of them in ", o_.mail_dir,
                            " (--mail-dir is the local SMTP server's mailbox?)");
      return false;
    }
    std::vector<const TrackingLinks*> readers;
    for (const auto& [delivery, links] : *mails) readers.push_back(&links);
    std::shuffle(readers.begin(), readers.end(), rng_);
    const auto share = [&](double rate) {
      return static_cast<int64_t>(std::llround(rate * static_cast<double>(readers.size())));
    };
    opened_ = share(o_.open_rate);
    clicked_ = std::min(share(o_.click_rate), opened_);
    std::atomic<int64_t> refused{0};
    bool ok = Parallel(
        opened_,
        [&](int64_t i) {
          const TrackingLinks& links = *readers[static_cast<size_t>(i)];
          long code = 0;
          Get(links.open, absl::Seconds(10), &code);
          if (code != 200) refused++;
          if (i < clicked_ && !links.clicks.empty()) {
            Get(links.clicks.front(), absl::Seconds(10), &code);  // not followed: the shop is not here
            if (code != 302) refused++;
          }
          return grpc::Status::OK;
        },
        "reading the mail");
    if (refused > 0) {
      error_ = absl::StrCat(refused.load(), " tracking requests to ", o_.tracking_url,
                            " were not answered as they should be (is broadcast's --http-address there?)");
      return false;
    }
    note_ = absl::StrCat(Count(opened_), " of ", Count(static_cast<int64_t>(readers.size())), " mails opened, ",
                         Count(clicked_), " clicked");
    return ok;
  }

  // In each group, the share of customers the true rates say buy (the control's rate, or the
  // uplift added in the treatment group), picked at random: real orders, so the purchase events
  // flow back as they would. Exact shares rather than a coin per customer keep the demo's own
  // sampling noise out of the comparison with the measured uplift.
  bool Respond() {
    auto u = [this] { return std::uniform_real_distribution<double>(0, 1)(rng_); };
    std::map<std::string, const Customer*> by_id;
    for (const Customer& c : customers_) by_id[c.id] = &c;
    std::vector<std::string> groups[2];  // control, treatment
    for (const std::string& id : audience_) {
      if (by_id.count(id) > 0) groups[treatment_.count(id)].push_back(id);
    }
    std::vector<std::pair<std::string, std::vector<int>>> orders;
    for (int treated = 0; treated < 2; ++treated) {
      std::vector<std::string>& g = groups[treated];
      std::shuffle(g.begin(), g.end(), rng_);
      const double p = o_.base_conversion + (treated ? o_.true_uplift : 0);
      const auto buyers = static_cast<size_t>(std::llround(p * static_cast<double>(g.size())));
      for (size_t k = 0; k < buyers && k < g.size(); ++k) {
        const Customer& c = *by_id[g[k]];
        std::vector<int> lines = {Product(c, u)};
        if (const int second = Product(c, u); u() < 0.4 && second != lines[0]) lines.push_back(second);
        orders.emplace_back(g[k], std::move(lines));
        (treated ? placed_treatment_ : placed_control_)++;
      }
    }
    auto shop = tx::Transaction::NewStub(inv_.Channel("transaction"));
    bool ok = Parallel(
        static_cast<int64_t>(orders.size()),
        [&](int64_t i) {
          const auto& [id, lines] = orders[static_cast<size_t>(i)];
          tx::PlaceOrderRequest req;
          req.mutable_customer()->set_customer_id(id);
          for (int p : lines) {
            auto* l = req.add_lines();
            l->set_sku(Sku(p));
            l->set_quantity(1);
          }
          req.set_channel(tx::SALES_CHANNEL_WEB);
          req.set_idempotency_key(absl::StrCat("demo-", campaign_.id(), "-", id));
          tx::Order order;
          return shop->PlaceOrder(Ctx().get(), req, &order);
        },
        "placing the orders");
    note_ = absl::StrCat(Count(placed_treatment_), " orders from the treatment group, ", Count(placed_control_),
                         " from the control group (true uplift ", absl::StrFormat("%+.1f", o_.true_uplift * 100),
                         " points over a base of ", absl::StrFormat("%.1f%%", o_.base_conversion * 100), ")");
    return ok;
  }

  bool WaitForReport() {
    auto seg = sg::Segmentation::NewStub(inv_.Channel("segmentation"));
    return Until(
        [&] {
          sg::GetCampaignReportRequest req;
          req.set_id(campaign_.id());
          grpc::Status s = seg->GetCampaignReport(Ctx().get(), req, &report_);
          if (!s.ok()) error_ = s.error_message();
          return s.ok() && report_.treatment().converted() == placed_treatment_ &&
                 report_.control().converted() == placed_control_ && report_.funnel().opened() >= opened_ &&
                 report_.funnel().clicked() >= clicked_;
        },
        absl::Minutes(2), "the report counting every order");
  }

  void PrintReport() {
    const auto& r = report_;
    const auto& f = r.funnel();
    auto pct = [](double x) { return absl::StrFormat("%.2f%%", x * 100); };
    std::cout << "\n──── Campaign report: " << campaign_.name() << " (" << campaign_.id() << ") ────\n";
    std::cout << absl::StrFormat("Audience  %s customers: treatment %s, control %s\n", Count(r.audience_size()),
                                 Count(r.treatment().size()), Count(r.control().size()));
    std::cout << absl::StrFormat(
        "Funnel    sent %s · delivered %s · opened %s · clicked %s · unsubscribed %s · suppressed %s · failed %s\n",
        Count(f.sent()), Count(f.delivered()), Count(f.opened()), Count(f.clicked()), Count(f.unsubscribed()),
        Count(f.suppressed()), Count(f.failed()));
    std::cout << absl::StrFormat("Converted treatment %s of %s (%s) · control %s of %s (%s)\n",
                                 Count(r.treatment().converted()), Count(r.treatment().size()),
                                 pct(r.treatment().conversion_rate()), Count(r.control().converted()),
                                 Count(r.control().size()), pct(r.control().conversion_rate()));
    if (r.has_absolute_uplift()) {
      std::cout << absl::StrFormat(
          "Uplift    %+.2f points (95%% CI %+.2f to %+.2f), relative %s, p = %.4f\n", r.absolute_uplift() * 100,
          r.uplift_ci_low() * 100, r.uplift_ci_high() * 100,
          r.has_relative_uplift() ? absl::StrFormat("%+.0f%%", r.relative_uplift() * 100) : "n/a",
          r.has_p_value() ? r.p_value() : std::nan(""));
      const bool inside = r.uplift_ci_low() <= o_.true_uplift && o_.true_uplift <= r.uplift_ci_high();
      std::cout << absl::StrFormat("          the simulated true uplift, %+.2f points, is %s the interval\n",
                                   o_.true_uplift * 100, inside ? "inside" : "OUTSIDE");
    }
    std::cout << "Revenue   attributed " << Money(r.attributed_revenue().amount_minor()) << " · incremental "
              << Money(r.incremental_revenue().amount_minor()) << "\n";
    std::cout << absl::StrFormat("\nThe demo took %.0f s.\n", absl::ToDoubleSeconds(absl::Now() - began_));
    std::cout << "\nWhere to look next:\n"
              << "  ecrmctl campaigns report " << campaign_.id() << "      this report again (--output=json)\n"
              << "  ecrmctl broadcasts status " << campaign_.broadcast_id() << "\n"
              << "  ecrmctl segments list · ecrmctl scores <customer id> · ecrmctl status\n"
              << "  metrics: http://127.0.0.1:9101/metrics … :9105/metrics; dashboards: deploy/grafana\n";
  }

  Invocation& inv_;
  DemoOptions o_;
  std::mt19937_64 rng_;
  absl::Time began_;
  std::string note_, error_;
  std::vector<int64_t> prices_;
  std::vector<Customer> customers_;
  std::string segment_id_;
  sg::Campaign campaign_;
  std::set<std::string> audience_, treatment_, sent_;  // sent_: delivery ids of the mails sent
  int64_t placed_treatment_ = 0, placed_control_ = 0, opened_ = 0, clicked_ = 0;
  sg::CampaignReport report_;
};

}  // namespace

int RunDemo(Invocation& inv, int64_t customers, int64_t products, int64_t seed, double uplift,
            const std::string& mail_dir, const std::string& tracking_url) {
  DemoOptions o;
  o.customers = customers;
  o.products = products;
  o.seed = seed;
  o.true_uplift = uplift;
  o.mail_dir = mail_dir;
  if (!tracking_url.empty()) o.tracking_url = tracking_url;
  if (customers < 100 || products < 10 || products % 10 != 0) {
    std::cerr << "ecrmctl demo: --customers must be at least 100 and --products a multiple of 10 (10 categories)\n";
    return kUsage;
  }
  return Demo(inv, o).Run();
}

}  // namespace ecrm::ctl
