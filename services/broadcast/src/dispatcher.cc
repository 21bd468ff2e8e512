#include "dispatcher.h"

#include <algorithm>
#include <map>
#include <random>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "delivery_rows.h"
#include "ecrm/broadcast/internal/record.pb.h"
#include "ecrm/log/log.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/util.h"
#include "gate.h"
#include "placeholders.h"
#include "suppressions.h"

namespace ecrm::broadcast {

namespace {

constexpr int kQueued = v1::DELIVERY_STATE_QUEUED;

std::vector<std::string> AllAddresses(const infostore::v1::Customer& c) {
  std::vector<std::string> out;
  for (common::v1::Channel ch : {common::v1::CHANNEL_EMAIL, common::v1::CHANNEL_SMS, common::v1::CHANNEL_PUSH}) {
    std::string a = AddressFor(c, ch);
    if (!a.empty()) out.push_back(std::move(a));
  }
  return out;
}

GateRequest RequestOf(const DeliveryRow& row) {
  GateRequest request;
  for (int ch : row.message.channels()) request.channels.push_back(static_cast<common::v1::Channel>(ch));
  request.purpose = row.delivery.purpose();
  request.quiet_hours = row.message.quiet_hours();
  return request;
}

// Per-row values of one kind of UPDATE, each row's first value its seq (the row's key).
using RowValues = std::vector<std::vector<sql::Value>>;

// "UPDATE deliveries SET <set> FROM (VALUES …) AS v WHERE deliveries.seq = v.column1<where>",
// one statement per 200 rows instead of one per row; `set` and `where` refer to v.column2… and
// to `shared` ($1…, the same for every row). Returns the seqs of the rows updated. A condition on
// `state` in `where` must be written +deliveries.state: SQLite would otherwise walk
// deliveries_due (state, …), every queued row, instead of looking each row up by its key.
absl::StatusOr<std::set<int64_t>> UpdateRows(sql::Connection& c, absl::string_view set,
                                             std::initializer_list<absl::string_view> types, const RowValues& rows,
                                             absl::string_view where = "", const std::vector<sql::Value>& shared = {}) {
  constexpr size_t kChunk = 200;
  std::set<int64_t> updated;
  for (size_t i = 0; i < rows.size(); i += kChunk) {
    const size_t n = std::min(kChunk, rows.size() - i);
    std::vector<sql::Value> params = shared;
    for (size_t k = 0; k < n; ++k) params.insert(params.end(), rows[i + k].begin(), rows[i + k].end());
    ECRM_ASSIGN_OR_RETURN(
        sql::Result r,
        c.Execute(absl::StrCat("UPDATE deliveries SET ", set, " FROM (VALUES ",
                               TypedValues(static_cast<int>(shared.size()) + 1, static_cast<int>(n), types),
                               ") AS v WHERE deliveries.seq = v.column1", where, " RETURNING deliveries.seq"),
                  params));
    for (sql::Row row : r) updated.emplace(row.Int(0));
  }
  return updated;
}

// Whether the content is rendered by personalisation (a template or an offer), not literal.
bool Rendered(const v1::MessageContent& content) { return content.has_template_id() || !content.offer_id().empty(); }

}  // namespace

// A row this claim holds, and what became of it.
struct Dispatcher::Claimed {
  DeliveryRow row;
  absl::StatusOr<infostore::v1::Customer> customer = absl::UnknownError("not read");
  // Template content: whether it was rendered, the call's failure (for all its customers), and
  // this customer's message or why personalisation could not render it.
  bool render_asked = false;
  absl::Status render_call;
  absl::StatusOr<RenderedContent> rendered = absl::UnknownError("not rendered");
  // With an offer: why it is not for this customer (nothing rendered); empty when it is.
  std::string not_eligible;
  // What is sent: the literal or rendered content with the placeholders filled, and the signed
  // unsubscribe URL (signed once, for the content and the channel's List-Unsubscribe).
  v1::LiteralContent content;
  std::string unsubscribe_url;
  int broadcast_rate = 0;
  bool to_send = false;
  SendResult result;
};

Dispatcher::Dispatcher(sql::Database& db, outbox::Outbox& events, Profiles& profiles, TemplateRenderer* renderer,
                       FrequencyCaps& caps, Channels channels, BroadcastMetrics& metrics, DispatcherOptions options,
                       Clock clock)
    : db_(db),
      events_(events),
      profiles_(profiles),
      renderer_(renderer),
      caps_(caps),
      channels_(std::move(channels)),
      metrics_(metrics),
      options_(std::move(options)),
      clock_(std::move(clock)) {
  for (const auto& [ch, rate] : options_.channel_rate) {
    channel_buckets_[ch] = std::make_unique<TokenBucket>(rate, std::max(1.0, rate / 10));
  }
}

Dispatcher::~Dispatcher() { Stop(); }

std::set<common::v1::Channel> Dispatcher::available() const {
  std::set<common::v1::Channel> out = {common::v1::CHANNEL_WEB};
  for (const auto& [ch, channel] : channels_) {
    if (channel != nullptr) out.insert(ch);
  }
  return out;
}

void Dispatcher::Start() {
  std::lock_guard lock(mu_);
  stopping_ = false;
  for (int i = 0; i < std::max(1, options_.workers); ++i) threads_.emplace_back([this] { Loop(); });
}

void Dispatcher::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

void Dispatcher::Wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

bool Dispatcher::Sleep(absl::Duration d) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, absl::ToChronoNanoseconds(d), [&] { return stopping_; });
  return !stopping_;
}

