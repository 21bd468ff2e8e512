#include "recommendation_feed.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "ecrm/log/log.h"
#include "ecrm/status/macros.h"

namespace ecrm::personalisation {
namespace {

constexpr int kLoadPage = 10'000;

absl::Time OccurredAt(const infostore::v1::Event& e) {
  return absl::FromUnixSeconds(e.occurred_at().seconds()) + absl::Nanoseconds(e.occurred_at().nanos());
}

bool IsOrderEvent(const infostore::v1::Event& e) {
  return e.type() == "purchase" || e.type() == "order_cancelled" || e.type() == "refund";
}

absl::Status InsertOrder(sql::Connection& c, const LearntOrder& o) {
  const std::string skus = absl::StrJoin(o.skus, ",");
  return c
      .Execute(
          "INSERT INTO reco_orders (order_id, customer_id, skus, total_minor, occurred_at) VALUES ($1, $2, $3, $4, $5) "
          "ON CONFLICT (order_id) DO UPDATE SET customer_id = excluded.customer_id, skus = excluded.skus, "
          "total_minor = excluded.total_minor, occurred_at = excluded.occurred_at",
          {o.order_id, o.customer_id, skus, o.total_minor, absl::ToUnixMicros(o.at)})
      .status();
}

absl::Status SavePosition(sql::Connection& c, int64_t position) {
  return c
      .Execute(
          "INSERT INTO reco_feed_position (id, position) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET position = "
          "excluded.position",
          {position})
      .status();
}

}  // namespace

RecommendationFeed::RecommendationFeed(sql::Database& db, Recommender& model, feed::InformationStore& infostore,
                                       const Catalogue* catalogue, RecommendationFeedOptions options)
    : db_(db), model_(model), infostore_(infostore), catalogue_(catalogue), options_(options), mapper_(model) {}

RecommendationFeed::~RecommendationFeed() { Stop(); }

int64_t RecommendationFeed::orders() const {
  std::lock_guard lock(apply_mu_);
  return mapper_.orders();
}

absl::Status RecommendationFeed::Load() {
  std::lock_guard lock(apply_mu_);
  ECRM_ASSIGN_OR_RETURN(sql::Result pos, db_.Execute("SELECT position FROM reco_feed_position WHERE id = 1"));
  if (!pos.empty()) position_ = pos.front().Int(0);
  // In the order they were placed: a customer's history is kept in order of purchase.
  int64_t after_at = std::numeric_limits<int64_t>::min();
  std::string after_id;
  int64_t loaded = 0;
  for (;;) {
    ECRM_ASSIGN_OR_RETURN(
        sql::Result rows,
        db_.Execute(
            "SELECT order_id, customer_id, skus, total_minor, occurred_at FROM reco_orders WHERE occurred_at > $1 "
            "OR (occurred_at = $1 AND order_id > $2) ORDER BY occurred_at, order_id LIMIT $3",
            {after_at, after_id, kLoadPage}));
    std::vector<ModelUpdate> batch;
    for (size_t i = 0; i < rows.size(); ++i) {
      const sql::Row r = rows.row(i);
      LearntOrder o;
      o.order_id = std::string(r.Text(0));
      o.customer_id = std::string(r.Text(1));
      for (absl::string_view sku : absl::StrSplit(r.Text(2), ',', absl::SkipEmpty())) o.skus.emplace_back(sku);
      o.total_minor = r.Int(3);
      o.at = absl::FromUnixMicros(r.Int(4));
      std::vector<ModelUpdate> updates = RecommenderFeed::PurchasesOf(o);
      std::move(updates.begin(), updates.end(), std::back_inserter(batch));
      after_at = r.Int(4);
      after_id = o.order_id;
      mapper_.Restore(o);
    }
    FillCategories(batch);
    ECRM_RETURN_IF_ERROR(model_.Apply(batch));
    loaded += static_cast<int64_t>(rows.size());
    if (rows.size() < static_cast<size_t>(kLoadPage)) break;
  }
  // Online upkeep during the load left the lists approximate; make them exact once.
  if (loaded > 0) model_.RebuildNeighbours();
  orders_loaded_ = loaded;
  log::Info("recommendation model loaded", {{"orders", loaded}, {"position", position_.load()}});
  return absl::OkStatus();
}

void RecommendationFeed::FillCategories(std::vector<ModelUpdate>& updates) const {
  if (catalogue_ == nullptr) return;
  const auto products = catalogue_->Snapshot();
  if (products->empty()) return;
  for (ModelUpdate& u : updates) {
    if (u.kind != ModelUpdate::Kind::kPurchase) continue;
    if (auto it = products->find(u.sku); it != products->end()) u.category = it->second.category;
  }
}

absl::Status RecommendationFeed::Apply(const infostore::v1::WatchChangesResponse& message) {
  std::lock_guard lock(apply_mu_);
  changes_read_ += message.changes_size();
  std::vector<FeedAction> actions;
  std::vector<ModelUpdate> batch;
  bool saves = false;
  for (const infostore::v1::Change& change : message.changes()) {
    FeedAction a = mapper_.Map(change);
    FillCategories(a.updates);
    std::move(a.updates.begin(), a.updates.end(), std::back_inserter(batch));
    a.updates.clear();
    if (!a.forget.empty()) {
      ECRM_RETURN_IF_ERROR(model_.Apply(batch));
      batch.clear();
      model_.ForgetCustomer(a.forget);
    }
    if (!a.forget.empty() || !a.remembered.empty() || !a.dropped.empty() || !a.merged_ids.empty()) {
      saves = true;
      actions.push_back(std::move(a));
    }
  }
  ECRM_RETURN_IF_ERROR(model_.Apply(batch));
  if (!saves && message.position() <= position_.load()) return absl::OkStatus();
  for (;;) {
    absl::Status s = Save(actions, message.position());
    if (s.ok()) break;
    log::Warn("saving the recommendation model's orders failed; saving again",
              {{"error", s}, {"position", message.position()}});
    std::unique_lock stop(mu_);
    if (cv_.wait_for(stop, absl::ToChronoNanoseconds(options_.retry_after), [this] { return stopping_; })) return s;
  }
  {
    std::lock_guard position(mu_);
    position_ = std::max(position_.load(), message.position());
  }
  cv_.notify_all();
  return absl::OkStatus();
}

std::vector<LearntOrder> RecommendationFeed::CustomerOrders(const std::string& customer_id) const {
  std::lock_guard lock(apply_mu_);
  std::vector<LearntOrder> out = mapper_.Orders();
  std::erase_if(out, [&](const LearntOrder& o) { return o.customer_id != customer_id; });
  std::sort(out.begin(), out.end(), [](const LearntOrder& a, const LearntOrder& b) { return a.at < b.at; });
  return out;
}

absl::Status RecommendationFeed::Forget(const std::string& customer_id) {
  std::lock_guard lock(apply_mu_);
  infostore::v1::Change erase;
  erase.set_kind(infostore::v1::CHANGE_KIND_ERASE);
  erase.set_customer_id(customer_id);
  FeedAction a = mapper_.Map(erase);
  model_.ForgetCustomer(customer_id);
  std::vector<FeedAction> actions;
  actions.push_back(std::move(a));
  return Save(actions, position_.load());
}

absl::Status RecommendationFeed::Save(const std::vector<FeedAction>& actions, int64_t position) {
  return db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    for (const FeedAction& a : actions) {
      for (const std::string& merged : a.merged_ids) {
        ECRM_RETURN_IF_ERROR(
            c.Execute("UPDATE reco_orders SET customer_id = $1 WHERE customer_id = $2", {a.survivor, merged}).status());
      }
      if (!a.forget.empty()) {
        ECRM_RETURN_IF_ERROR(c.Execute("DELETE FROM reco_orders WHERE customer_id = $1", {a.forget}).status());
      }
      for (const LearntOrder& o : a.remembered) ECRM_RETURN_IF_ERROR(InsertOrder(c, o));
      for (const std::string& id : a.dropped) {
        ECRM_RETURN_IF_ERROR(c.Execute("DELETE FROM reco_orders WHERE order_id = $1", {id}).status());
      }
    }
    return SavePosition(c, std::max(position, position_.load()));
  });
}

