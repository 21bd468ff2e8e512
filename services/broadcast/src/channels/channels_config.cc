#include "channels/channels_config.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "channels/file_channel.h"
#include "channels/mime.h"
#include "channels/smtp_channel.h"
#include "channels/webhook_channel.h"

namespace ecrm::broadcast {

void RegisterChannelFlags(config::Flags& f, ChannelsConfig* c) {
  f.AddString("smtp-url", &c->smtp_url,
              "SMTP server for email: smtp://host[:port][/ehlo-domain] (STARTTLS when offered) or smtps://host[:port]; "
              "empty: email goes to --file-channel-path if set, else is not configured");
  f.AddString("smtp-from", &c->smtp_from, "sender address of email (From: and MAIL FROM)");
  f.AddString("smtp-from-name", &c->smtp_from_name, "sender display name of email");
  f.AddString("smtp-user", &c->smtp_user,
              "SMTP AUTH user; the password is read from ECRM_SMTP_PASSWORD (there is no password flag)");
  f.AddBool("smtp-require-tls", &c->smtp_require_tls, "refuse to send email unless the server offers STARTTLS");
  f.AddString("smtp-ca-file", &c->smtp_ca_file, "CA bundle for the SMTP server's certificate; empty: the system's");
  f.AddDuration("smtp-connect-timeout", &c->smtp_connect_timeout, "connecting to the SMTP server");
  f.AddDuration("smtp-timeout", &c->smtp_timeout, "sending one email, connecting included");
  f.AddInt("smtp-connections", &c->smtp_connections,
           "SMTP connections each worker's batch is sent over at once (1-16; workers x this in all)");
  f.AddString("dkim-key-file", &c->dkim_key_file, "PEM RSA private key for DKIM signing; empty: email is not signed");
  f.AddString("dkim-selector", &c->dkim_selector, "DKIM selector (s=)");
  f.AddString("dkim-domain", &c->dkim_domain, "DKIM signing domain (d=)");
  f.AddString("sms-webhook-url", &c->sms_webhook_url, "SMS provider endpoint (http or https)");
  f.AddString("sms-webhook-profile", &c->sms_webhook_profile,
              "request body profile of the SMS provider: generic or generic-batch");
  f.AddString("push-webhook-url", &c->push_webhook_url, "push provider endpoint (http or https)");
  f.AddString("push-webhook-profile", &c->push_webhook_profile,
              "request body profile of the push provider: generic, generic-batch or fcm");
  f.AddString("webhook-ca-file", &c->webhook_ca_file, "CA bundle for the providers' certificates; empty: the system's");
  f.AddDuration("webhook-connect-timeout", &c->webhook_connect_timeout, "connecting to an SMS or push provider");
  f.AddDuration("webhook-timeout", &c->webhook_timeout, "one SMS or push request, connecting included");
  f.AddInt("webhook-max-in-flight", &c->webhook_max_in_flight, "SMS or push requests in flight at once per batch");
  f.AddInt("webhook-batch-size", &c->webhook_batch_size,
           "messages per request to a provider whose profile takes batches (generic-batch): 1-1000");
  f.AddString("file-channel-path", &c->file_channel_path,
              "development: append every message of a channel without a transport to this file as JSON lines");
}

void LoadChannelSecrets(ChannelsConfig* c, const std::function<const char*(const char*)>& getenv) {
  auto read = [&](const char* name, std::string* target) {
    if (const char* v = getenv(name)) *target = v;
  };
  read("ECRM_SMTP_PASSWORD", &c->smtp_password);
  read("ECRM_WEBHOOK_SECRET", &c->webhook_secret);
  read("ECRM_SMS_WEBHOOK_AUTHORIZATION", &c->sms_webhook_authorization);
  read("ECRM_PUSH_WEBHOOK_AUTHORIZATION", &c->push_webhook_authorization);
}

Channel* Channels::Find(common::v1::Channel channel) const {
  auto it = by_channel.find(channel);
  return it == by_channel.end() ? nullptr : it->second.get();
}

namespace {

absl::StatusOr<std::unique_ptr<DkimSigner>> LoadDkim(const ChannelsConfig& c) {
  const bool any = !c.dkim_key_file.empty() || !c.dkim_selector.empty() || !c.dkim_domain.empty();
  if (!any) return nullptr;
  if (c.dkim_key_file.empty() || c.dkim_selector.empty() || c.dkim_domain.empty()) {
    return absl::InvalidArgumentError("dkim-key-file, dkim-selector and dkim-domain: set all three or none");
  }
  std::ifstream in(c.dkim_key_file);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("dkim-key-file ", c.dkim_key_file, ": cannot be read"));
  std::stringstream key;
  key << in.rdbuf();
  absl::StatusOr<std::unique_ptr<DkimSigner>> signer =
      DkimSigner::Create({.private_key_pem = key.str(), .selector = c.dkim_selector, .domain = c.dkim_domain});
  if (!signer.ok()) return signer.status();
  return signer;
}

absl::StatusOr<std::unique_ptr<WebhookChannel>> MakeWebhook(const ChannelsConfig& c, const std::string& url,
                                                            const std::string& profile,
                                                            const std::string& authorization,
                                                            common::v1::Channel channel, absl::string_view flag) {
  absl::StatusOr<std::unique_ptr<WebhookChannel>> ch =
      WebhookChannel::Create({.url = url,
                              .profile = profile,
                              .secret = c.webhook_secret,
                              .authorization = authorization,
                              .ca_file = c.webhook_ca_file,
                              .connect_timeout = c.webhook_connect_timeout,
                              .timeout = c.webhook_timeout,
                              .max_in_flight = static_cast<int>(c.webhook_max_in_flight),
                              .batch_size = static_cast<int>(c.webhook_batch_size)},
                             channel);
  if (!ch.ok()) return absl::InvalidArgumentError(absl::StrCat(flag, ": ", ch.status().message()));
  return ch;
}

}  // namespace

