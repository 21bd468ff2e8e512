// The send-time gate as a pure function: each suppression reason, consent per purpose, the
// preferred channel, and quiet hours in the customer's zone across a DST change.
#include <catch2/catch.hpp>

#include "frequency_caps.h"
#include "gate.h"
#include "quiet_hours.h"

namespace bc = ecrm::broadcast;
namespace common = ecrm::common::v1;
namespace info = ecrm::infostore::v1;
using Kind = bc::GateDecision::Kind;

namespace {

info::Customer Customer() {
  info::Customer c;
  c.set_id("c_1");
  auto* email = c.add_identifiers();
  email->set_type(common::IDENTIFIER_TYPE_EMAIL);
  email->set_value(" Ann@Example.COM ");
  auto* phone = c.add_identifiers();
  phone->set_type(common::IDENTIFIER_TYPE_PHONE);
  phone->set_value("+447700900123");
  return c;
}

void Consent(info::Customer& c, common::Channel ch, common::Purpose p, info::ConsentStatus s) {
  auto* consent = c.add_consents();
  consent->set_channel(ch);
  consent->set_purpose(p);
  consent->set_status(s);
}

const std::set<common::Channel> kAll = {common::CHANNEL_EMAIL, common::CHANNEL_SMS, common::CHANNEL_PUSH,
                                        common::CHANNEL_WEB};

bc::GateRequest Request(std::vector<common::Channel> channels, common::Purpose purpose = common::PURPOSE_MARKETING) {
  bc::GateRequest r;
  r.channels = std::move(channels);
  r.purpose = purpose;
  return r;
}

absl::Time At(absl::CivilSecond local, const absl::TimeZone& zone) { return absl::FromCivil(local, zone); }

}  // namespace

TEST_CASE("marketing needs a granted consent for the channel, service and transactional messages do not") {
  info::Customer c = Customer();
  const absl::Time now = absl::Now();
  auto d = bc::Decide(c, Request({common::CHANNEL_EMAIL}), {}, kAll, now);
  CHECK(d.kind == Kind::kSuppress);
  CHECK(d.reason == ecrm::broadcast::v1::SUPPRESSION_REASON_NO_CONSENT);

  d = bc::Decide(c, Request({common::CHANNEL_EMAIL}, common::PURPOSE_SERVICE), {}, kAll, now);
  REQUIRE(d.kind == Kind::kSend);
  CHECK(d.channel == common::CHANNEL_EMAIL);
  CHECK(d.address == "ann@example.com");  // normalised
  CHECK(bc::Decide(c, Request({common::CHANNEL_SMS}, common::PURPOSE_TRANSACTIONAL), {}, kAll, now).kind ==
        Kind::kSend);

  // Consent for another purpose or channel is not consent for this one.
  Consent(c, common::CHANNEL_SMS, common::PURPOSE_MARKETING, info::CONSENT_STATUS_GRANTED);
  Consent(c, common::CHANNEL_EMAIL, common::PURPOSE_PROFILING, info::CONSENT_STATUS_GRANTED);
  CHECK(bc::Decide(c, Request({common::CHANNEL_EMAIL}), {}, kAll, now).reason ==
        ecrm::broadcast::v1::SUPPRESSION_REASON_NO_CONSENT);
  CHECK(bc::Decide(c, Request({common::CHANNEL_SMS}), {}, kAll, now).kind == Kind::kSend);

  // A withdrawn consent stops marketing; an explicit refusal of service messages stops those.
  info::Customer w = Customer();
  Consent(w, common::CHANNEL_EMAIL, common::PURPOSE_MARKETING, info::CONSENT_STATUS_WITHDRAWN);
  CHECK(bc::Decide(w, Request({common::CHANNEL_EMAIL}), {}, kAll, now).kind == Kind::kSuppress);
  Consent(w, common::CHANNEL_EMAIL, common::PURPOSE_SERVICE, info::CONSENT_STATUS_DENIED);
  CHECK(bc::Decide(w, Request({common::CHANNEL_EMAIL}, common::PURPOSE_SERVICE), {}, kAll, now).reason ==
        ecrm::broadcast::v1::SUPPRESSION_REASON_NO_CONSENT);
}

