// The file channel (JSON lines, fsync per batch) and building the channels from flags and the
// environment.
#include "channels/file_channel.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "channels/channels_config.h"
#include "channels/smtp_channel.h"
#include "channels/webhook_channel.h"
#include "ecrm/testing/process.h"

namespace ecrm::broadcast {
namespace {

using Json = nlohmann::json;

std::vector<Json> ReadLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<Json> out;
  std::string line;
  while (std::getline(in, line)) out.push_back(Json::parse(line));
  return out;
}

OutgoingMessage Message(int n) {
  return {.delivery_id = absl::StrCat("d-", n),
          .customer_id = "c-1",
          .channel = common::v1::CHANNEL_EMAIL,
          .purpose = common::v1::PURPOSE_MARKETING,
          .address = "ann@example.org",
          .subject = "Grüße",
          .text_body = "line one\nline two",
          .html_body = "<p>hi</p>",
          .unsubscribe_url = "https://shop.example/u/1",
          .campaign_id = "camp"};
}

TEST_CASE("file channel: one JSON line per message, appended batch after batch") {
  ecrm::testing::TempDir dir;
  const std::string path = dir.path() + "/outbox.jsonl";
  auto channel = FileChannel::Open(path, [] { return absl::FromUnixSeconds(1796129367); });
  REQUIRE(channel.ok());
  std::vector<SendResult> r = (*channel)->Send({Message(1), Message(2)});
  for (const SendResult& x : r) CHECK(x.outcome == SendOutcome::kAccepted);
  OutgoingMessage bad_utf8 = Message(3);
  bad_utf8.text_body = "broken \xff byte";
  CHECK((*channel)->Send({bad_utf8})[0].outcome == SendOutcome::kAccepted);

  std::vector<Json> lines = ReadLines(path);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0]["delivery_id"] == "d-1");
  CHECK(lines[1]["delivery_id"] == "d-2");
  CHECK(lines[0]["channel"] == "email");
  CHECK(lines[0]["purpose"] == "marketing");
  CHECK(lines[0]["address"] == "ann@example.org");
  CHECK(lines[0]["subject"] == "Grüße");
  CHECK(lines[0]["text_body"] == "line one\nline two");
  CHECK(lines[0]["unsubscribe_url"] == "https://shop.example/u/1");
  CHECK(lines[0]["written_at"] == "2026-12-01T12:49:27.000Z");
  CHECK(lines[2]["text_body"] == "broken \xEF\xBF\xBD byte");

  // Reopening appends.
  channel = FileChannel::Open(path);
  REQUIRE(channel.ok());
  (*channel)->Send({Message(4)});
  CHECK(ReadLines(path).size() == 4);
}

TEST_CASE("file channel: concurrent batches never interleave their lines") {
  ecrm::testing::TempDir dir;
  const std::string path = dir.path() + "/outbox.jsonl";
  auto channel = FileChannel::Open(path);
  REQUIRE(channel.ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<OutgoingMessage> batch;
      for (int i = 0; i < 50; ++i) batch.push_back(Message(t * 1000 + i));
      (*channel)->Send(batch);
    });
  }
  for (auto& t : threads) t.join();
  std::vector<Json> lines = ReadLines(path);  // every line parses
  REQUIRE(lines.size() == 200);
  // Each batch's 50 lines are contiguous and in order.
  for (size_t start = 0; start < lines.size(); start += 50) {
    int first = std::stoi(lines[start]["delivery_id"].get<std::string>().substr(2));
    for (int i = 0; i < 50; ++i) CHECK(lines[start + i]["delivery_id"] == absl::StrCat("d-", first + i));
  }
}

TEST_CASE("file channel: a path that cannot be opened is refused at start, naming it") {
  ecrm::testing::TempDir dir;
  auto channel = FileChannel::Open(dir.path() + "/missing/dir/outbox.jsonl");
  CHECK(channel.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(channel.status().message(), "file-channel-path"));
}