absl::StatusOr<Channels> BuildChannels(const ChannelsConfig& c) {
  Channels out;
  std::vector<std::string> described;
  if (!c.smtp_url.empty()) {
    if (c.smtp_from.empty()) return absl::InvalidArgumentError("smtp-from: required with --smtp-url");
    if (c.smtp_connections < 1 || c.smtp_connections > 16) {
      return absl::InvalidArgumentError("smtp-connections: must be 1-16");
    }
    absl::StatusOr<std::unique_ptr<DkimSigner>> dkim = LoadDkim(c);
    if (!dkim.ok()) return dkim.status();
    const bool signing = *dkim != nullptr;
    absl::StatusOr<std::unique_ptr<SmtpChannel>> smtp =
        SmtpChannel::Create({.url = c.smtp_url,
                             .identity = {.from_address = c.smtp_from, .from_name = c.smtp_from_name},
                             .user = c.smtp_user,
                             .password = c.smtp_password,
                             .require_tls = c.smtp_require_tls,
                             .ca_file = c.smtp_ca_file,
                             .connect_timeout = c.smtp_connect_timeout,
                             .timeout = c.smtp_timeout,
                             .connections = static_cast<int>(c.smtp_connections)},
                            *std::move(dkim));
    if (!smtp.ok()) return smtp.status();
    out.by_channel[common::v1::CHANNEL_EMAIL] = *std::move(smtp);
    described.push_back(absl::StrCat("email=smtp", signing ? "+dkim" : ""));
  } else if (!c.dkim_key_file.empty()) {
    return absl::InvalidArgumentError("dkim-key-file: signing needs --smtp-url");
  }
  if (c.webhook_max_in_flight <= 0) return absl::InvalidArgumentError("webhook-max-in-flight: must be positive");
  if (c.webhook_batch_size < 1 || c.webhook_batch_size > 1000) {
    return absl::InvalidArgumentError("webhook-batch-size: must be 1-1000");
  }
  if (!c.sms_webhook_url.empty()) {
    auto sms = MakeWebhook(c, c.sms_webhook_url, c.sms_webhook_profile, c.sms_webhook_authorization,
                           common::v1::CHANNEL_SMS, "sms-webhook-url");
    if (!sms.ok()) return sms.status();
    out.by_channel[common::v1::CHANNEL_SMS] = *std::move(sms);
    described.push_back(absl::StrCat("sms=webhook(", c.sms_webhook_profile, ")"));
  }
  if (!c.push_webhook_url.empty()) {
    auto push = MakeWebhook(c, c.push_webhook_url, c.push_webhook_profile, c.push_webhook_authorization,
                            common::v1::CHANNEL_PUSH, "push-webhook-url");
    if (!push.ok()) return push.status();
    out.by_channel[common::v1::CHANNEL_PUSH] = *std::move(push);
    described.push_back(absl::StrCat("push=webhook(", c.push_webhook_profile, ")"));
  }
  if (!c.file_channel_path.empty()) {
    absl::StatusOr<std::unique_ptr<FileChannel>> file = FileChannel::Open(c.file_channel_path);
    if (!file.ok()) return file.status();
    std::shared_ptr<Channel> shared = *std::move(file);
    for (auto [channel, name] :
         {std::pair{common::v1::CHANNEL_EMAIL, "email"}, std::pair{common::v1::CHANNEL_SMS, "sms"},
          std::pair{common::v1::CHANNEL_PUSH, "push"}}) {
      if (out.by_channel.emplace(channel, shared).second) described.push_back(absl::StrCat(name, "=file"));
    }
  }
  out.description = described.empty() ? "none" : absl::StrJoin(described, " ");
  return out;
}

}  // namespace ecrm::broadcast