void Dispatcher::Loop() {
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      woken_ = false;
    }
    absl::StatusOr<int> n = RunOnce();
    if (!n.ok()) log::Warn("delivery batch failed", {{"error", n.status()}});
    if (n.ok() && *n > 0) continue;
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, absl::ToChronoNanoseconds(options_.idle_poll), [&] { return stopping_ || woken_; });
  }
}

absl::Duration Dispatcher::Backoff(int attempts) {
  absl::Duration d = options_.backoff_base;
  for (int i = 1; i < attempts && d < options_.backoff_max; ++i) d *= 2;
  d = std::min(d, options_.backoff_max);
  thread_local std::mt19937_64 rng(std::random_device{}());
  // Equal jitter: half fixed, half random, so retries of one failed batch spread out.
  return d / 2 + d / 2 * std::uniform_real_distribution<double>(0, 1)(rng);
}

TokenBucket* Dispatcher::BroadcastBucket(const std::string& id, int rate) {
  if (id.empty() || rate <= 0) return nullptr;
  std::lock_guard lock(buckets_mu_);
  std::unique_ptr<TokenBucket>& b = broadcast_buckets_[id];
  if (!b) {
    if (broadcast_buckets_.size() > 10000) broadcast_buckets_.clear();  // finished broadcasts' buckets
    b = std::make_unique<TokenBucket>(rate, std::max(1.0, rate / 10.0));
  }
  return b.get();
}

void Dispatcher::Render(std::vector<Claimed>& claimed, const std::set<common::v1::Channel>& channels, absl::Time now) {
  if (renderer_ == nullptr) return;
  // (template id, placement, offer id) -> its rows, in claim order; each customer once per
  // template.
  std::map<std::tuple<std::string, std::string, std::string>, std::vector<Claimed*>> by_template;
  for (Claimed& cl : claimed) {
    if (!Rendered(cl.row.message.content()) || !cl.customer.ok()) continue;
    // The gate on the profile as read (without the suppression list, read in the transaction):
    // a row it would hold back anyway is not rendered.
    if (Decide(*cl.customer, RequestOf(cl.row), {}, channels, now).kind != GateDecision::Kind::kSend) continue;
    const v1::MessageContent& content = cl.row.message.content();
    by_template[{content.template_id(), content.placement(), content.offer_id()}].push_back(&cl);
  }
  for (auto& [key, rows] : by_template) {
    const RenderSource source{std::get<0>(key), std::get<1>(key), std::get<2>(key)};
    std::vector<std::string> customers;
    std::set<std::string> seen;
    for (Claimed* cl : rows) {
      if (seen.insert(cl->row.delivery.customer_id()).second) customers.push_back(cl->row.delivery.customer_id());
    }
    std::map<std::string, absl::StatusOr<RenderedContent>> results;
    std::map<std::string, std::string> not_eligible;
    absl::Status call;
    for (size_t i = 0; i < customers.size() && call.ok(); i += TemplateRenderer::kMaxBatch) {
      const size_t n = std::min<size_t>(TemplateRenderer::kMaxBatch, customers.size() - i);
      // A deadline in real time: it bounds a call to another process, whatever clock_ says.
      absl::StatusOr<RenderBatch> batch = renderer_->BatchRender(source, absl::MakeConstSpan(customers).subspan(i, n),
                                                                 absl::Now() + options_.render_timeout);
      if (!batch.ok()) {
        call = batch.status();
        break;
      }
      results.merge(batch->by_customer);
      not_eligible.merge(batch->not_eligible);
    }
    if (!call.ok()) {
      log::Warn("rendering a template failed",
                {{"template_id", source.template_id}, {"offer_id", source.offer_id}, {"error", call}});
    }
    for (Claimed* cl : rows) {
      cl->render_asked = true;
      cl->render_call = call;
      if (!call.ok()) continue;
      if (auto no = not_eligible.find(cl->row.delivery.customer_id()); no != not_eligible.end()) {
        cl->not_eligible = no->second;
        continue;
      }
      auto it = results.find(cl->row.delivery.customer_id());
      cl->rendered = it != results.end() ? it->second
                                         : absl::StatusOr<RenderedContent>(absl::UnavailableError(
                                               "personalisation returned nothing for the customer"));
    }
  }
}