absl::Status RecommendationFeed::Resync() {
  log::Warn(
      "recommendation model: resyncing from the information store (the saved feed position is older than its "
      "retention)",
      {{"position", position_.load()}});
  std::string token;
  int64_t as_of = -1;
  struct Seen {
    infostore::v1::Event event;
    std::string customer_id;
  };
  std::vector<Seen> events;
  const absl::Time since = absl::Now() - options_.event_horizon;
  do {
    ECRM_ASSIGN_OR_RETURN(infostore::v1::ListCustomersResponse page, infostore_.ListCustomers(token, 1000));
    if (as_of < 0) as_of = page.as_of_sequence();
    for (const auto& customer : page.customers()) {
      std::string events_token;
      do {
        ECRM_ASSIGN_OR_RETURN(infostore::v1::ListEventsResponse listed,
                              infostore_.ListEvents(customer.id(), since, events_token));
        for (auto& e : *listed.mutable_events()) {
          if (IsOrderEvent(e)) events.push_back({std::move(e), customer.id()});
        }
        events_token = listed.next_page_token();
      } while (!events_token.empty());
    }
    token = page.next_page_token();
  } while (!token.empty());
  std::stable_sort(events.begin(), events.end(),
                   [](const Seen& a, const Seen& b) { return OccurredAt(a.event) < OccurredAt(b.event); });

  std::lock_guard lock(apply_mu_);
  model_.Clear();
  mapper_.Clear();
  std::vector<ModelUpdate> batch;
  for (Seen& seen : events) {
    infostore::v1::Change change;
    change.set_kind(infostore::v1::CHANGE_KIND_EVENT);
    change.set_customer_id(seen.customer_id);
    *change.mutable_event() = std::move(seen.event);
    FeedAction a = mapper_.Map(change);
    std::move(a.updates.begin(), a.updates.end(), std::back_inserter(batch));
  }
  FillCategories(batch);
  ECRM_RETURN_IF_ERROR(model_.Apply(batch));
  model_.RebuildNeighbours();
  const std::vector<LearntOrder> orders = mapper_.Orders();
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    ECRM_RETURN_IF_ERROR(c.Execute("DELETE FROM reco_orders").status());
    for (const LearntOrder& o : orders) ECRM_RETURN_IF_ERROR(InsertOrder(c, o));
    return SavePosition(c, as_of);
  }));
  {
    std::lock_guard position(mu_);
    position_ = as_of;
  }
  cv_.notify_all();
  log::Info("recommendation model resynced", {{"orders", static_cast<int64_t>(orders.size())}, {"position", as_of}});
  return absl::OkStatus();
}

void RecommendationFeed::Start() {
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] { Run(); });
}

void RecommendationFeed::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  infostore_.StopWatching();
  if (thread_.joinable()) thread_.join();
}

void RecommendationFeed::Run() {
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    absl::Status s =
        infostore_.Watch(position_.load(), [this](const infostore::v1::WatchChangesResponse& m) { return Apply(m); });
    if (s.code() == absl::StatusCode::kOutOfRange) s = Resync();
    std::unique_lock lock(mu_);
    if (stopping_) return;
    if (!s.ok()) {
      log::Warn("recommendation feed interrupted; watching again", {{"error", s}, {"position", position_.load()}});
      cv_.wait_for(lock, absl::ToChronoNanoseconds(options_.retry_after), [this] { return stopping_; });
    }
  }
}

bool RecommendationFeed::WaitForPosition(int64_t sequence, absl::Duration timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] { return position_.load() >= sequence; });
}

}  // namespace ecrm::personalisation
