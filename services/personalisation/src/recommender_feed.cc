#include "recommender_feed.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace ecrm::personalisation {
namespace {

std::string StringProperty(const infostore::v1::Event& e, const std::string& name) {
  auto it = e.properties().find(name);
  return it == e.properties().end() ? std::string() : it->second.string_value();
}

absl::Time OccurredAt(const infostore::v1::Event& e) {
  return absl::FromUnixSeconds(e.occurred_at().seconds()) + absl::Nanoseconds(e.occurred_at().nanos());
}

}  // namespace

void RecommenderFeed::Restore(const LearntOrder& order) {
  orders_[order.order_id] = Order{order.customer_id, order.skus, order.total_minor, order.at};
}

std::vector<LearntOrder> RecommenderFeed::Orders() const {
  std::vector<LearntOrder> out;
  out.reserve(orders_.size());
  for (const auto& [id, o] : orders_) out.push_back({id, o.customer_id, o.skus, o.total_minor, o.at});
  return out;
}

std::vector<ModelUpdate> RecommenderFeed::PurchasesOf(const LearntOrder& order) {
  std::vector<ModelUpdate> updates;
  updates.reserve(order.skus.size());
  for (const auto& sku : order.skus) {
    updates.push_back({ModelUpdate::Kind::kPurchase, order.customer_id, sku, 1, order.at, {}});
  }
  return updates;
}

FeedAction RecommenderFeed::Map(const infostore::v1::Change& change) {
  FeedAction action;
  if (change.kind() == infostore::v1::CHANGE_KIND_MERGE) {
    const std::string& survivor = change.customer_id();
    if (survivor.empty()) return action;
    for (const std::string& merged : change.merge().merged_ids()) {
      if (merged == survivor) continue;
      action.merged_ids.push_back(merged);
      for (auto& [id, order] : orders_) {
        if (order.customer_id != merged) continue;
        for (const auto& sku : order.skus) {
          action.updates.push_back({ModelUpdate::Kind::kReturn, merged, sku, 1, order.at, {}});
          action.updates.push_back({ModelUpdate::Kind::kPurchase, survivor, sku, 1, order.at, {}});
        }
        order.customer_id = survivor;
      }
    }
    if (!action.merged_ids.empty()) action.survivor = survivor;
    return action;
  }
  if (change.kind() == infostore::v1::CHANGE_KIND_ERASE) {
    action.forget = change.customer_id();
    for (auto it = orders_.begin(); it != orders_.end();) {
      auto here = it++;
      if (here->second.customer_id == change.customer_id()) orders_.erase(here);
    }
    return action;
  }
  if (change.kind() != infostore::v1::CHANGE_KIND_EVENT) return action;
  const auto& e = change.event();
  const std::string order_id = StringProperty(e, "order_id");
  if (order_id.empty()) return action;
  const absl::Time at = OccurredAt(e);
  auto give_back = [&](const Order& order) {
    for (const auto& sku : order.skus) {
      action.updates.push_back({ModelUpdate::Kind::kReturn, order.customer_id, sku, 1, at, {}});
    }
  };
  if (e.type() == "purchase") {
    // The feed names the resolved customer; the event's reference is what the sender knew.
    const std::string customer = change.customer_id().empty() ? e.customer().customer_id() : change.customer_id();
    if (customer.empty() || orders_.contains(order_id)) return action;  // replayed: learnt once
    Order order{customer, {}, e.amount().amount_minor(), at};
    for (absl::string_view sku : absl::StrSplit(StringProperty(e, "skus"), ',', absl::SkipEmpty())) {
      if (std::find(order.skus.begin(), order.skus.end(), sku) != order.skus.end()) continue;
      order.skus.emplace_back(sku);
      action.updates.push_back({ModelUpdate::Kind::kPurchase, customer, std::string(sku), 1, at, {}});
    }
    action.remembered.push_back({order_id, customer, order.skus, order.total_minor, at});
    orders_.emplace(order_id, std::move(order));
  } else if (e.type() == "order_cancelled") {
    auto it = orders_.find(order_id);
    if (it == orders_.end()) return action;
    give_back(it->second);
    action.dropped.push_back(order_id);
    orders_.erase(it);
  } else if (e.type() == "refund") {
    auto it = orders_.find(order_id);
    if (it == orders_.end()) return action;
    // "refund:<order>:<refunded so far>"; the order id may itself hold colons.
    const auto colon = e.event_id().rfind(':');
    int64_t refunded = 0;
    if (colon == std::string::npos || !absl::SimpleAtoi(absl::string_view(e.event_id()).substr(colon + 1), &refunded)) {
      return action;
    }
    if (refunded >= it->second.total_minor) {
      give_back(it->second);
      action.dropped.push_back(order_id);
      orders_.erase(it);
      return action;
    }
    // A partial refund: the lines it completed, when the event names them.
    Order& order = it->second;
    std::vector<std::string> back;
    for (absl::string_view sku : absl::StrSplit(StringProperty(e, "refunded_skus"), ',', absl::SkipEmpty())) {
      auto held = std::find(order.skus.begin(), order.skus.end(), sku);
      if (held == order.skus.end()) continue;
      back.emplace_back(sku);
      order.skus.erase(held);
    }
    if (back.empty()) return action;
    for (const auto& sku : back)
      action.updates.push_back({ModelUpdate::Kind::kReturn, order.customer_id, sku, 1, at, {}});
    if (order.skus.empty()) {
      action.dropped.push_back(order_id);
      orders_.erase(it);
    } else {
      action.remembered.push_back({order_id, order.customer_id, order.skus, order.total_minor, order.at});
    }
  }
  return action;
}

absl::Status RecommenderFeed::Apply(const infostore::v1::WatchChangesResponse& message) {
  std::vector<ModelUpdate> batch;
  for (const auto& change : message.changes()) {
    FeedAction a = Map(change);
    std::move(a.updates.begin(), a.updates.end(), std::back_inserter(batch));
    if (!a.forget.empty()) {
      if (auto s = model_.Apply(batch); !s.ok()) return s;
      batch.clear();
      model_.ForgetCustomer(a.forget);
    }
  }
  return model_.Apply(batch);
}

}  // namespace ecrm::personalisation
