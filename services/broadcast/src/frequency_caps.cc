#include "frequency_caps.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "ecrm/status/macros.h"
#include "ecrm/util/util.h"

namespace ecrm::broadcast {
namespace {

absl::Status BadRule(absl::string_view rule, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("frequency cap \"", rule, "\": ", why));
}

bool ParseWindow(absl::string_view text, absl::Duration* out) {
  if (absl::ConsumeSuffix(&text, "d")) {
    int64_t days = 0;
    if (!absl::SimpleAtoi(text, &days) || days <= 0) return false;
    *out = absl::Hours(24 * days);
    return true;
  }
  return absl::ParseDuration(text, out) && *out > absl::ZeroDuration();
}

}  // namespace

absl::StatusOr<std::vector<CapRule>> ParseCapRules(absl::string_view spec) {
  std::vector<CapRule> out;
  for (absl::string_view rule : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    rule = absl::StripAsciiWhitespace(rule);
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(rule, absl::MaxSplits('=', 1));
    std::pair<absl::string_view, absl::string_view> lw = absl::StrSplit(kv.second, absl::MaxSplits('/', 1));
    CapRule r;
    if (!absl::SimpleAtoi(lw.first, &r.limit) || r.limit < 0) return BadRule(rule, "the limit must be a count >= 0");
    if (!ParseWindow(lw.second, &r.window)) return BadRule(rule, "the window must be a duration such as 24h or 7d");
    absl::string_view scope = kv.first;
    if (scope == "global") {
      r.scope = CapRule::Scope::kGlobal;
    } else if (absl::ConsumePrefix(&scope, "category:")) {
      if (scope.empty()) return BadRule(rule, "the category is empty");
      r.scope = CapRule::Scope::kCategory;
      r.category = std::string(scope);
    } else {
      common::v1::Channel ch;
      if (!common::v1::Channel_Parse(absl::StrCat("CHANNEL_", absl::AsciiStrToUpper(scope)), &ch) ||
          ch == common::v1::CHANNEL_UNSPECIFIED) {
        return BadRule(rule, "the scope must be global, a channel (email, sms, push, web) or category:<name>");
      }
      r.scope = CapRule::Scope::kChannel;
      r.channel = ch;
    }
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<std::set<common::v1::Purpose>> ParseExemptPurposes(absl::string_view spec) {
  std::set<common::v1::Purpose> out;
  for (absl::string_view p : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    common::v1::Purpose purpose;
    if (!common::v1::Purpose_Parse(absl::StrCat("PURPOSE_", absl::AsciiStrToUpper(absl::StripAsciiWhitespace(p))),
                                   &purpose)) {
      return absl::InvalidArgumentError(absl::StrCat("cap-exempt purpose \"", p, "\" is not a purpose"));
    }
    out.insert(purpose);
  }
  return out;
}

bool FrequencyCaps::Counts(common::v1::Channel channel, common::v1::Purpose purpose,
                           const std::string& category) const {
  if (config_.exempt.contains(purpose)) return false;
  for (const CapRule& r : config_.rules) {
    switch (r.scope) {
      case CapRule::Scope::kGlobal:
        return true;
      case CapRule::Scope::kChannel:
        if (r.channel == channel) return true;
        break;
      case CapRule::Scope::kCategory:
        if (r.category == category) return true;
        break;
    }
  }
  return false;
}

absl::StatusOr<bool> FrequencyCaps::Admit(sql::Connection& c, const std::string& delivery_id,
                                          const std::string& customer_id, common::v1::Channel channel,
                                          common::v1::Purpose purpose, const std::string& category, absl::Time now) {
  if (!Counts(channel, purpose, category)) return true;
  if (c.dialect() == sql::Dialect::kPostgres) {
    // The customer's lock row serialises concurrent admissions for them until commit.
    ECRM_RETURN_IF_ERROR(
        c.Execute("INSERT INTO cap_locks (customer_id) VALUES ($1) ON CONFLICT DO NOTHING", {customer_id}).status());
    ECRM_RETURN_IF_ERROR(
        c.Execute("SELECT customer_id FROM cap_locks WHERE customer_id = $1 FOR UPDATE", {customer_id}).status());
  }
  const int64_t now_us = absl::ToUnixMicros(now);
  for (const CapRule& r : config_.rules) {
    const int64_t since = now_us - absl::ToInt64Microseconds(r.window);
    absl::StatusOr<sql::Result> n;
    switch (r.scope) {
      case CapRule::Scope::kGlobal:
        n = c.Execute("SELECT COUNT(*) FROM cap_sends WHERE customer_id = $1 AND sent_at > $2", {customer_id, since});
        break;
      case CapRule::Scope::kChannel:
        if (r.channel != channel) continue;
        n = c.Execute("SELECT COUNT(*) FROM cap_sends WHERE customer_id = $1 AND sent_at > $2 AND channel = $3",
                      {customer_id, since, static_cast<int>(channel)});
        break;
      case CapRule::Scope::kCategory:
        if (r.category != category) continue;
        n = c.Execute("SELECT COUNT(*) FROM cap_sends WHERE customer_id = $1 AND sent_at > $2 AND category = $3",
                      {customer_id, since, category});
        break;
    }
    if (!n.ok()) return n.status();
    if (n->front().Int(0) >= r.limit) return false;
  }
  ECRM_RETURN_IF_ERROR(c.Execute("INSERT INTO cap_sends (delivery_id, customer_id, channel, category, sent_at) VALUES "
                                 "($1, $2, $3, $4, $5) ON CONFLICT (delivery_id) DO UPDATE SET sent_at = $5",
                                 {delivery_id, customer_id, static_cast<int>(channel), category, now_us})
                           .status());
  return true;
}

absl::Status FrequencyCaps::Forget(sql::Connection& c, const std::string& delivery_id) {
  return c.Execute("DELETE FROM cap_sends WHERE delivery_id = $1", {delivery_id}).status();
}

absl::Status FrequencyCaps::Forget(sql::Connection& c, const std::vector<std::string>& delivery_ids) {
  constexpr size_t kChunk = 500;
  for (size_t i = 0; i < delivery_ids.size(); i += kChunk) {
    const size_t n = std::min(kChunk, delivery_ids.size() - i);
    std::vector<sql::Value> params(delivery_ids.begin() + static_cast<std::ptrdiff_t>(i),
                                   delivery_ids.begin() + static_cast<std::ptrdiff_t>(i + n));
    ECRM_RETURN_IF_ERROR(c.Execute(absl::StrCat("DELETE FROM cap_sends WHERE delivery_id IN (",
                                                util::Placeholders(1, static_cast<int>(n)), ")"),
                                   params)
                             .status());
  }
  return absl::OkStatus();
}

}  // namespace ecrm::broadcast
