#include "gate.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "quiet_hours.h"

namespace ecrm::broadcast {
namespace {

using common::v1::Channel;
using common::v1::Purpose;

constexpr Channel kEveryChannel[] = {common::v1::CHANNEL_EMAIL, common::v1::CHANNEL_SMS, common::v1::CHANNEL_PUSH,
                                     common::v1::CHANNEL_WEB};

// Marketing needs a granted consent for the channel; service and transactional messages need
// none, but an explicit refusal for their own purpose on the channel is honoured.
bool Consented(const infostore::v1::Customer& customer, Channel channel, Purpose purpose) {
  for (const infostore::v1::Consent& c : customer.consents()) {
    if (c.channel() != channel || c.purpose() != purpose) continue;
    return c.status() == infostore::v1::CONSENT_STATUS_GRANTED ||
           (purpose != common::v1::PURPOSE_MARKETING && c.status() != infostore::v1::CONSENT_STATUS_DENIED &&
            c.status() != infostore::v1::CONSENT_STATUS_WITHDRAWN);
  }
  return purpose != common::v1::PURPOSE_MARKETING;
}

bool Suppressed(const std::vector<SuppressionEntry>& entries, const std::string& customer_id, Channel channel,
                const std::string& address, Purpose purpose) {
  for (const SuppressionEntry& e : entries) {
    if (e.channel != common::v1::CHANNEL_UNSPECIFIED && e.channel != channel) continue;
    const bool matches =
        e.customer_id.empty() ? (!address.empty() && e.address == address) : e.customer_id == customer_id;
    if (matches && SuppressionApplies(e.reason, purpose)) return true;
  }
  return false;
}

}  // namespace

bool SuppressionApplies(const std::string& reason, Purpose purpose) {
  if (reason == "unsubscribed" || reason == "complaint") return purpose == common::v1::PURPOSE_MARKETING;
  return true;
}

std::string NormaliseAddress(Channel channel, const std::string& address) {
  std::string out(absl::StripAsciiWhitespace(address));
  if (channel == common::v1::CHANNEL_EMAIL) absl::AsciiStrToLower(&out);
  return out;
}

std::string AddressFor(const infostore::v1::Customer& customer, Channel channel) {
  common::v1::IdentifierType type;
  switch (channel) {
    case common::v1::CHANNEL_EMAIL:
      type = common::v1::IDENTIFIER_TYPE_EMAIL;
      break;
    case common::v1::CHANNEL_SMS:
      type = common::v1::IDENTIFIER_TYPE_PHONE;
      break;
    case common::v1::CHANNEL_PUSH:
      type = common::v1::IDENTIFIER_TYPE_DEVICE_ID;
      break;
    case common::v1::CHANNEL_WEB:
      return customer.id();
    default:
      return "";
  }
  for (const common::v1::Identifier& id : customer.identifiers()) {
    if (id.type() == type && !id.value().empty()) return NormaliseAddress(channel, id.value());
  }
  return "";
}

GateDecision Decide(const infostore::v1::Customer& customer, const GateRequest& request,
                    const std::vector<SuppressionEntry>& suppressions, const std::set<Channel>& available,
                    absl::Time now) {
  GateDecision out;
  std::vector<Channel> candidates = request.channels;
  if (candidates.empty()) candidates.assign(std::begin(kEveryChannel), std::end(kEveryChannel));
  const bool marketing = request.purpose == common::v1::PURPOSE_MARKETING;
  const Channel preferred = customer.preferences().preferred_channel();
  if (preferred != common::v1::CHANNEL_UNSPECIFIED) {
    auto it = std::find(candidates.begin(), candidates.end(), preferred);
    if (it != candidates.end()) {
      std::rotate(candidates.begin(), it, it + 1);  // the customer's channel first
    } else if (marketing) {
      // The customer asked to hear on another channel than any this message may use.
      out.kind = GateDecision::Kind::kSuppress;
      out.reason = v1::SUPPRESSION_REASON_CHANNEL_PREFERENCE;
      return out;
    }
  }
  v1::SuppressionReason first_reason = v1::SUPPRESSION_REASON_UNSPECIFIED;
  for (Channel ch : candidates) {
    if (!available.contains(ch)) continue;
    v1::SuppressionReason reason = v1::SUPPRESSION_REASON_UNSPECIFIED;
    const std::string address = AddressFor(customer, ch);
    if (!Consented(customer, ch, request.purpose)) {
      reason = v1::SUPPRESSION_REASON_NO_CONSENT;
    } else if (address.empty()) {
      reason = v1::SUPPRESSION_REASON_NO_ADDRESS;
    } else if (Suppressed(suppressions, customer.id(), ch, address, request.purpose)) {
      reason = v1::SUPPRESSION_REASON_SUPPRESSION_LIST;
    }
    if (reason != v1::SUPPRESSION_REASON_UNSPECIFIED) {
      if (first_reason == v1::SUPPRESSION_REASON_UNSPECIFIED) first_reason = reason;
      continue;
    }
    out.channel = ch;
    out.address = address;
    break;
  }
  if (out.channel == common::v1::CHANNEL_UNSPECIFIED) {
    if (first_reason == v1::SUPPRESSION_REASON_UNSPECIFIED) {
      out.kind = GateDecision::Kind::kFail;
      out.error = "none of the message's channels is configured on this engine";
    } else {
      out.kind = GateDecision::Kind::kSuppress;
      out.reason = first_reason;
    }
    return out;
  }
  // Quiet hours keep marketing from interrupting; the web inbox interrupts no one.
  const infostore::v1::QuietHours& q = customer.preferences().quiet_hours();
  if (marketing && out.channel != common::v1::CHANNEL_WEB && q.has_start() && q.has_end()) {
    const QuietWindow window{q.start().hours() * 60 + q.start().minutes(), q.end().hours() * 60 + q.end().minutes()};
    if (std::optional<absl::Time> until = QuietUntil(now, window, ZoneOrUtc(customer.profile().time_zone()))) {
      if (request.quiet_hours == v1::QUIET_HOURS_POLICY_DROP) {
        out.kind = GateDecision::Kind::kSuppress;
        out.reason = v1::SUPPRESSION_REASON_QUIET_HOURS;
      } else {
        out.kind = GateDecision::Kind::kDefer;
        out.until = *until;
      }
      return out;
    }
  }
  out.kind = GateDecision::Kind::kSend;
  return out;
}

}  // namespace ecrm::broadcast
