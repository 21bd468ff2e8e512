// The workloads ecrm-load knows. Engine benchmarks add theirs here.
#include <grpcpp/client_context.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"
#include "ecrm/personalisation/v1/personalisation.grpc.pb.h"
#include "ecrm/segmentation/v1/segmentation.grpc.pb.h"
#include "ecrm/status/macros.h"
#include "ecrm/transaction/v1/transaction.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "loadgen.h"

namespace ecrm::loadgen {
namespace {

namespace infostore = ::ecrm::infostore::v1;

using Channels = std::vector<std::shared_ptr<grpc::Channel>>;

std::shared_ptr<grpc::Channel> Borrow(grpc::Channel& channel) {
  return std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {});
}

// Starts one asynchronous unary call: `start(ctx, request, response, callback)` issues it on a
// stub's async() interface; the call's state lives until gRPC answers, then `done` hears it
// (after `check`, when given, has looked at the response: it may turn an OK into an error).
template <typename Resp, typename Req, typename Start>
void StartUnary(Req req, absl::Duration timeout, std::function<void(const grpc::Status&)> done, Start start,
                std::function<void(grpc::Status&, const Resp&)> check = nullptr) {
  struct InFlight {
    grpc::ClientContext ctx;
    Req req;
    Resp resp;
  };
  auto* call = new InFlight();
  call->req = std::move(req);
  call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  start(&call->ctx, &call->req, &call->resp,
        [call, done = std::move(done), check = std::move(check)](grpc::Status status) {
          if (check) check(status, call->resp);
          done(status);
          delete call;
        });
}

// grpc.health.v1.Health/Check: the baseline every engine benchmark is compared with.
class HealthCheck final : public Workload {
 public:
  void Call(int64_t, grpc::Channel& channel, absl::Duration timeout,
            std::function<void(const grpc::Status&)> done) override {
    auto stub = grpc::health::v1::Health::NewStub(Borrow(channel));
    StartUnary<grpc::health::v1::HealthCheckResponse>(grpc::health::v1::HealthCheckRequest(), timeout, std::move(done),
                                                      [&](auto... args) { stub->async()->Check(args...); });
  }
};

// GetCustomer by id over a seeded population (created before the load; the warm-up fills
// the cache, so the measured window reads hot profiles).
class GetCustomer final : public Workload {
 public:
  explicit GetCustomer(std::vector<std::string> ids) : ids_(std::move(ids)) {}

  static absl::StatusOr<std::unique_ptr<Workload>> Create(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                                                          int population) {
    auto stub = infostore::InformationStore::NewStub(channels.front());
    std::vector<std::string> ids;
    for (int i = 0; i < population; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      infostore::UpsertCustomerRequest req;
      auto* id = req.add_identifiers();
      id->set_type(ecrm::common::v1::IDENTIFIER_TYPE_EMAIL);
      id->set_value(absl::StrCat("load-", i, "@example.com"));
      req.mutable_profile()->set_first_name(absl::StrCat("Customer ", i));
      req.mutable_profile()->mutable_address()->set_city("Leeds");
      infostore::UpsertCustomerResponse resp;
      grpc::Status s = stub->UpsertCustomer(&ctx, req, &resp);
      if (!s.ok()) return absl::UnavailableError(absl::StrCat("seeding customers: ", s.error_message()));
      ids.push_back(resp.customer().id());
    }
    return std::make_unique<GetCustomer>(std::move(ids));
  }

  void Call(int64_t n, grpc::Channel& channel, absl::Duration timeout,
            std::function<void(const grpc::Status&)> done) override {
    infostore::GetCustomerRequest req;
    // A multiplicative hash spreads consecutive requests over the population.
    req.mutable_customer()->set_customer_id(ids_[static_cast<uint64_t>(n) * 2654435761u % ids_.size()]);
    auto stub = infostore::InformationStore::NewStub(Borrow(channel));
    StartUnary<infostore::Customer>(std::move(req), timeout, std::move(done),
                                    [&](auto... args) { stub->async()->GetCustomer(args...); });
  }