TEST_CASE("the first consented channel with an address, the customer's preferred one first") {
  info::Customer c = Customer();
  Consent(c, common::CHANNEL_EMAIL, common::PURPOSE_MARKETING, info::CONSENT_STATUS_GRANTED);
  Consent(c, common::CHANNEL_SMS, common::PURPOSE_MARKETING, info::CONSENT_STATUS_GRANTED);
  Consent(c, common::CHANNEL_PUSH, common::PURPOSE_MARKETING, info::CONSENT_STATUS_GRANTED);
  const absl::Time now = absl::Now();
  // No device token: push is skipped, email is next.
  auto d = bc::Decide(c, Request({common::CHANNEL_PUSH, common::CHANNEL_EMAIL, common::CHANNEL_SMS}), {}, kAll, now);
  CHECK(d.channel == common::CHANNEL_EMAIL);
  c.mutable_preferences()->set_preferred_channel(common::CHANNEL_SMS);
  d = bc::Decide(c, Request({common::CHANNEL_PUSH, common::CHANNEL_EMAIL, common::CHANNEL_SMS}), {}, kAll, now);
  CHECK(d.channel == common::CHANNEL_SMS);
  CHECK(d.address == "+447700900123");
  // An unconfigured channel is never picked.
  d = bc::Decide(c, Request({common::CHANNEL_SMS, common::CHANNEL_EMAIL}), {},
                 {common::CHANNEL_EMAIL, common::CHANNEL_WEB}, now);
  CHECK(d.channel == common::CHANNEL_EMAIL);
  // Marketing only on channels the customer does not prefer: held back.
  d = bc::Decide(c, Request({common::CHANNEL_EMAIL}), {}, kAll, now);
  CHECK(d.kind == Kind::kSuppress);
  CHECK(d.reason == ecrm::broadcast::v1::SUPPRESSION_REASON_CHANNEL_PREFERENCE);
  // A service message goes where it must.
  CHECK(bc::Decide(c, Request({common::CHANNEL_EMAIL}, common::PURPOSE_SERVICE), {}, kAll, now).kind == Kind::kSend);
}

TEST_CASE("no address, and the suppression list by address, hashed address and customer") {
  info::Customer c = Customer();
  Consent(c, common::CHANNEL_PUSH, common::PURPOSE_MARKETING, info::CONSENT_STATUS_GRANTED);
  Consent(c, common::CHANNEL_EMAIL, common::PURPOSE_MARKETING, info::CONSENT_STATUS_GRANTED);
  const absl::Time now = absl::Now();
  CHECK(bc::Decide(c, Request({common::CHANNEL_PUSH}), {}, kAll, now).reason ==
        ecrm::broadcast::v1::SUPPRESSION_REASON_NO_ADDRESS);

  const std::vector<bc::SuppressionEntry> bounced = {{common::CHANNEL_EMAIL, "ann@example.com", "", "hard_bounce", 0}};
  auto d = bc::Decide(c, Request({common::CHANNEL_EMAIL}), bounced, kAll, now);
  CHECK(d.reason == ecrm::broadcast::v1::SUPPRESSION_REASON_SUPPRESSION_LIST);
  // A hard bounce stops service mail too; an unsubscribe or complaint only marketing.
  CHECK(bc::Decide(c, Request({common::CHANNEL_EMAIL}, common::PURPOSE_SERVICE), bounced, kAll, now).kind ==
        Kind::kSuppress);
  const std::vector<bc::SuppressionEntry> unsubscribed = {{common::CHANNEL_EMAIL, "", "c_1", "unsubscribed", 0}};
  CHECK(bc::Decide(c, Request({common::CHANNEL_EMAIL}), unsubscribed, kAll, now).reason ==
        ecrm::broadcast::v1::SUPPRESSION_REASON_SUPPRESSION_LIST);
  CHECK(bc::Decide(c, Request({common::CHANNEL_EMAIL}, common::PURPOSE_SERVICE), unsubscribed, kAll, now).kind ==
        Kind::kSend);
  // An entry for every channel (channel unspecified) and one for another channel.
  const std::vector<bc::SuppressionEntry> everywhere = {{common::CHANNEL_UNSPECIFIED, "", "c_1", "manual", 0}};
  CHECK(bc::Decide(c, Request({common::CHANNEL_EMAIL}), everywhere, kAll, now).kind == Kind::kSuppress);
  const std::vector<bc::SuppressionEntry> sms_only = {{common::CHANNEL_SMS, "", "c_1", "manual", 0}};
  CHECK(bc::Decide(c, Request({common::CHANNEL_EMAIL}), sms_only, kAll, now).kind == Kind::kSend);
}

