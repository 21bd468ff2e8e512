// The send-time gate: for one message to one customer, which channel and address it goes to, or
// why it must not go (every reason a SUPPRESSION_REASON_*), or until when it waits. A pure
// function of the customer's profile, the suppression entries that concern them and the time:
// the outbox calls it when a delivery comes up, with the profile read just then, so a consent
// withdrawn or an unsubscribe after the message was queued stops it. Frequency caps need the
// database and are counted separately (frequency_caps.h) after the gate lets a message through.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "ecrm/broadcast/v1/broadcast.pb.h"
#include "ecrm/common/v1/common.pb.h"
#include "ecrm/infostore/v1/infostore.pb.h"

namespace ecrm::broadcast {

// One entry of the suppression list (suppressions.h).
struct SuppressionEntry {
  common::v1::Channel channel = common::v1::CHANNEL_UNSPECIFIED;  // unspecified: every channel
  std::string address;                                            // '' for a customer entry
  std::string customer_id;                                        // '' for an address entry
  std::string reason;  // hard_bounce, complaint, unsubscribed, manual, erased
  int64_t created_at_us = 0;
};

// Whether an entry with this reason stops a message of this purpose: an unsubscribe or a
// complaint is about marketing, so service and transactional messages still go; a hard bounce,
// an erasure or a manual entry stops everything.
bool SuppressionApplies(const std::string& reason, common::v1::Purpose purpose);

// Lower-cased, trimmed email; phone numbers and device tokens trimmed.
std::string NormaliseAddress(common::v1::Channel channel, const std::string& address);

// The customer's address on a channel ('' when they have none): email, phone (E.164), device
// token; the web inbox is addressed by the customer id.
std::string AddressFor(const infostore::v1::Customer& customer, common::v1::Channel channel);

struct GateRequest {
  // Candidate channels in the sender's order of preference; empty: every available channel.
  std::vector<common::v1::Channel> channels;
  common::v1::Purpose purpose = common::v1::PURPOSE_MARKETING;
  v1::QuietHoursPolicy quiet_hours = v1::QUIET_HOURS_POLICY_UNSPECIFIED;
};

struct GateDecision {
  enum class Kind { kSend, kSuppress, kDefer, kFail };
  Kind kind = Kind::kFail;
  common::v1::Channel channel = common::v1::CHANNEL_UNSPECIFIED;
  std::string address;
  v1::SuppressionReason reason = v1::SUPPRESSION_REASON_UNSPECIFIED;  // kSuppress
  absl::Time until;                                                   // kDefer
  std::string error;                                                  // kFail
};

// `available`: the channels this engine can send on (configured, plus the web inbox).
GateDecision Decide(const infostore::v1::Customer& customer, const GateRequest& request,
                    const std::vector<SuppressionEntry>& suppressions, const std::set<common::v1::Channel>& available,
                    absl::Time now);

}  // namespace ecrm::broadcast
