// Which delivery channels the engine has, from flags and the environment. main.cc registers the
// flags, reads the secrets from the environment and builds the channels:
//
//   ChannelsConfig channels_config;
//   RegisterChannelFlags(runner.flags(), &channels_config);
//   ... runner.Start(argc, argv) ...
//   LoadChannelSecrets(&channels_config, [](const char* n) { return std::getenv(n); });
//   auto channels = BuildChannels(channels_config);
//
// Flags (each also ECRM_<NAME> in the environment, as every flag):
//   --smtp-url                smtp://host[:port][/ehlo-domain] or smtps://…; empty: no SMTP
//   --smtp-from               sender address (From: and MAIL FROM)
//   --smtp-from-name          sender display name
//   --smtp-user               AUTH user; the password is ECRM_SMTP_PASSWORD (never a flag)
//   --smtp-require-tls        refuse to send without STARTTLS (default: use it when offered)
//   --smtp-ca-file            CA bundle for the SMTP server's certificate
//   --smtp-timeout            per message, connecting included (60s)
//   --smtp-connections        connections one batch is sent over at once (4)
//   --dkim-key-file, --dkim-selector, --dkim-domain   DKIM signing (all three, or none)
//   --sms-webhook-url, --sms-webhook-profile          SMS provider endpoint and body profile
//   --push-webhook-url, --push-webhook-profile        push provider endpoint and body profile
//   --webhook-timeout         per request (15s)
//   --webhook-max-in-flight   concurrent requests per Send (64)
//   --webhook-batch-size      messages per request with a batch profile (generic-batch; 100)
//   --file-channel-path       JSON lines file; carries every channel that has no transport
// Secrets (environment only): ECRM_SMTP_PASSWORD, ECRM_WEBHOOK_SECRET (HMAC key of provider
// requests), ECRM_SMS_WEBHOOK_AUTHORIZATION and ECRM_PUSH_WEBHOOK_AUTHORIZATION (Authorization
// header values).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "channel.h"
#include "ecrm/config/flags.h"

namespace ecrm::broadcast {

struct ChannelsConfig {
  std::string smtp_url;
  std::string smtp_from;
  std::string smtp_from_name;
  std::string smtp_user;
  bool smtp_require_tls = false;
  std::string smtp_ca_file;
  absl::Duration smtp_connect_timeout = absl::Seconds(10);
  absl::Duration smtp_timeout = absl::Seconds(60);
  int64_t smtp_connections = 4;

  std::string dkim_key_file;
  std::string dkim_selector;
  std::string dkim_domain;

  std::string sms_webhook_url;
  std::string sms_webhook_profile = "generic";
  std::string push_webhook_url;
  std::string push_webhook_profile = "generic";
  std::string webhook_ca_file;
  absl::Duration webhook_connect_timeout = absl::Seconds(5);
  absl::Duration webhook_timeout = absl::Seconds(15);
  int64_t webhook_max_in_flight = 64;
  int64_t webhook_batch_size = 100;

  std::string file_channel_path;

  // Secrets: from the environment (LoadChannelSecrets), never flags.
  std::string smtp_password;
  std::string webhook_secret;
  std::string sms_webhook_authorization;
  std::string push_webhook_authorization;
};

// Registers the flags above, bound to *config (whose current values are the defaults).
void RegisterChannelFlags(config::Flags& flags, ChannelsConfig* config);

// Reads ECRM_SMTP_PASSWORD, ECRM_WEBHOOK_SECRET, ECRM_SMS_WEBHOOK_AUTHORIZATION and
// ECRM_PUSH_WEBHOOK_AUTHORIZATION.
void LoadChannelSecrets(ChannelsConfig* config, const std::function<const char*(const char*)>& getenv);

// The engine's channels, by channel. A channel absent from the map has no transport configured.
struct Channels {
  std::map<common::v1::Channel, std::shared_ptr<Channel>> by_channel;
  // Null when the channel is not configured.
  Channel* Find(common::v1::Channel channel) const;
  // "email=smtp sms=webhook(generic) push=file": for the start-up log (no secrets).
  std::string description;
};

// Builds the channels; INVALID_ARGUMENT naming the flag for a bad or incomplete configuration
// (e.g. --dkim-selector without --dkim-key-file, an unreadable key, an unknown profile).
absl::StatusOr<Channels> BuildChannels(const ChannelsConfig& config);

}  // namespace ecrm::broadcast