TEST_CASE("quiet hours in the customer's zone: the window's end is right across a DST change") {
  const absl::TimeZone london = bc::ZoneOrUtc("Europe/London");
  const bc::QuietWindow night{21 * 60, 8 * 60};  // 21:00 - 08:00, wrapping midnight
  // The night the clocks go forward (29 March 2026, 01:00 GMT -> 02:00 BST): 08:00 local is 07:00 UTC.
  auto until = bc::QuietUntil(At(absl::CivilSecond(2026, 3, 28, 23, 30, 0), london), night, london);
  REQUIRE(until.has_value());
  CHECK(*until == absl::FromCivil(absl::CivilSecond(2026, 3, 29, 7, 0, 0), absl::UTCTimeZone()));
  // The night they go back (25 October 2026): 08:00 GMT is 08:00 UTC.
  until = bc::QuietUntil(At(absl::CivilSecond(2026, 10, 25, 0, 30, 0), london), night, london);
  REQUIRE(until.has_value());
  CHECK(*until == absl::FromCivil(absl::CivilSecond(2026, 10, 25, 8, 0, 0), absl::UTCTimeZone()));
  // Outside the window, and a window that does not wrap.
  CHECK_FALSE(bc::QuietUntil(At(absl::CivilSecond(2026, 3, 28, 12, 0, 0), london), night, london).has_value());
  const bc::QuietWindow lunch{12 * 60, 13 * 60 + 30};
  until = bc::QuietUntil(At(absl::CivilSecond(2026, 7, 1, 12, 10, 0), london), lunch, london);
  REQUIRE(until.has_value());
  CHECK(*until == At(absl::CivilSecond(2026, 7, 1, 13, 30, 0), london));
  // A window ending in the hour a DST change skips ends at the change.
  const bc::QuietWindow to_half_one{0, 60 + 30};
  until = bc::QuietUntil(At(absl::CivilSecond(2026, 3, 29, 0, 30, 0), london), to_half_one, london);
  REQUIRE(until.has_value());
  CHECK(*until == absl::FromCivil(absl::CivilSecond(2026, 3, 29, 1, 0, 0), absl::UTCTimeZone()));
  CHECK(bc::ZoneOrUtc("Not/A_Zone") == absl::UTCTimeZone());
}

TEST_CASE("the gate defers or drops marketing inside quiet hours, never service messages or the inbox") {
  info::Customer c = Customer();
  Consent(c, common::CHANNEL_SMS, common::PURPOSE_MARKETING, info::CONSENT_STATUS_GRANTED);
  Consent(c, common::CHANNEL_WEB, common::PURPOSE_MARKETING, info::CONSENT_STATUS_GRANTED);
  c.mutable_profile()->set_time_zone("America/New_York");
  auto* q = c.mutable_preferences()->mutable_quiet_hours();
  q->mutable_start()->set_hours(22);
  q->mutable_end()->set_hours(7);
  const absl::TimeZone ny = bc::ZoneOrUtc("America/New_York");
  // 8 March 2026 is New York's spring-forward night: 07:00 EDT is 11:00 UTC.
  const absl::Time night = At(absl::CivilSecond(2026, 3, 8, 1, 30, 0), ny);
  auto d = bc::Decide(c, Request({common::CHANNEL_SMS}), {}, kAll, night);
  REQUIRE(d.kind == Kind::kDefer);
  CHECK(d.until == absl::FromCivil(absl::CivilSecond(2026, 3, 8, 11, 0, 0), absl::UTCTimeZone()));
  bc::GateRequest drop = Request({common::CHANNEL_SMS});
  drop.quiet_hours = ecrm::broadcast::v1::QUIET_HOURS_POLICY_DROP;
  d = bc::Decide(c, drop, {}, kAll, night);
  CHECK(d.kind == Kind::kSuppress);
  CHECK(d.reason == ecrm::broadcast::v1::SUPPRESSION_REASON_QUIET_HOURS);
  CHECK(bc::Decide(c, Request({common::CHANNEL_SMS}, common::PURPOSE_TRANSACTIONAL), {}, kAll, night).kind ==
        Kind::kSend);
  CHECK(bc::Decide(c, Request({common::CHANNEL_WEB}), {}, kAll, night).kind == Kind::kSend);
  CHECK(bc::Decide(c, Request({common::CHANNEL_SMS}), {}, kAll, At(absl::CivilSecond(2026, 3, 8, 12, 0, 0), ny)).kind ==
        Kind::kSend);
}

TEST_CASE("frequency cap rules parse, and name what is wrong") {
  auto rules = bc::ParseCapRules("global=3/7d, email=1/24h,category:newsletter=2/168h");
  REQUIRE(rules.ok());
  REQUIRE(rules->size() == 3);
  CHECK((*rules)[0].scope == bc::CapRule::Scope::kGlobal);
  CHECK((*rules)[0].window == absl::Hours(24 * 7));
  CHECK((*rules)[1].channel == common::CHANNEL_EMAIL);
  CHECK((*rules)[2].category == "newsletter");
  CHECK(bc::ParseCapRules("fax=1/1d").status().message().find("fax") != std::string::npos);
  CHECK_FALSE(bc::ParseCapRules("email=x/1d").ok());
  CHECK_FALSE(bc::ParseCapRules("email=1/0d").ok());
  CHECK(bc::ParseExemptPurposes("transactional, service").value().size() == 2);
  CHECK_FALSE(bc::ParseExemptPurposes("spam").ok());
}