absl::StatusOr<ChannelsConfig> Parse(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  ChannelsConfig config;
  config::Flags flags("ecrm-broadcast", "test");
  RegisterChannelFlags(flags, &config);
  args.insert(args.begin(), "ecrm-broadcast");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  auto getenv = [&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  if (absl::Status s = flags.Parse(static_cast<int>(argv.size()), argv.data(), getenv); !s.ok()) return s;
  LoadChannelSecrets(&config, getenv);
  return config;
}

TEST_CASE("channels config: flags and environment, secrets only from the environment") {
  auto config = Parse({"--smtp-url=smtp://127.0.0.1:2525", "--smtp-from=news@shop.example", "--smtp-user=mailer",
                       "--sms-webhook-url=http://127.0.0.1:9/sms", "--push-webhook-profile=fcm"},
                      {{"ECRM_SMTP_PASSWORD", "pw"},
                       {"ECRM_WEBHOOK_SECRET", "hook-secret"},
                       {"ECRM_PUSH_WEBHOOK_URL", "http://127.0.0.1:9/push"},
                       {"ECRM_PUSH_WEBHOOK_AUTHORIZATION", "Bearer t"}});
  REQUIRE(config.ok());
  CHECK(config->smtp_url == "smtp://127.0.0.1:2525");
  CHECK(config->smtp_user == "mailer");
  CHECK(config->smtp_password == "pw");
  CHECK(config->webhook_secret == "hook-secret");
  CHECK(config->push_webhook_url == "http://127.0.0.1:9/push");
  CHECK(config->push_webhook_profile == "fcm");
  CHECK(config->push_webhook_authorization == "Bearer t");
  // There is no flag for a secret.
  CHECK(Parse({"--smtp-password=pw"}).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Parse({"--webhook-secret=s"}).status().code() == absl::StatusCode::kInvalidArgument);

  absl::StatusOr<Channels> channels = BuildChannels(*config);
  REQUIRE(channels.ok());
  CHECK(dynamic_cast<SmtpChannel*>(channels->Find(common::v1::CHANNEL_EMAIL)) != nullptr);
  CHECK(dynamic_cast<WebhookChannel*>(channels->Find(common::v1::CHANNEL_SMS)) != nullptr);
  CHECK(dynamic_cast<WebhookChannel*>(channels->Find(common::v1::CHANNEL_PUSH)) != nullptr);
  CHECK(channels->Find(common::v1::CHANNEL_WEB) == nullptr);
  CHECK(channels->description == "email=smtp sms=webhook(generic) push=webhook(fcm)");
  CHECK(!absl::StrContains(channels->description, "pw"));
}

TEST_CASE("channels config: the file channel carries every channel without a transport") {
  ecrm::testing::TempDir dir;
  auto config = Parse(
      {absl::StrCat("--file-channel-path=", dir.path(), "/out.jsonl"), "--sms-webhook-url=http://127.0.0.1:9/sms"});
  REQUIRE(config.ok());
  auto channels = BuildChannels(*config);
  REQUIRE(channels.ok());
  CHECK(dynamic_cast<FileChannel*>(channels->Find(common::v1::CHANNEL_EMAIL)) != nullptr);
  CHECK(dynamic_cast<WebhookChannel*>(channels->Find(common::v1::CHANNEL_SMS)) != nullptr);
  CHECK(dynamic_cast<FileChannel*>(channels->Find(common::v1::CHANNEL_PUSH)) != nullptr);
  CHECK(channels->description == "sms=webhook(generic) email=file push=file");

  auto none = BuildChannels(ChannelsConfig{});
  REQUIRE(none.ok());
  CHECK(none->by_channel.empty());
  CHECK(none->description == "none");
}

TEST_CASE("channels config: incomplete or bad settings name the flag") {
  struct Case {
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
    std::string flag;
  };
  ecrm::testing::TempDir dir;
  const std::string key_file = dir.path() + "/dkim.pem";
  std::ofstream(key_file) << "not a key\n";
  const std::vector<Case> cases = {
      {{"--smtp-url=smtp://127.0.0.1:25"}, {}, "smtp-from"},
      {{"--smtp-url=http://127.0.0.1:25", "--smtp-from=a@shop.example"}, {}, "smtp-url"},
      {{"--smtp-url=smtp://127.0.0.1:25", "--smtp-from=not-an-address"}, {}, "smtp-from"},
      {{"--smtp-url=smtp://127.0.0.1:25", "--smtp-from=a@shop.example", "--smtp-user=u"}, {}, "ECRM_SMTP_PASSWORD"},
      {{"--smtp-url=smtp://127.0.0.1:25", "--smtp-from=a@shop.example", "--dkim-selector=s"}, {}, "dkim-key-file"},
      {{"--smtp-url=smtp://127.0.0.1:25", "--smtp-from=a@shop.example", "--dkim-selector=s", "--dkim-domain=d.example",
        "--dkim-key-file=" + dir.path() + "/missing.pem"},
       {},
       "dkim-key-file"},
      {{"--smtp-url=smtp://127.0.0.1:25", "--smtp-from=a@shop.example", "--dkim-selector=s", "--dkim-domain=d.example",
        "--dkim-key-file=" + key_file},
       {},
       "dkim-key-file"},
      {{"--sms-webhook-url=http://127.0.0.1:9/sms", "--sms-webhook-profile=nope"}, {}, "sms-webhook-url"},
      {{"--sms-webhook-url=http://127.0.0.1:9/sms", "--sms-webhook-profile=fcm"}, {}, "sms-webhook-url"},
      {{"--push-webhook-url=ftp://127.0.0.1/push"}, {}, "push-webhook-url"},
      {{"--sms-webhook-url=http://127.0.0.1:9/sms", "--webhook-max-in-flight=0"}, {}, "webhook-max-in-flight"},
      {{"--sms-webhook-url=http://127.0.0.1:9/sms", "--sms-webhook-profile=generic-batch", "--webhook-batch-size=0"},
       {},
       "webhook-batch-size"},
      {{"--sms-webhook-url=http://127.0.0.1:9/sms", "--webhook-batch-size=1001"}, {}, "webhook-batch-size"},
      {{"--file-channel-path=" + dir.path() + "/no/such/dir/x.jsonl"}, {}, "file-channel-path"},
  };
  for (const Case& c : cases) {
    auto config = Parse(c.args, c.env);
    REQUIRE(config.ok());
    absl::StatusOr<Channels> channels = BuildChannels(*config);
    INFO(c.args.back() << " -> " << channels.status().ToString());
    CHECK(channels.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(absl::StrContains(channels.status().message(), c.flag));
  }
}

}  // namespace
}  // namespace ecrm::broadcast