 private:
  std::vector<std::string> ids_;
};

// UpsertCustomer creating a new customer each call (a unique email per request).
class UpsertCustomer final : public Workload {
 public:
  void Call(int64_t n, grpc::Channel& channel, absl::Duration timeout,
            std::function<void(const grpc::Status&)> done) override {
    infostore::UpsertCustomerRequest req;
    auto* id = req.add_identifiers();
    id->set_type(ecrm::common::v1::IDENTIFIER_TYPE_EMAIL);
    id->set_value(absl::StrCat("upsert-", run_, "-", n, "@example.com"));
    req.mutable_profile()->set_first_name("Load");
    req.mutable_profile()->set_locale("en-GB");
    auto stub = infostore::InformationStore::NewStub(Borrow(channel));
    StartUnary<infostore::UpsertCustomerResponse>(std::move(req), timeout, std::move(done),
                                                  [&](auto... args) { stub->async()->UpsertCustomer(args...); });
  }

 private:
  const uint64_t run_ = std::random_device()();
};

namespace transaction = ::ecrm::transaction::v1;

// Runs `n` setup calls on `threads` threads with blocking stubs; the first failure is returned.
absl::Status Seed(int64_t n, int threads, const std::function<grpc::Status(int64_t)>& call) {
  std::atomic<int64_t> next{0};
  std::mutex mu;
  absl::Status first;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int64_t i = next++; i < n; i = next++) {
        grpc::Status s = call(i);
        if (!s.ok()) {
          std::lock_guard lock(mu);
          if (first.ok()) first = absl::UnavailableError(absl::StrCat("seeding: ", s.error_message()));
          return;
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  return first;
}

constexpr int kProducts = 100;

// 100 untracked products at 1.00–100.00 EUR.
absl::Status SeedProducts(transaction::Transaction::Stub& stub) {
  return Seed(kProducts, 4, [&](int64_t i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    transaction::UpsertProductRequest req;
    auto* p = req.mutable_product();
    p->set_sku(absl::StrCat("LOAD-", i));
    p->set_title(absl::StrCat("Load product ", i));
    p->set_category(absl::StrCat("load/c", i % 10));
    p->mutable_price()->set_amount_minor(100 * (i + 1));
    p->mutable_price()->set_currency("EUR");
    p->set_active(true);
    transaction::Product out;
    return stub.UpsertProduct(&ctx, req, &out);
  });
}

// AddCartItem: one unit of one of 100 products into one of 5,000 carts (a new set each run).
class AddCartItem final : public Workload {
 public:
  static absl::StatusOr<std::unique_ptr<Workload>> Create(const Channels& channels, const Options& o) {
    auto stub = transaction::Transaction::NewStub(channels.front());
    ECRM_RETURN_IF_ERROR(SeedProducts(*stub));
    return std::make_unique<AddCartItem>(o.population > 0 ? o.population : 5000);
  }
  explicit AddCartItem(int64_t carts) : carts_(carts) {}

  void Call(int64_t n, grpc::Channel& channel, absl::Duration timeout,
            std::function<void(const grpc::Status&)> done) override {
    transaction::AddCartItemRequest req;
    req.set_customer_id(absl::StrCat("cart-", run_, "-", n % carts_));
    req.set_sku(absl::StrCat("LOAD-", (n / carts_ + n * 7) % kProducts));
    req.set_quantity(1);
    auto stub = transaction::Transaction::NewStub(Borrow(channel));
    StartUnary<transaction::Cart>(std::move(req), timeout, std::move(done),
                                  [&](auto... args) { stub->async()->AddCartItem(args...); });
  }

 private:
  const int64_t carts_;
  const uint64_t run_ = std::random_device()();
};

// Checkout: request n checks out cart n, filled with 1–3 lines before the load. Requests past
// the seeded carts find an empty cart (FAILED_PRECONDITION), so --population must cover the run.
class Checkout final : public Workload {
 public:
  static absl::StatusOr<std::unique_ptr<Workload>> Create(const Channels& channels, const Options& o) {
    auto stub = transaction::Transaction::NewStub(channels.front());
    ECRM_RETURN_IF_ERROR(SeedProducts(*stub));
    auto w = std::make_unique<Checkout>();
    const int64_t carts = o.population > 0 ? o.population : 20000;
    ECRM_RETURN_IF_ERROR(Seed(carts, 8, [&](int64_t i) {
      grpc::Status s;
      for (int64_t line = 0; line <= i % 3 && s.ok(); ++line) {
        grpc::ClientContext ctx;
        ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
        transaction::AddCartItemRequest req;
        req.set_customer_id(w->Customer(i));
        req.set_sku(absl::StrCat("LOAD-", (i + line * 31) % kProducts));
        req.set_quantity(static_cast<int32_t>(1 + line));
        transaction::Cart out;
        s = stub->AddCartItem(&ctx, req, &out);
      }
      return s;
    }));
    return w;
  }

  void Call(int64_t n, grpc::Channel& channel, absl::Duration timeout,
            std::function<void(const grpc::Status&)> done) override {
    transaction::CheckoutRequest req;
    req.set_customer_id(Customer(n));
    req.set_idempotency_key(absl::StrCat("checkout-", Customer(n)));
    req.set_channel(transaction::SALES_CHANNEL_WEB);
    auto stub = transaction::Transaction::NewStub(Borrow(channel));
    StartUnary<transaction::Order>(std::move(req), timeout, std::move(done),
                                   [&](auto... args) { stub->async()->Checkout(args...); });
  }

 private:
  std::string Customer(int64_t n) const { return absl::StrCat("buyer-", run_, "-", n); }
  const uint64_t run_ = std::random_device()();
};

namespace segmentation = ::ecrm::segmentation::v1;

// The customers the segmentation engine holds, as the members of its largest saved segment
// (the benchmark saves one every customer matches): at most `limit` of them (0: all).
absl::StatusOr<std::vector<std::string>> SegmentMembers(grpc::Channel& channel, int64_t limit) {
  auto stub = segmentation::Segmentation::NewStub(Borrow(channel));
  std::string largest;
  int64_t size = 0;
  segmentation::ListSegmentsRequest list;
  list.set_page_size(1000);
  do {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    segmentation::ListSegmentsResponse resp;
    grpc::Status s = stub->ListSegments(&ctx, list, &resp);
    if (!s.ok()) return absl::UnavailableError(absl::StrCat("listing segments: ", s.error_message()));
    for (const segmentation::Segment& seg : resp.segments()) {
      if (seg.size() > size) size = seg.size(), largest = seg.id();
    }
    list.set_page_token(resp.next_page_token());
  } while (!list.page_token().empty());
  if (largest.empty()) {
    return absl::FailedPreconditionError(
        "the segmentation engine has no segment with members: save one that holds the customers to call for");
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
  segmentation::StreamSegmentMembersRequest req;
  req.set_segment_id(largest);
  auto reader = stub->StreamSegmentMembers(&ctx, req);
  std::vector<std::string> ids;
  segmentation::SegmentMemberBatch batch;
  while ((limit <= 0 || static_cast<int64_t>(ids.size()) < limit) && reader->Read(&batch)) {
    for (std::string& id : *batch.mutable_customer_ids()) {
      if (limit > 0 && static_cast<int64_t>(ids.size()) >= limit) break;
      ids.push_back(std::move(id));
    }
  }
  if (limit > 0 && static_cast<int64_t>(ids.size()) >= limit) ctx.TryCancel();
  grpc::Status s = reader->Finish();
  if (!s.ok() && s.error_code() != grpc::StatusCode::CANCELLED) {
    return absl::UnavailableError(absl::StrCat("streaming segment members: ", s.error_message()));
  }
  if (ids.empty()) return absl::FailedPreconditionError("the largest segment has no members");
  return ids;
}

// GetCustomerSegments (or, with `scores`, GetCustomerScores) for customers the engine holds,
// consecutive requests spread over them by a multiplicative hash.
class CustomerLookup final : public Workload {
 public:
  CustomerLookup(std::vector<std::string> ids, bool scores) : ids_(std::move(ids)), scores_(scores) {}

  static WorkloadFactory Factory(bool scores) {
    return [scores](const Channels& channels, const Options& o) -> absl::StatusOr<std::unique_ptr<Workload>> {
      ECRM_ASSIGN_OR_RETURN(std::vector<std::string> ids, SegmentMembers(*channels.front(), o.population));
      return std::make_unique<CustomerLookup>(std::move(ids), scores);
    };
  }

  void Call(int64_t n, grpc::Channel& channel, absl::Duration timeout,
            std::function<void(const grpc::Status&)> done) override {
    const std::string& id = ids_[static_cast<uint64_t>(n) * 2654435761u % ids_.size()];
    auto stub = segmentation::Segmentation::NewStub(Borrow(channel));
    if (scores_) {
      segmentation::GetCustomerScoresRequest req;
      req.set_customer_id(id);
      StartUnary<segmentation::CustomerScores>(std::move(req), timeout, std::move(done),
                                               [&](auto... args) { stub->async()->GetCustomerScores(args...); });
    } else {
      segmentation::GetCustomerSegmentsRequest req;
      req.set_customer_id(id);
      StartUnary<segmentation::GetCustomerSegmentsResponse>(
          std::move(req), timeout, std::move(done), [&](auto... args) { stub->async()->GetCustomerSegments(args...); });
    }
  }

 private:
  std::vector<std::string> ids_;
  const bool scores_;
};

// Recommend (or, with `similar`, SimilarProducts) over the population ecrm-reco-bench --seed-db
// wrote: customers c0000000…, products p000000…, consecutive requests spread by a
// multiplicative hash; 10 items each.
class Recommendations final : public Workload {
 public:
  Recommendations(int64_t population, bool similar) : population_(population), similar_(similar) {}

  static WorkloadFactory Factory(bool similar) {
    return [similar](const Channels&, const Options& o) -> absl::StatusOr<std::unique_ptr<Workload>> {
      return std::make_unique<Recommendations>(o.population > 0 ? o.population : (similar ? 100'000 : 1'000'000),
                                               similar);
    };
  }

  void Call(int64_t n, grpc::Channel& channel, absl::Duration timeout,
            std::function<void(const grpc::Status&)> done) override {
    namespace p = ::ecrm::personalisation::v1;
    const int64_t k = static_cast<int64_t>(static_cast<uint64_t>(n) * 2654435761u % static_cast<uint64_t>(population_));
    auto stub = p::Personalisation::NewStub(Borrow(channel));
    if (similar_) {
      p::SimilarProductsRequest req;
      req.set_sku(absl::StrFormat("p%06d", k));
      req.set_max_items(10);
      StartUnary<p::SimilarProductsResponse>(std::move(req), timeout, std::move(done),
                                             [&](auto... args) { stub->async()->SimilarProducts(args...); });
    } else {
      p::RecommendRequest req;
      req.set_customer_id(absl::StrFormat("c%07d", k));
      req.set_max_items(10);
      StartUnary<p::RecommendResponse>(std::move(req), timeout, std::move(done),
                                       [&](auto... args) { stub->async()->Recommend(args...); });
    }
  }

 private:
  const int64_t population_;
  const bool similar_;
};

namespace personalisation = ::ecrm::personalisation::v1;

// DecideOffers for the customers of --ids-file (customers of the information store the engine
// reads), at placement "home" on the web, up to 3 offers. Before the load it makes sure the
// engine has --population (default 200) active offers, creating the missing ones: a mix of
// eligibility rules over profile, consents, attributes and behaviour, placements, channels,
// windows, caps and budgets (so that every check runs), none restricted to segments.
// The customer ids of --ids-file, one a line.
absl::StatusOr<std::vector<std::string>> ReadIds(const Options& o) {
  if (o.ids_file.empty()) return absl::InvalidArgumentError("--ids-file (customer ids, one a line) is required");
  std::ifstream in(o.ids_file);
  std::vector<std::string> ids;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) ids.push_back(line);
  }
  if (ids.empty()) return absl::InvalidArgumentError(absl::StrCat("no customer ids in ", o.ids_file));
  return ids;
}

class DecideOffers final : public Workload {
 public:
  DecideOffers(std::vector<std::string> ids, bool record) : ids_(std::move(ids)), record_(record) {}

  static WorkloadFactory Factory(bool record) {
    return [record](const Channels& channels, const Options& o) -> absl::StatusOr<std::unique_ptr<Workload>> {
      ECRM_ASSIGN_OR_RETURN(std::vector<std::string> ids, ReadIds(o));
      ECRM_RETURN_IF_ERROR(EnsureOffers(*channels.front(), o.population > 0 ? o.population : 200));
      return std::make_unique<DecideOffers>(std::move(ids), record);
    };
  }

  static absl::Status EnsureOffers(grpc::Channel& channel, int64_t want) {
    auto stub = personalisation::Personalisation::NewStub(Borrow(channel));
    int64_t have = 0;
    personalisation::ListOffersRequest list;
    list.set_active_only(true);
    list.set_page_size(1000);
    do {
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
      personalisation::ListOffersResponse resp;
      grpc::Status s = stub->ListOffers(&ctx, list, &resp);
      if (!s.ok()) return absl::UnavailableError(absl::StrCat("listing offers: ", s.error_message()));
      have += resp.offers_size();
      list.set_page_token(resp.next_page_token());
    } while (!list.page_token().empty());
    static const char* const kRules[] = {
        "",
        "profile.address.country == \"GB\"",
        "consent.email.marketing && profile.address.country in [\"GB\", \"IE\", \"FR\"]",
        "orders.count >= 1 || events.count(\"page_view\") >= 3",
        "profile.gender == \"female\" && days_since(profile.birth_date) > 365 * 30",
        "attributes.tier == \"gold\" || !has(attributes.tier)",
        "profile.locale.startsWith(\"en\") && customer.anonymous == false",
        "events.count(\"purchase\") > 0 && consent.sms.marketing",
        "has(profile.first_name) && profile.address.city != \"City1\"",
        "orders.total >= 5000 || profile.address.country == \"DE\"",
    };
    const absl::Time now = absl::Now();
    for (int64_t i = have; i < want; ++i) {
      personalisation::CreateOfferRequest req;
      personalisation::Offer* offer = req.mutable_offer();
      offer->set_name(absl::StrCat("load offer ", i));
      offer->set_headline(absl::StrCat("Offer ", i));
      offer->set_kind(personalisation::OFFER_KIND_PERCENT_OFF);
      offer->set_percent_off(5 + i % 40);
      offer->set_priority(static_cast<int32_t>(i % 7));
      offer->mutable_value()->set_amount_minor(100 * (i % 50));
      offer->mutable_value()->set_currency("GBP");
      offer->set_eligibility_rule(kRules[i % 10]);
      offer->set_active(true);
      if (i % 4 == 1) offer->add_placements(i % 8 == 1 ? "checkout" : "home");
      if (i % 5 == 2) offer->add_channels(i % 10 == 2 ? ecrm::common::v1::CHANNEL_SMS : ecrm::common::v1::CHANNEL_WEB);
      if (i % 6 == 3) offer->set_per_customer_cap(5);
      if (i % 9 == 4) offer->set_total_budget(1000000);
      if (i % 11 == 5) {
        *offer->mutable_starts_at() = Ts(now - absl::Hours(24));
        *offer->mutable_ends_at() = Ts(now + absl::Hours(24 * (i % 2 == 0 ? 30 : -0.5)));
      }
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
      personalisation::Offer created;
      grpc::Status s = stub->CreateOffer(&ctx, req, &created);
      if (!s.ok()) return absl::UnavailableError(absl::StrCat("creating offer ", i, ": ", s.error_message()));
    }
    return absl::OkStatus();
  }

  void Call(int64_t n, grpc::Channel& channel, absl::Duration timeout,
            std::function<void(const grpc::Status&)> done) override {
    personalisation::DecideOffersRequest req;
    req.set_customer_id(ids_[static_cast<uint64_t>(n) * 2654435761u % ids_.size()]);
    req.set_placement("home");
    req.set_channel(ecrm::common::v1::CHANNEL_WEB);
    req.set_max_offers(3);
    req.set_record_impression(record_);
    auto stub = personalisation::Personalisation::NewStub(Borrow(channel));
    StartUnary<personalisation::DecideOffersResponse>(std::move(req), timeout, std::move(done),
                                                      [&](auto... args) { stub->async()->DecideOffers(args...); });
  }

 private:
  static google::protobuf::Timestamp Ts(absl::Time t) {
    google::protobuf::Timestamp out;
    out.set_seconds(absl::ToUnixSeconds(t));
    return out;
  }
  std::vector<std::string> ids_;
  const bool record_;
};

// BatchRender of --batch-size (1,000) customers of --ids-file a call (consecutive, wrapping),
// for placement "home": each customer's profile read, offers decided (the 200 of
// decide_offers) and recommendations fetched by the engine. A call with any customer failed
// counts as an error (INTERNAL, naming the first). Messages/s = requests/s x the batch.
class BatchRender final : public Workload {
 public:
  BatchRender(std::vector<std::string> ids, std::string template_id, int64_t batch)
      : ids_(std::move(ids)), template_id_(std::move(template_id)), batch_(batch) {}

  static absl::StatusOr<std::unique_ptr<Workload>> Create(const Channels& channels, const Options& o) {
    ECRM_ASSIGN_OR_RETURN(std::vector<std::string> ids, ReadIds(o));
    ECRM_RETURN_IF_ERROR(DecideOffers::EnsureOffers(*channels.front(), 200));
    auto stub = personalisation::Personalisation::NewStub(Borrow(*channels.front()));
    personalisation::CreateTemplateRequest req;
    personalisation::Template* t = req.mutable_template_();
    t->set_name(absl::StrCat("loadgen batch render ", absl::ToUnixMicros(absl::Now())));  // one per run
    t->set_channel(ecrm::common::v1::CHANNEL_WEB);
    t->set_locale("en-GB");
    t->set_subject("{{profile.first_name}}, {{#offers}}{{headline}} {{/offers}}");
    t->set_text_body(
        "Hello {{profile.first_name}} {{profile.last_name}} of {{profile.address.city}}, your offers: "
        "{{#offers}}{{name}} ({{percent_off}}% off) {{/offers}}; picked for you: {{#recommendations}}{{sku}} "
        "{{title}} {{price_formatted}}\n{{/recommendations}}");
    t->set_html_body(
        "<html><body><h1>Hello {{profile.first_name}}</h1><ul>{{#offers}}<li>{{headline}}: {{percent_off}}% "
        "off</li>{{/offers}}</ul><table>{{#recommendations}}<tr><td>{{sku}}</td><td>{{title}}</td><td>"
        "{{price_formatted}}</td></tr>{{/recommendations}}</table></body></html>");
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    personalisation::Template created;
    grpc::Status s = stub->CreateTemplate(&ctx, req, &created);
    if (!s.ok()) return absl::UnavailableError(absl::StrCat("creating the template: ", s.error_message()));
    return std::make_unique<BatchRender>(std::move(ids), created.id(), o.batch_size > 0 ? o.batch_size : 1000);
  }

  void Call(int64_t n, grpc::Channel& channel, absl::Duration timeout,
            std::function<void(const grpc::Status&)> done) override {
    personalisation::BatchRenderRequest req;
    req.set_template_id(template_id_);
    req.set_placement("home");
    for (int64_t i = 0; i < batch_; ++i) {
      req.add_customer_ids(ids_[static_cast<size_t>((n * batch_ + i) % static_cast<int64_t>(ids_.size()))]);
    }
    auto stub = personalisation::Personalisation::NewStub(Borrow(channel));
    StartUnary<personalisation::BatchRenderResponse>(
        std::move(req), timeout, std::move(done), [&](auto... args) { stub->async()->BatchRender(args...); },
        [](grpc::Status& status, const personalisation::BatchRenderResponse& resp) {
          if (status.ok() && !resp.failed().empty()) {
            const auto& [id, why] = *resp.failed().begin();
            status = grpc::Status(grpc::StatusCode::INTERNAL,
                                  absl::StrCat(resp.failed().size(), " failed, e.g. ", id, ": ", why));
          }
        });
  }

 private:
  std::vector<std::string> ids_;
  std::string template_id_;
  int64_t batch_;
};

}  // namespace

const std::map<std::string, WorkloadFactory>& Workloads() {
  static const auto* workloads = new std::map<std::string, WorkloadFactory>{
      {"health",
       [](const Channels&, const Options&) -> absl::StatusOr<std::unique_ptr<Workload>> {
         return std::make_unique<HealthCheck>();
       }},
      {"infostore.get",
       [](const Channels& channels, const Options& o) {
         return GetCustomer::Create(channels, o.population > 0 ? o.population : 2000);
       }},
      {"infostore.upsert",
       [](const Channels&, const Options&) -> absl::StatusOr<std::unique_ptr<Workload>> {
         return std::make_unique<UpsertCustomer>();
       }},
      {"transaction.add_cart_item", &AddCartItem::Create},
      {"transaction.checkout", &Checkout::Create},
      {"segmentation.customer_segments", CustomerLookup::Factory(false)},
      {"segmentation.customer_scores", CustomerLookup::Factory(true)},
      {"personalisation.recommend", Recommendations::Factory(false)},
      {"personalisation.similar_products", Recommendations::Factory(true)},
      {"personalisation.decide_offers", DecideOffers::Factory(false)},
      {"personalisation.decide_offers_recorded", DecideOffers::Factory(true)},
      {"personalisation.batch_render", &BatchRender::Create},
  };
  return *workloads;
}

}  // namespace ecrm::loadgen
