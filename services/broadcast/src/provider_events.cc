#include "provider_events.h"

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "ecrm/util/util.h"

namespace ecrm::broadcast {
namespace {

constexpr size_t kMaxEvents = 1000;
constexpr size_t kMaxDetail = 2048;
constexpr size_t kMaxId = 256;

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::StatusOr<v1::RecordDeliveryEventRequest> ParseEvent(const nlohmann::json& e, const std::string& field) {
  if (!e.is_object()) return Invalid(field, "must be an object");
  auto text = [&](const char* name, std::string* out) -> absl::Status {
    auto it = e.find(name);
    if (it == e.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_string()) return Invalid(absl::StrCat(field, ".", name), "must be a string");
    *out = it->get<std::string>();
    return absl::OkStatus();
  };
  std::string type, bounce_type, delivery_id, provider_id, detail;
  for (auto [name, out] :
       {std::pair{"type", &type}, std::pair{"bounce_type", &bounce_type}, std::pair{"delivery_id", &delivery_id},
        std::pair{"provider_message_id", &provider_id}, std::pair{"detail", &detail}}) {
    if (absl::Status s = text(name, out); !s.ok()) return s;
  }
  v1::RecordDeliveryEventRequest req;
  if (type == "delivered") {
    req.set_type(v1::DELIVERY_EVENT_TYPE_DELIVERED);
  } else if (type == "bounce") {
    if (bounce_type == "hard") {
      req.set_type(v1::DELIVERY_EVENT_TYPE_HARD_BOUNCE);
    } else if (bounce_type == "soft") {
      req.set_type(v1::DELIVERY_EVENT_TYPE_SOFT_BOUNCE);
    } else {
      return Invalid(absl::StrCat(field, ".bounce_type"), "must be \"hard\" or \"soft\" for a bounce");
    }
  } else if (type == "complaint") {
    req.set_type(v1::DELIVERY_EVENT_TYPE_COMPLAINT);
  } else if (type == "opened") {
    req.set_type(v1::DELIVERY_EVENT_TYPE_OPENED);
  } else if (type == "clicked") {
    req.set_type(v1::DELIVERY_EVENT_TYPE_CLICKED);
  } else if (type == "unsubscribed") {
    req.set_type(v1::DELIVERY_EVENT_TYPE_UNSUBSCRIBED);
  } else {
    return Invalid(absl::StrCat(field, ".type"),
                   "must be delivered, bounce, complaint, opened, clicked or unsubscribed");
  }
  if (delivery_id.empty() == provider_id.empty()) {
    return Invalid(absl::StrCat(field, ".delivery_id"), "exactly one of delivery_id and provider_message_id is needed");
  }
  if (delivery_id.size() > kMaxId || provider_id.size() > kMaxId) {
    return Invalid(absl::StrCat(field, ".delivery_id"), "ids are at most 256 bytes");
  }
  req.set_delivery_id(delivery_id);
  req.set_provider_message_id(provider_id);
  if (detail.size() > kMaxDetail) return Invalid(absl::StrCat(field, ".detail"), "is over 2048 bytes");
  req.set_detail(detail);
  if (auto it = e.find("occurred_at"); it != e.end() && !it->is_null()) {
    absl::Time at;
    std::string err;
    if (it->is_number_integer()) {
      at = absl::FromUnixSeconds(it->get<int64_t>());
    } else if (!it->is_string() || !absl::ParseTime(absl::RFC3339_full, it->get<std::string>(), &at, &err)) {
      return Invalid(absl::StrCat(field, ".occurred_at"), "must be unix seconds or an RFC 3339 time");
    }
    if (at < absl::FromUnixSeconds(946684800) || at > absl::FromUnixSeconds(32503680000)) {
      return Invalid(absl::StrCat(field, ".occurred_at"), "is not a plausible time");
    }
    *req.mutable_occurred_at() = util::Ts(absl::ToUnixMicros(at));
  }
  return req;
}

// One header-style field block of a DSN: lower-cased names, unfolded values, first one wins.
struct Block {
  std::vector<std::pair<std::string, std::string>> fields;
  std::string Get(absl::string_view name) const {
    for (const auto& [n, v] : fields) {
      if (n == name) return v;
    }
    return "";
  }
};

std::vector<Block> Blocks(absl::string_view message) {
  std::vector<Block> out(1);
  for (absl::string_view raw : absl::StrSplit(message, '\n')) {
    absl::string_view line = absl::StripSuffix(raw, "\r");
    if (absl::StripAsciiWhitespace(line).empty()) {
      if (!out.back().fields.empty()) out.emplace_back();
      continue;
    }
    if ((line.front() == ' ' || line.front() == '\t') && !out.back().fields.empty()) {
      absl::StrAppend(&out.back().fields.back().second, " ", absl::StripAsciiWhitespace(line));
      continue;
    }
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos || colon == 0) continue;  // body text, a boundary line
    absl::string_view name = line.substr(0, colon);
    if (absl::StrContains(name, ' ') || absl::StrContains(name, '\t')) continue;
    out.back().fields.emplace_back(absl::AsciiStrToLower(name),
                                   std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  }
  return out;
}

// "rfc822; ann@example.com" -> "ann@example.com".
std::string AfterType(absl::string_view value) {
  const size_t semi = value.find(';');
  return std::string(absl::StripAsciiWhitespace(semi == absl::string_view::npos ? value : value.substr(semi + 1)));
}

bool ValidStatus(absl::string_view s) {
  std::vector<absl::string_view> parts = absl::StrSplit(s, '.');
  if (parts.size() != 3 || (parts[0] != "2" && parts[0] != "4" && parts[0] != "5")) return false;
  for (absl::string_view p : parts) {
    if (p.empty() || p.size() > 3) return false;
    for (char c : p) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<v1::RecordDeliveryEventRequest>> ParseProviderWebhook(absl::string_view json) {
  nlohmann::json doc = nlohmann::json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError("body: not JSON");
  std::vector<v1::RecordDeliveryEventRequest> out;
  if (doc.is_object() && doc.contains("events")) {
    const nlohmann::json& events = doc["events"];
    if (!events.is_array() || events.empty() || events.size() > kMaxEvents) {
      return Invalid("events", "must be an array of 1-1000 events");
    }
    for (size_t i = 0; i < events.size(); ++i) {
      absl::StatusOr<v1::RecordDeliveryEventRequest> e = ParseEvent(events[i], absl::StrCat("events[", i, "]"));
      if (!e.ok()) return e.status();
      out.push_back(std::move(*e));
    }
    return out;
  }
  absl::StatusOr<v1::RecordDeliveryEventRequest> e = ParseEvent(doc, "event");
  if (!e.ok()) return e.status();
  out.push_back(std::move(*e));
  return out;
}

std::string DeliveryIdFromMessageId(absl::string_view message_id) {
  absl::string_view v = absl::StripAsciiWhitespace(message_id);
  if (!absl::ConsumePrefix(&v, "<") || !absl::ConsumeSuffix(&v, ">")) return "";
  const size_t at = v.rfind('@');
  if (at == absl::string_view::npos || at == 0) return "";
  absl::string_view local = v.substr(0, at);
  std::string out;
  for (size_t i = 0; i < local.size(); ++i) {
    const char c = local[i];
    if (c == '=') {
      if (i + 2 >= local.size()) return "";
      const std::string hex(local.substr(i + 1, 2));
      if (hex.size() != 2 || !absl::ascii_isxdigit(static_cast<unsigned char>(hex[0])) ||
          !absl::ascii_isxdigit(static_cast<unsigned char>(hex[1]))) {
        return "";
      }
      out += absl::HexStringToBytes(hex);
      i += 2;
    } else if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') {
      out.push_back(c);
    } else {
      return "";
    }
  }
  return out;
}

absl::StatusOr<DeliveryStatus> ParseDeliveryStatus(absl::string_view message) {
  std::vector<Block> blocks = Blocks(message);
  size_t recipient = blocks.size();
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (!blocks[i].Get("action").empty() && !blocks[i].Get("status").empty()) {
      recipient = i;
      break;
    }
  }
  if (recipient == blocks.size()) {
    return absl::InvalidArgumentError(
        "body: not a delivery status notification (RFC 3464): no per-recipient block with Action and Status");
  }
  DeliveryStatus out;
  const Block& r = blocks[recipient];
  out.action = absl::AsciiStrToLower(r.Get("action"));
  if (out.action != "failed" && out.action != "delayed" && out.action != "delivered" && out.action != "relayed" &&
      out.action != "expanded") {
    return Invalid("Action", "must be failed, delayed, delivered, relayed or expanded");
  }
  out.status = r.Get("status");
  // "5.1.1 (user unknown)": the code is the first word.
  out.status = std::string(absl::StripAsciiWhitespace(out.status.substr(0, out.status.find_first_of(" \t("))));
  if (!ValidStatus(out.status)) return Invalid("Status", "must be a class.subject.detail code such as 5.1.1");
  out.diagnostic = r.Get("diagnostic-code");
  out.recipient = AfterType(r.Get("final-recipient"));
  // The envelope id is a per-message field (the block before); the Message-ID is in the returned
  // headers after the recipient blocks (the DSN's own Message-ID, above them, is not it).
  for (size_t i = 0; i <= recipient && out.delivery_id.empty(); ++i) {
    out.delivery_id = std::string(absl::StripAsciiWhitespace(blocks[i].Get("original-envelope-id")));
  }
  for (size_t i = recipient + 1; i < blocks.size() && out.delivery_id.empty(); ++i) {
    out.delivery_id = DeliveryIdFromMessageId(blocks[i].Get("message-id"));
  }
  if (out.delivery_id.empty()) {
    return absl::InvalidArgumentError(
        "body: names no delivery (no Original-Envelope-Id, and no returned Message-ID of this engine's)");
  }
  if (out.delivery_id.size() > kMaxId) return Invalid("Original-Envelope-Id", "is over 256 bytes");
  if (out.diagnostic.size() > kMaxDetail) out.diagnostic.resize(kMaxDetail);
  return out;
}

std::optional<v1::RecordDeliveryEventRequest> DeliveryStatusEvent(const DeliveryStatus& s) {
  v1::RecordDeliveryEventRequest req;
  req.set_delivery_id(s.delivery_id);
  req.set_detail(s.diagnostic.empty() ? absl::StrCat("DSN ", s.action, " ", s.status)
                                      : absl::StrCat(s.status, " ", s.diagnostic));
  if (req.detail().size() > kMaxDetail) req.mutable_detail()->resize(kMaxDetail);
  const char klass = s.status.empty() ? '0' : s.status[0];
  if (s.action == "failed" && klass == '5') {
    req.set_type(v1::DELIVERY_EVENT_TYPE_HARD_BOUNCE);
  } else if (s.action == "failed" && klass == '4') {
    req.set_type(v1::DELIVERY_EVENT_TYPE_SOFT_BOUNCE);
  } else if ((s.action == "delivered" || s.action == "relayed" || s.action == "expanded") && klass == '2') {
    req.set_type(v1::DELIVERY_EVENT_TYPE_DELIVERED);
  } else {
    return std::nullopt;  // delayed: the reporting MTA keeps trying; nothing is final
  }
  return req;
}

}  // namespace ecrm::broadcast