absl::StatusOr<int> Dispatcher::RunOnce() {
  const absl::Time now = clock_();
  const int64_t now_us = absl::ToUnixMicros(now);
  const std::string owner = util::NewId("claim");
  std::vector<Claimed> claimed;
  int reclaimed = 0;  // claimed rows a lost claim had handed to a channel: possible duplicates

  // 1. Claim due rows of no broadcast ('') or of a loaded running (or cancelled: to cancel them)
  //    one, in due order: per such group the first `batch` due rows, as deliveries_due (state,
  //    broadcast_id, next_attempt_at) walks them (the query stops there), then the first `batch`
  //    of them all. Walking every queued row instead read each row of a broadcast still loading
  //    (a million at most) on every idle poll, the write lock held, and starved its load.
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    claimed.clear();
    ECRM_ASSIGN_OR_RETURN(std::vector<std::string> groups, ClaimableGroups(c));
    std::string q = absl::StrCat(
        "SELECT seq, sending, next_attempt_at FROM deliveries WHERE state = ", kQueued,
        " AND broadcast_id = $3 AND next_attempt_at <= $1 AND lease_until <= $1 ORDER BY next_attempt_at LIMIT $2");
    if (c.dialect() == sql::Dialect::kPostgres) absl::StrAppend(&q, " FOR UPDATE SKIP LOCKED");
    struct Due {
      int64_t at, seq;
      bool sending;
    };
    std::vector<Due> due;
    for (const std::string& group : groups) {
      ECRM_ASSIGN_OR_RETURN(sql::Result r, c.Execute(q, {now_us, options_.batch, group}));
      for (sql::Row row : r) due.push_back({row.Int(2), row.Int(0), row.Int(1) != 0});
    }
    if (due.empty()) return absl::OkStatus();
    std::sort(due.begin(), due.end(),
              [](const Due& a, const Due& b) { return std::tie(a.at, a.seq) < std::tie(b.at, b.seq); });
    if (static_cast<int>(due.size()) > options_.batch) due.resize(options_.batch);
    std::vector<sql::Value> params = {absl::ToUnixMicros(now + options_.lease), owner};
    reclaimed = 0;
    std::map<int64_t, size_t> rank;  // seq -> place in due order
    for (const Due& d : due) {
      params.emplace_back(d.seq);
      reclaimed += d.sending ? 1 : 0;
      rank.emplace(d.seq, rank.size());
    }
    const std::string in = util::Placeholders(3, static_cast<int>(due.size()));
    // `sending` is cleared as the claim counts it: each loss of a row that may have reached its
    // channel counts once, whatever becomes of this claim (the gate sets it again on handing over).
    ECRM_RETURN_IF_ERROR(c.Execute(absl::StrCat("UPDATE deliveries SET lease_until = $1, lease_owner = $2, sending = "
                                                "0 WHERE seq IN (",
                                                in, ")"),
                                   params)
                             .status());
    ECRM_ASSIGN_OR_RETURN(sql::Result rows,
                          c.Execute(absl::StrCat("SELECT ", kDeliveryColumns, " FROM deliveries WHERE seq IN (",
                                                 util::Placeholders(1, static_cast<int>(due.size())), ")"),
                                    absl::MakeConstSpan(params).subspan(2)));
    std::map<std::string, internal::MessageRecord> messages;  // of broadcasts, read once each
    for (sql::Row r : rows) {
      ECRM_ASSIGN_OR_RETURN(DeliveryRow row, ReadDelivery(r));
      if (row.message.channels().empty() && !row.delivery.broadcast_id().empty()) {
        // A broadcast's row: its message is the broadcast's (broadcasts.cc, Load).
        auto it = messages.find(row.delivery.broadcast_id());
        if (it == messages.end()) {
          ECRM_ASSIGN_OR_RETURN(sql::Result b,
                                c.Execute("SELECT body FROM broadcasts WHERE id = $1", {row.delivery.broadcast_id()}));
          internal::BroadcastRecord record;
          if (!b.empty()) {
            absl::string_view body = b.front().Text(0);
            if (!record.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
              return absl::DataLossError(
                  absl::StrCat("broadcast ", row.delivery.broadcast_id(), ": its stored record does not parse"));
            }
          }
          it = messages.emplace(row.delivery.broadcast_id(), std::move(*record.mutable_message())).first;
        }
        row.message = it->second;
      }
      claimed.push_back(Claimed{std::move(row)});
    }
    // In due order, as claimed.
    std::sort(claimed.begin(), claimed.end(),
              [&](const Claimed& a, const Claimed& b) { return rank[a.row.seq] < rank[b.row.seq]; });
    return absl::OkStatus();
  }));
  if (claimed.empty()) return 0;
  metrics_.duplicates.Increment(reclaimed);

  // 2. Profiles as they are now, outside any transaction (cache, else the information store).
  std::stable_sort(claimed.begin(), claimed.end(), [](const Claimed& a, const Claimed& b) {
    return a.row.delivery.customer_id() < b.row.delivery.customer_id();
  });
  {
    // Each customer once; the cache in one round trip for the batch.
    std::vector<std::string> ids;
    for (size_t i = 0; i < claimed.size(); ++i) {
      if (i == 0 || claimed[i - 1].row.delivery.customer_id() != claimed[i].row.delivery.customer_id()) {
        ids.push_back(claimed[i].row.delivery.customer_id());
      }
    }
    std::vector<absl::StatusOr<infostore::v1::Customer>> profiles =
        profiles_.GetMany(ids, [&] { return clock_() + options_.profile_timeout; });
    for (size_t i = 0, k = 0; i < claimed.size(); ++i) {
      if (i > 0 && claimed[i - 1].row.delivery.customer_id() == claimed[i].row.delivery.customer_id()) {
        claimed[i].customer = claimed[i - 1].customer;
      } else {
        claimed[i].customer = std::move(profiles[k++]);
      }
    }
  }
  const std::set<common::v1::Channel> channels = available();
  // 2b. Templates rendered through personalisation, also outside any transaction.
  Render(claimed, channels, now);

  // 3. The gate and the caps, in customer-id order (cap locks), and the web inbox's deliveries.
  struct Effect {
    common::v1::Channel channel;
    v1::DeliveryState state;
    v1::SuppressionReason reason;
  };
  std::vector<Effect> effects;
  std::set<std::string> touched;  // broadcasts that may have finished
  bool raised = false;
  struct BroadcastSeen {
    bool exists = false;
    int state = 0;
    int rate = 0;
  };
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    effects.clear();
    touched.clear();
    raised = false;
    std::map<std::string, BroadcastSeen> broadcasts;
    // The suppression list's entries for the whole batch, read once.
    std::map<std::string, std::vector<std::string>> addresses;
    for (const Claimed& cl : claimed) {
      if (cl.customer.ok()) addresses.emplace(cl.row.delivery.customer_id(), AllAddresses(*cl.customer));
    }
    ECRM_ASSIGN_OR_RETURN(auto suppressions, Suppressions::ForCustomers(c, addresses));
    // The claimed rows still ours (queued under this claim's lease), read again and locked, in
    // id order, in one statement per 500: a lease that expired meanwhile leaves its rows to the
    // claim that took them over, a cancel finished those it could.
    std::set<int64_t> ours;
    for (size_t i = 0; i < claimed.size(); i += 500) {
      const size_t n = std::min<size_t>(500, claimed.size() - i);
      std::vector<sql::Value> params = {owner};
      for (size_t k = 0; k < n; ++k) params.emplace_back(claimed[i + k].row.seq);
      ECRM_ASSIGN_OR_RETURN(sql::Result cur,
                            c.Execute(absl::StrCat("SELECT seq FROM deliveries WHERE lease_owner = $1 AND +state = ",
                                                   kQueued, " AND seq IN (", util::Placeholders(2, static_cast<int>(n)),
                                                   ") ORDER BY seq", ForUpdate(c)),
                                      params));
      for (sql::Row r : cur) ours.emplace(r.Int(0));
    }
    // What becomes of the rows, written after the loop in one statement per kind and 200 rows,
    // and the events they raise in one insert.
    RowValues finished, released, handed;
    std::vector<infostore::v1::Event> events;
    ProgressChanges progress;
    auto finish = [&](Claimed& cl, v1::DeliveryState state, v1::SuppressionReason reason,
                      const std::string& error) -> absl::Status {
      v1::Delivery& d = cl.row.delivery;
      progress.Move(d.broadcast_id(), d.state(), d.suppression_reason(), state, reason);
      d.set_state(state);
      d.set_suppression_reason(reason);
      d.set_last_error(error);
      finished.push_back({cl.row.seq, static_cast<int>(state), static_cast<int>(reason), error,
                          static_cast<int>(d.channel()), d.address()});
      if (state == v1::DELIVERY_STATE_FAILED) {
        events.push_back(MessageEvent(d, "failed", now_us, error));
        raised = true;
      } else if (state == v1::DELIVERY_STATE_SUPPRESSED) {
        // So that a campaign's funnel counts what the gate held back, and why.
        events.push_back(MessageEvent(d, "suppressed", now_us, v1::SuppressionReason_Name(reason)));
        raised = true;
      }
      effects.push_back({d.channel(), state, reason});
      if (!d.broadcast_id().empty()) touched.insert(d.broadcast_id());
      return absl::OkStatus();
    };
    auto release = [&](Claimed& cl, int64_t next_us, const std::string& error) -> absl::Status {
      released.push_back({cl.row.seq, next_us, error});
      return absl::OkStatus();
    };
    for (Claimed& cl : claimed) {
      cl.to_send = false;
      v1::Delivery& d = cl.row.delivery;
      if (!ours.contains(cl.row.seq)) continue;  // not ours now
      if (!d.broadcast_id().empty()) {
        auto known = broadcasts.find(d.broadcast_id());
        if (known == broadcasts.end()) {  // read once per broadcast in this transaction
          ECRM_ASSIGN_OR_RETURN(sql::Result b,
                                c.Execute("SELECT state, body FROM broadcasts WHERE id = $1", {d.broadcast_id()}));
          BroadcastSeen seen;
          if (!b.empty()) {
            seen.exists = true;
            seen.state = static_cast<int>(b.front().Int(0));
            internal::BroadcastRecord record;
            absl::string_view body = b.front().Text(1);
            if (record.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
              seen.rate = record.rate_limit_per_second();
            }
          }
          known = broadcasts.emplace(d.broadcast_id(), seen).first;
        }
        if (known->second.exists) {
          const int state = known->second.state;
          if (state == v1::BROADCAST_STATE_CANCELLED) {
            ECRM_RETURN_IF_ERROR(finish(cl, v1::DELIVERY_STATE_CANCELLED, v1::SUPPRESSION_REASON_UNSPECIFIED, ""));
            continue;
          }
          if (state == v1::BROADCAST_STATE_PAUSED) {  // paused since the claim: leave it queued
            ECRM_RETURN_IF_ERROR(release(cl, util::Micros(d.next_attempt_at()), d.last_error()));
            continue;
          }
          cl.broadcast_rate = known->second.rate;
        }
      }
      if (!cl.customer.ok()) {
        if (cl.customer.status().code() == absl::StatusCode::kNotFound) {
          ECRM_RETURN_IF_ERROR(finish(cl, v1::DELIVERY_STATE_FAILED, v1::SUPPRESSION_REASON_UNSPECIFIED,
                                      "the information store has no such customer"));
        } else {
          ECRM_RETURN_IF_ERROR(release(cl, absl::ToUnixMicros(now + options_.unavailable_retry),
                                       std::string(cl.customer.status().message())));
        }
        continue;
      }
      if (Rendered(cl.row.message.content()) && renderer_ == nullptr) {
        ECRM_RETURN_IF_ERROR(
            finish(cl, v1::DELIVERY_STATE_FAILED, v1::SUPPRESSION_REASON_UNSPECIFIED,
                   absl::StrCat(cl.row.message.content().has_template_id() ? "content.template_id" : "content.offer_id",
                                ": this engine has no personalisation engine to render templates and offers "
                                "(--personalisation-address); send literal content")));
        continue;
      }
      GateDecision decision = Decide(*cl.customer, RequestOf(cl.row), suppressions[d.customer_id()], channels, now);
      if (decision.kind == GateDecision::Kind::kSend) {
        d.set_channel(decision.channel);
        d.set_address(decision.address);
      }
      switch (decision.kind) {
        case GateDecision::Kind::kSuppress:
          ECRM_RETURN_IF_ERROR(finish(cl, v1::DELIVERY_STATE_SUPPRESSED, decision.reason, ""));
          continue;
        case GateDecision::Kind::kFail:
          ECRM_RETURN_IF_ERROR(
              finish(cl, v1::DELIVERY_STATE_FAILED, v1::SUPPRESSION_REASON_UNSPECIFIED, decision.error));
          continue;
        case GateDecision::Kind::kDefer:
          ECRM_RETURN_IF_ERROR(release(cl, absl::ToUnixMicros(decision.until), "deferred: quiet hours"));
          continue;
        case GateDecision::Kind::kSend:
          break;
      }
      if (Rendered(cl.row.message.content())) {
        const std::string& template_id = cl.row.message.content().template_id();
        const std::string& offer_id = cl.row.message.content().offer_id();
        auto temporary = [](const absl::Status& s) {
          return s.code() == absl::StatusCode::kUnavailable || s.code() == absl::StatusCode::kDeadlineExceeded;
        };
        if (!cl.render_asked) {  // the gate changed its mind since the render: render next time
          ECRM_RETURN_IF_ERROR(release(cl, absl::ToUnixMicros(now + options_.unavailable_retry), "not rendered yet"));
          continue;
        }
        if (!cl.render_call.ok()) {
          if (temporary(cl.render_call)) {
            ECRM_RETURN_IF_ERROR(release(cl, absl::ToUnixMicros(now + options_.unavailable_retry),
                                         std::string(cl.render_call.message())));
          } else if (!offer_id.empty()) {  // the client's message names the field
            ECRM_RETURN_IF_ERROR(finish(cl, v1::DELIVERY_STATE_FAILED, v1::SUPPRESSION_REASON_UNSPECIFIED,
                                        std::string(cl.render_call.message())));
          } else if (cl.render_call.code() == absl::StatusCode::kNotFound) {
            ECRM_RETURN_IF_ERROR(
                finish(cl, v1::DELIVERY_STATE_FAILED, v1::SUPPRESSION_REASON_UNSPECIFIED,
                       absl::StrCat("content.template_id: personalisation has no template \"", template_id, "\"")));
          } else {
            ECRM_RETURN_IF_ERROR(finish(cl, v1::DELIVERY_STATE_FAILED, v1::SUPPRESSION_REASON_UNSPECIFIED,
                                        absl::StrCat("content.template_id: rendering \"", template_id,
                                                     "\" failed: ", cl.render_call.message())));
          }
          continue;
        }
        if (!cl.not_eligible.empty()) {
          ECRM_RETURN_IF_ERROR(finish(cl, v1::DELIVERY_STATE_SUPPRESSED, v1::SUPPRESSION_REASON_OFFER_NOT_ELIGIBLE,
                                      absl::StrCat("offer \"", offer_id, "\": ", cl.not_eligible)));
          continue;
        }
        if (!cl.rendered.ok()) {
          if (temporary(cl.rendered.status())) {
            ECRM_RETURN_IF_ERROR(release(cl, absl::ToUnixMicros(now + options_.unavailable_retry),
                                         std::string(cl.rendered.status().message())));
          } else {
            ECRM_RETURN_IF_ERROR(finish(
                cl, v1::DELIVERY_STATE_FAILED, v1::SUPPRESSION_REASON_UNSPECIFIED,
                offer_id.empty()
                    ? absl::StrCat("content.template_id: \"", template_id,
                                   "\" could not be rendered for the customer: ", cl.rendered.status().message())
                    : absl::StrCat("content.offer_id: \"", offer_id,
                                   "\" could not be rendered for the customer: ", cl.rendered.status().message())));
          }
          continue;
        }
        cl.content.set_subject(cl.rendered->subject);
        cl.content.set_text_body(cl.rendered->text_body);
        cl.content.set_html_body(cl.rendered->html_body);
      } else {
        cl.content = cl.row.message.content().literal();
      }
      if (options_.links) cl.unsubscribe_url = options_.links->UnsubscribeUrl(d.id());
      cl.content = FillPlaceholders(
          std::move(cl.content),
          LinksFor(d.id(), cl.unsubscribe_url, options_.preferences_url_base, options_.view_in_browser_url_base));
      ECRM_ASSIGN_OR_RETURN(bool admitted, caps_.Admit(c, d.id(), d.customer_id(), d.channel(), d.purpose(),
                                                       cl.row.message.category(), now));
      if (!admitted) {
        ECRM_RETURN_IF_ERROR(finish(cl, v1::DELIVERY_STATE_SUPPRESSED, v1::SUPPRESSION_REASON_FREQUENCY_CAP, ""));
        continue;
      }
      const v1::LiteralContent& content = cl.content;
      d.set_subject(content.subject());
      d.set_attempts(d.attempts() + 1);
      if (d.channel() == common::v1::CHANNEL_WEB) {
        // The web inbox is ours: delivered in this very transaction.
        ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO inbox (delivery_id, customer_id, subject, html_body, created_at, "
                                       "read_at, expires_at) VALUES ($1, $2, $3, $4, $5, 0, $6) ON CONFLICT "
                                       "(delivery_id) DO NOTHING",
                                       {d.id(), d.customer_id(), content.subject(),
                                        content.html_body().empty() ? content.text_body() : content.html_body(), now_us,
                                        absl::ToUnixMicros(now + options_.inbox_ttl)})
                                 .status());
        ECRM_RETURN_IF_ERROR(c.Execute("UPDATE deliveries SET state = $2, channel = $3, address = $4, subject = $5, "
                                       "attempts = $6, sent_at = $7, last_error = '', lease_until = 0, lease_owner "
                                       "= '', sending = 0 WHERE id = $1",
                                       {d.id(), static_cast<int>(v1::DELIVERY_STATE_DELIVERED),
                                        static_cast<int>(d.channel()), d.address(), d.subject(), d.attempts(), now_us})
                                 .status());
        progress.Move(d.broadcast_id(), d.state(), d.suppression_reason(), v1::DELIVERY_STATE_DELIVERED,
                      d.suppression_reason());
        events.push_back(MessageEvent(d, "sent", now_us));
        events.push_back(MessageEvent(d, "delivered", now_us));
        raised = true;
        effects.push_back({d.channel(), v1::DELIVERY_STATE_SENT, v1::SUPPRESSION_REASON_UNSPECIFIED});
        effects.push_back({d.channel(), v1::DELIVERY_STATE_DELIVERED, v1::SUPPRESSION_REASON_UNSPECIFIED});
        if (!d.broadcast_id().empty()) touched.insert(d.broadcast_id());
        continue;
      }
      handed.push_back({cl.row.seq, static_cast<int>(d.channel()), d.address(), d.subject(), d.attempts()});
      cl.to_send = true;
    }
    ECRM_RETURN_IF_ERROR(UpdateRows(c,
                                    "state = v.column2, suppression_reason = v.column3, last_error = v.column4, "
                                    "channel = v.column5, address = v.column6, lease_until = 0, lease_owner = '', "
                                    "sending = 0",
                                    {"BIGINT", "INTEGER", "INTEGER", "TEXT", "INTEGER", "TEXT"}, finished)
                             .status());
    ECRM_RETURN_IF_ERROR(UpdateRows(c,
                                    "next_attempt_at = v.column2, last_error = v.column3, lease_until = 0, "
                                    "lease_owner = ''",
                                    {"BIGINT", "BIGINT", "TEXT"}, released)
                             .status());
    ECRM_RETURN_IF_ERROR(UpdateRows(c,
                                    "channel = v.column2, address = v.column3, subject = v.column4, attempts = "
                                    "v.column5, sending = 1",
                                    {"BIGINT", "INTEGER", "TEXT", "TEXT", "INTEGER"}, handed)
                             .status());
    ECRM_RETURN_IF_ERROR(progress.Write(c));
    return events_.AddMany(c, events);
  }));
  if (raised) events_.Notify();
  for (const Effect& e : effects) {
    metrics_.Delivery(e.channel, e.state);
    if (e.state == v1::DELIVERY_STATE_SUPPRESSED) metrics_.Suppressed(e.reason);
  }

  // 4. Send, per channel in batches, paced by the channel's and the broadcast's token buckets.
  std::map<common::v1::Channel, std::vector<Claimed*>> by_channel;
  for (Claimed& cl : claimed) {
    if (cl.to_send) by_channel[cl.row.delivery.channel()].push_back(&cl);
  }
  bool stopped = false;
  std::vector<Claimed*> unsent;  // left when stopping mid-way
  for (auto& [ch, group] : by_channel) {
    Channel* channel = channels_.at(ch);
    TokenBucket* channel_bucket = channel_buckets_.contains(ch) ? channel_buckets_[ch].get() : nullptr;
    std::vector<Claimed*> pending;
    auto flush = [&] {
      if (pending.empty()) return;
      std::vector<OutgoingMessage> out;
      for (Claimed* cl : pending) {
        const v1::Delivery& d = cl->row.delivery;
        const v1::LiteralContent& content = cl->content;
        OutgoingMessage m;
        m.delivery_id = d.id();
        m.customer_id = d.customer_id();
        m.channel = d.channel();
        m.purpose = d.purpose();
        m.address = d.address();
        m.subject = content.subject();
        m.text_body = content.text_body();
        m.html_body = content.html_body();
        if (d.purpose() == common::v1::PURPOSE_MARKETING && options_.links != nullptr) {
          m.unsubscribe_url = cl->unsubscribe_url;
          m.html_body = options_.links->Track(d.id(), m.html_body);
        }
        m.campaign_id = d.campaign_id();
        out.push_back(std::move(m));
      }
      const absl::Time began = absl::Now();
      std::vector<SendResult> results = channel->Send(out);
      metrics_.SendLatency(ch, absl::ToDoubleSeconds(absl::Now() - began));
      for (size_t i = 0; i < pending.size(); ++i) {
        pending[i]->result =
            i < results.size()
                ? results[i]
                : SendResult{SendOutcome::kTemporaryFailure, "", "the channel returned no result for the message", {}};
      }
      pending.clear();
    };
    for (Claimed* cl : group) {
      if (stopped) {
        unsent.push_back(cl);
        continue;
      }
      absl::Duration wait = channel_bucket ? channel_bucket->Take(absl::Now()) : absl::ZeroDuration();
      if (TokenBucket* b = BroadcastBucket(cl->row.delivery.broadcast_id(), cl->broadcast_rate)) {
        wait = std::max(wait, b->Take(absl::Now()));
      }
      if (wait > absl::ZeroDuration()) {
        flush();
        if (!Sleep(wait)) {
          stopped = true;
          unsent.push_back(cl);
          continue;
        }
        // Paced sends can take a while: a pause or cancel meanwhile takes effect now; the row
        // goes back to the queue untouched (resumed, it is sent then; cancelled, a claim cancels it).
        if (!cl->row.delivery.broadcast_id().empty()) {
          absl::StatusOr<sql::Result> b =
              db_.Execute("SELECT state FROM broadcasts WHERE id = $1", {cl->row.delivery.broadcast_id()});
          if (b.ok() && !b->empty() && b->front().Int(0) != v1::BROADCAST_STATE_RUNNING) {
            unsent.push_back(cl);
            continue;
          }
        }
      }
      pending.push_back(cl);
      if (static_cast<int>(pending.size()) >= options_.batch) flush();
    }
    flush();
  }

  // 5. Outcomes, each with its event, in one transaction; a row whose lease another claim took
  //    over meanwhile (expired) is left to that claim.
  const absl::Time done = clock_();
  const int64_t done_us = absl::ToUnixMicros(done);
  std::vector<Effect> outcome_effects;
  int retries = 0;
  ECRM_RETURN_IF_ERROR(db_.InTransaction([&](sql::Connection& c) -> absl::Status {
    outcome_effects.clear();
    raised = false;
    retries = 0;
    std::vector<std::string> forget;  // cap ledger rows of sends that did not happen
    std::vector<infostore::v1::Event> events;
    ProgressChanges progress;
    // Never handed over: back to the queue as they were.
    for (size_t i = 0; i < unsent.size(); i += 500) {
      const size_t n = std::min<size_t>(500, unsent.size() - i);
      std::vector<sql::Value> params = {owner};
      for (size_t k = 0; k < n; ++k) {
        params.emplace_back(unsent[i + k]->row.seq);
        forget.push_back(unsent[i + k]->row.delivery.id());
        unsent[i + k]->to_send = false;
      }
      ECRM_RETURN_IF_ERROR(
          c.Execute(absl::StrCat("UPDATE deliveries SET attempts = attempts - 1, sending = 0, "
                                 "lease_until = 0, lease_owner = '' WHERE lease_owner = $1 AND seq IN (",
                                 util::Placeholders(2, static_cast<int>(n)), ")"),
                    params)
              .status());
    }
    struct Outcome {
      Claimed* cl;
      v1::DeliveryState state;
      std::string error;
    };
    std::vector<Outcome> outcomes;
    RowValues rows;
    std::map<std::string, bool> cancelled;  // broadcast id -> cancelled, read once each
    for (Claimed& cl : claimed) {
      if (!cl.to_send) continue;
      const v1::Delivery& d = cl.row.delivery;
      const SendResult& r = cl.result;
      v1::DeliveryState state = v1::DELIVERY_STATE_SENT;
      int64_t next_us = 0;
      std::string error = r.error;
      if (r.outcome == SendOutcome::kPermanentFailure) {
        state = v1::DELIVERY_STATE_FAILED;
      } else if (r.outcome == SendOutcome::kTemporaryFailure) {
        if (d.attempts() >= options_.max_attempts) {
          state = v1::DELIVERY_STATE_FAILED;
          error = absl::StrCat("gave up after ", d.attempts(), " attempts: ", r.error);
        } else {
          state = v1::DELIVERY_STATE_QUEUED;
          const absl::Duration delay =
              r.retry_after ? std::max(*r.retry_after, absl::ZeroDuration()) : Backoff(d.attempts());
          next_us = absl::ToUnixMicros(done + delay);
          if (!d.broadcast_id().empty()) {
            auto known = cancelled.find(d.broadcast_id());
            if (known == cancelled.end()) {
              ECRM_ASSIGN_OR_RETURN(sql::Result b,
                                    c.Execute("SELECT state FROM broadcasts WHERE id = $1", {d.broadcast_id()}));
              known =
                  cancelled.emplace(d.broadcast_id(), !b.empty() && b.front().Int(0) == v1::BROADCAST_STATE_CANCELLED)
                      .first;
            }
            if (known->second) state = v1::DELIVERY_STATE_CANCELLED;
          }
        }
      }
      rows.push_back({cl.row.seq, static_cast<int>(state), error, r.provider_message_id,
                      state == v1::DELIVERY_STATE_SENT ? done_us : int64_t{0},
                      state == v1::DELIVERY_STATE_QUEUED ? next_us : int64_t{0}});
      outcomes.push_back({&cl, state, std::move(error)});
    }
    // A row whose lease another claim took over (expired) is not updated: the new claim records
    // its own outcome.
    ECRM_ASSIGN_OR_RETURN(
        std::set<int64_t> updated,
        UpdateRows(c,
                   "state = v.column2, last_error = v.column3, provider_message_id = v.column4, "
                   "sent_at = v.column5, next_attempt_at = v.column6, sending = 0, lease_until = "
                   "0, lease_owner = ''",
                   {"BIGINT", "INTEGER", "TEXT", "TEXT", "BIGINT", "BIGINT"}, rows,
                   absl::StrCat(" AND deliveries.lease_owner = $1 AND +deliveries.state = ", kQueued), {owner}));
    for (const Outcome& o : outcomes) {
      const v1::Delivery& d = o.cl->row.delivery;
      if (!updated.contains(o.cl->row.seq)) continue;
      if (o.state != v1::DELIVERY_STATE_SENT) forget.push_back(d.id());
      progress.Move(d.broadcast_id(), d.state(), d.suppression_reason(), o.state, d.suppression_reason());
      if (o.state == v1::DELIVERY_STATE_SENT) {
        events.push_back(MessageEvent(d, "sent", done_us));
        raised = true;
      } else if (o.state == v1::DELIVERY_STATE_FAILED) {
        events.push_back(MessageEvent(d, "failed", done_us, o.error));
        raised = true;
      } else if (o.state == v1::DELIVERY_STATE_QUEUED) {
        ++retries;
        continue;
      }
      outcome_effects.push_back({d.channel(), o.state, v1::SUPPRESSION_REASON_UNSPECIFIED});
      if (!d.broadcast_id().empty()) touched.insert(d.broadcast_id());
    }
    ECRM_RETURN_IF_ERROR(caps_.Forget(c, forget));
    ECRM_RETURN_IF_ERROR(progress.Write(c));
    return events_.AddMany(c, events);
  }));
  if (raised) events_.Notify();
  for (const Effect& e : outcome_effects) metrics_.Delivery(e.channel, e.state);
  metrics_.retries.Increment(retries);

  // 6. A broadcast completes when no delivery of it is left queued.
  for (const std::string& id : touched) {
    ECRM_RETURN_IF_ERROR(db_.Execute("UPDATE broadcasts SET state = $2, completed_at = $3 WHERE id = $1 AND state = $4 "
                                     "AND loaded = 1 AND NOT EXISTS (SELECT 1 FROM deliveries WHERE broadcast_id = $1 "
                                     "AND state = 1)",
                                     {id, static_cast<int>(v1::BROADCAST_STATE_COMPLETED), done_us,
                                      static_cast<int>(v1::BROADCAST_STATE_RUNNING)})
                             .status());
  }
  return static_cast<int>(claimed.size());
}

}  // namespace ecrm::broadcast
