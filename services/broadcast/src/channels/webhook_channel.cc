#include "channels/webhook_channel.h"

#include <curl/curl.h>

#include <algorithm>
#include <deque>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "channels/curl_util.h"
#include "channels/signing.h"

namespace ecrm::broadcast {
namespace {

using Json = nlohmann::json;

// Providers' answers are read up to this size (ids are near the start; errors are cut anyway);
// a batch's answer, which holds a result per message, up to the larger one.
constexpr size_t kMaxResponseBytes = 64 * 1024;
constexpr size_t kMaxBatchResponseBytes = 8 * 1024 * 1024;
constexpr int kMaxBatchSize = 1000;
// A Retry-After beyond a day is a provider's mistake more than a plan.
constexpr int64_t kMaxRetryAfterSeconds = 24 * 3600;

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::string LowerSuffix(const std::string& enum_name) {
  size_t underscore = enum_name.find('_');
  return absl::AsciiStrToLower(underscore == std::string::npos ? enum_name : enum_name.substr(underscore + 1));
}

Json GenericJson(const OutgoingMessage& m) {
  Json j = {{"to", m.address},
            {"body", m.text_body},
            {"idempotency_key", m.delivery_id},
            {"delivery_id", m.delivery_id},
            {"channel", LowerSuffix(common::v1::Channel_Name(m.channel))},
            {"purpose", LowerSuffix(common::v1::Purpose_Name(m.purpose))}};
  if (!m.subject.empty()) j["title"] = m.subject;
  if (!m.customer_id.empty()) j["customer_id"] = m.customer_id;
  if (!m.campaign_id.empty()) j["campaign_id"] = m.campaign_id;
  return j;
}

std::string GenericBody(const OutgoingMessage& m) { return Dump(GenericJson(m)); }

std::string GenericBatchBody(absl::Span<const OutgoingMessage* const> messages) {
  Json array = Json::array();
  for (const OutgoingMessage* m : messages) array.push_back(GenericJson(*m));
  return Dump(array);
}

std::string FcmBody(const OutgoingMessage& m) {
  Json notification = {{"body", m.text_body}};
  if (!m.subject.empty()) notification["title"] = m.subject;
  Json data = {{"delivery_id", m.delivery_id}};
  if (!m.campaign_id.empty()) data["campaign_id"] = m.campaign_id;
  return Dump({{"message", {{"token", m.address}, {"notification", notification}, {"data", data}}}});
}

// A header value from our own id: printable ASCII kept, anything else %XX.
std::string HeaderSafe(absl::string_view s) {
  std::string out;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u > 0x20 && u < 0x7f && c != '%') {
      out.push_back(c);
    } else {
      absl::StrAppend(&out, "%", absl::AsciiStrToUpper(absl::BytesToHexString(absl::string_view(&c, 1))));
    }
  }
  return out;
}

// Printable, one line, bounded: what a provider said, fit for Delivery.last_error.
std::string Snippet(absl::string_view body) {
  std::string out(body.substr(0, 300));
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = ' ';
  }
  return std::string(absl::StripAsciiWhitespace(out));
}

absl::Status ValidateAddress(const OutgoingMessage& m) {
  if (m.address.empty()) return absl::InvalidArgumentError("address: empty");
  if (m.channel == common::v1::CHANNEL_SMS) {
    // E.164: "+", then 8 to 15 digits, the first not 0.
    absl::string_view a = m.address;
    bool ok = a.size() >= 9 && a.size() <= 16 && a[0] == '+' && a[1] != '0';
    for (size_t i = 1; ok && i < a.size(); ++i) ok = absl::ascii_isdigit(static_cast<unsigned char>(a[i]));
    if (!ok) return absl::InvalidArgumentError("address: an SMS needs an E.164 number (+ and 8 to 15 digits)");
  } else {
    for (char c : m.address) {
      unsigned char u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u == 0x7f)
        return absl::InvalidArgumentError("address: a device token holds no spaces or controls");
    }
  }
  if (m.text_body.empty()) return absl::InvalidArgumentError("text_body: empty");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<WebhookProfile> FindWebhookProfile(absl::string_view name) {
  if (name == "generic") {
    return WebhookProfile{.name = "generic",
                          .body = GenericBody,
                          .id_pointers = {"/id", "/message_id"},
                          .channels = {common::v1::CHANNEL_SMS, common::v1::CHANNEL_PUSH}};
  }
  if (name == "generic-batch") {
    return WebhookProfile{.name = "generic-batch",
                          .body = GenericBody,
                          .batch_body = GenericBatchBody,
                          .id_pointers = {"/id", "/message_id"},
                          .channels = {common::v1::CHANNEL_SMS, common::v1::CHANNEL_PUSH}};
  }
  if (name == "fcm") {
    return WebhookProfile{
        .name = "fcm", .body = FcmBody, .id_pointers = {"/name"}, .channels = {common::v1::CHANNEL_PUSH}};
  }
  return absl::NotFoundError(
      absl::StrCat("webhook profile \"", name, "\" is not known (known: generic, generic-batch, fcm)"));
}

std::string WebhookSignature(absl::string_view secret, int64_t unix_seconds, absl::string_view body) {
  return RequestSignature(secret, unix_seconds, body);
}

// A multi handle with its connection cache, and the easy handles that went through it.
struct WebhookChannel::Pool {
  CURLM* multi = nullptr;
  std::vector<CURL*> easies;
  ~Pool() {
    for (CURL* e : easies) curl_easy_cleanup(e);
    if (multi != nullptr) curl_multi_cleanup(multi);
  }
  CURL* TakeEasy() {
    if (easies.empty()) return curl_easy_init();
    CURL* e = easies.back();
    easies.pop_back();
    return e;
  }
};

namespace {

// One request: one message, or a batch profile's several (their indexes in the Send call).
struct Transfer {
  size_t id = 0;
  std::vector<size_t> indexes;
  CURL* easy = nullptr;
  std::string body;
  std::string response;
  size_t max_response = kMaxResponseBytes;
  curl_slist* headers = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {};
  ~Transfer() { curl_slist_free_all(headers); }

  static size_t Write(char* data, size_t size, size_t nmemb, void* userdata) {
    auto* t = static_cast<Transfer*>(userdata);
    size_t n = size * nmemb;
    if (t->response.size() < t->max_response)
      t->response.append(data, std::min(n, t->max_response - t->response.size()));
    return n;
  }
};

bool Temporary(long status) { return status == 429 || status == 408 || status == 425 || status >= 500; }

// The provider's id in an answer (or a batch answer's result), by the profile's pointers.
std::string ProviderId(const Json& answer, const std::vector<std::string>& pointers) {
  if (!answer.is_object()) return "";
  for (const std::string& pointer : pointers) {
    Json::json_pointer p(pointer);
    if (!answer.contains(p)) continue;
    const Json& id = answer.at(p);
    std::string out;
    if (id.is_string())
      out = id.get<std::string>();
    else if (id.is_number())
      out = Dump(id);
    if (!out.empty()) return out;
  }
  return "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<WebhookChannel>> WebhookChannel::Create(WebhookSettings settings,
                                                                       common::v1::Channel channel) {
  if (!absl::StartsWith(settings.url, "https://") && !absl::StartsWith(settings.url, "http://")) {
    return absl::InvalidArgumentError("webhook url: expected http:// or https://");
  }
  absl::StatusOr<WebhookProfile> profile = FindWebhookProfile(settings.profile);
  if (!profile.ok()) return absl::InvalidArgumentError(profile.status().message());
  if (std::find(profile->channels.begin(), profile->channels.end(), channel) == profile->channels.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("webhook profile \"", profile->name, "\" cannot carry ", common::v1::Channel_Name(channel)));
  }
  if (settings.max_in_flight <= 0) return absl::InvalidArgumentError("webhook max_in_flight: must be positive");
  if (settings.batch_size < 1 || settings.batch_size > kMaxBatchSize) {
    return absl::InvalidArgumentError(absl::StrCat("webhook batch_size: must be 1-", kMaxBatchSize));
  }
  if (settings.connect_timeout <= absl::ZeroDuration() || settings.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("webhook timeouts: must be positive");
  }
  curl_util::EnsureInitialised();
  return std::unique_ptr<WebhookChannel>(new WebhookChannel(std::move(settings), *std::move(profile)));
}

WebhookChannel::WebhookChannel(WebhookSettings settings, WebhookProfile profile)
    : settings_(std::move(settings)), profile_(std::move(profile)) {}

WebhookChannel::~WebhookChannel() = default;

int64_t WebhookChannel::connections_opened() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connections_opened_;
}

std::unique_ptr<WebhookChannel::Pool> WebhookChannel::Acquire() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      std::unique_ptr<Pool> p = std::move(idle_.back());
      idle_.pop_back();
      return p;
    }
  }
  auto p = std::make_unique<Pool>();
  p->multi = curl_multi_init();
  if (p->multi == nullptr) return nullptr;
  curl_multi_setopt(p->multi, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(settings_.max_in_flight));
  curl_multi_setopt(p->multi, CURLMOPT_MAXCONNECTS, static_cast<long>(settings_.max_in_flight));
  return p;
}

void WebhookChannel::Release(std::unique_ptr<Pool> pool) {
  std::lock_guard<std::mutex> lock(mu_);
  if (static_cast<int>(idle_.size()) < settings_.max_idle_pools) idle_.push_back(std::move(pool));
}

std::vector<SendResult> WebhookChannel::Send(absl::Span<const OutgoingMessage> messages) {
  std::vector<SendResult> results(messages.size());
  // The requests to make, each the indexes of its messages: one each, or a batch profile's
  // batch_size at a time.
  std::deque<std::vector<size_t>> pending;
  const size_t per_request = profile_.batch_body ? static_cast<size_t>(settings_.batch_size) : 1;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (absl::Status s = ValidateAddress(messages[i]); !s.ok()) {
      results[i].outcome = SendOutcome::kPermanentFailure;
      results[i].error = std::string(s.message());
      continue;
    }
    if (pending.empty() || pending.back().size() >= per_request) pending.emplace_back();
    pending.back().push_back(i);
  }
  if (pending.empty()) return results;
  std::unique_ptr<Pool> pool = Acquire();
  if (pool == nullptr) {
    for (const auto& request : pending) {
      for (size_t i : request) results[i].error = "webhook: cannot create a libcurl multi handle";
    }
    return results;
  }
  const int64_t timestamp = absl::ToUnixSeconds(settings_.now());
  std::vector<std::unique_ptr<Transfer>> transfers;
  int running = 0;
  int64_t connects_total = 0;

  auto start = [&](std::vector<size_t> indexes) -> bool {
    auto t = std::make_unique<Transfer>();
    t->id = transfers.size();
    t->indexes = std::move(indexes);
    t->easy = pool->TakeEasy();
    if (t->easy == nullptr) return false;
    if (profile_.batch_body) {
      std::vector<const OutgoingMessage*> batch;
      for (size_t i : t->indexes) batch.push_back(&messages[i]);
      t->body = profile_.batch_body(batch);
      t->max_response = kMaxBatchResponseBytes;
    } else {
      t->body = profile_.body(messages[t->indexes.front()]);
    }
    t->headers = curl_slist_append(t->headers, "Content-Type: application/json");
    t->headers = curl_slist_append(t->headers, "Accept: application/json");
    t->headers = curl_slist_append(t->headers, "Expect:");  // no 100-continue round trip
    if (!profile_.batch_body) {
      t->headers = curl_slist_append(
          t->headers, absl::StrCat("Idempotency-Key: ", HeaderSafe(messages[t->indexes.front()].delivery_id)).c_str());
    }
    if (!settings_.secret.empty()) {
      t->headers = curl_slist_append(t->headers, absl::StrCat("X-Ecrm-Timestamp: ", timestamp).c_str());
      t->headers = curl_slist_append(
          t->headers,
          absl::StrCat("X-Ecrm-Signature: ", WebhookSignature(settings_.secret, timestamp, t->body)).c_str());
    }
    if (!settings_.authorization.empty()) {
      t->headers = curl_slist_append(t->headers, absl::StrCat("Authorization: ", settings_.authorization).c_str());
    }
    CURL* e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, settings_.url.c_str());
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->body.size()));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Transfer::Write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, curl_util::Millis(settings_.connect_timeout));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, curl_util::Millis(settings_.timeout));
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (!settings_.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, settings_.ca_file.c_str());
    if (curl_multi_add_handle(pool->multi, e) != CURLM_OK) {
      pool->easies.push_back(e);
      return false;
    }
    transfers.push_back(std::move(t));
    ++running;
    return true;
  };

  // The outcome of an HTTP status (the request's, or one message's in a batch answer).
  auto by_status = [](SendResult& r, long status, absl::string_view detail) {
    const bool temporary = Temporary(status);
    r.outcome = temporary ? SendOutcome::kTemporaryFailure : SendOutcome::kPermanentFailure;
    r.error = absl::StrCat("webhook: HTTP ", status);
    if (std::string s = Snippet(detail); !s.empty()) absl::StrAppend(&r.error, ": ", s);
    return temporary;
  };

  auto finish = [&](Transfer& t, CURLcode rc) {
    long connects = 0;
    curl_easy_getinfo(t.easy, CURLINFO_NUM_CONNECTS, &connects);
    connects_total += connects;
    auto each = [&](const auto& set) {
      for (size_t i : t.indexes) set(results[i]);
    };
    if (rc != CURLE_OK) {
      const std::string error = absl::StrCat("webhook: ", t.errbuf[0] != '\0' ? t.errbuf : curl_easy_strerror(rc));
      each([&](SendResult& r) {
        r.outcome = SendOutcome::kTemporaryFailure;
        r.error = error;
      });
      return;
    }
    long status = 0;
    curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
      curl_off_t retry_after = 0;
      std::optional<absl::Duration> wait;
      if (Temporary(status) && curl_easy_getinfo(t.easy, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
          retry_after > 0) {
        wait = absl::Seconds(std::min<int64_t>(retry_after, kMaxRetryAfterSeconds));
      }
      each([&](SendResult& r) {
        if (by_status(r, status, t.response)) r.retry_after = wait;
      });
      return;
    }
    Json answer = Json::parse(t.response, nullptr, /*allow_exceptions=*/false);
    if (!profile_.batch_body) {
      SendResult& r = results[t.indexes.front()];
      r.outcome = SendOutcome::kAccepted;
      if (!answer.is_discarded()) r.provider_message_id = ProviderId(answer, profile_.id_pointers);
      return;
    }
    // A batch: one result per message, in order. An answer that does not say what became of each
    // leaves them all to be retried (a provider honouring idempotency_key drops what it had).
    const Json* list = nullptr;
    if (answer.is_array()) {
      list = &answer;
    } else if (answer.is_object() && answer.contains("results") && answer["results"].is_array()) {
      list = &answer["results"];
    }
    if (list == nullptr || list->size() != t.indexes.size()) {
      const std::string error = list == nullptr
                                    ? absl::StrCat("webhook: HTTP ", status, " without a JSON array of results")
                                    : absl::StrCat("webhook: HTTP ", status, " with ", list->size(), " results for ",
                                                   t.indexes.size(), " messages");
      each([&](SendResult& r) {
        r.outcome = SendOutcome::kTemporaryFailure;
        r.error = error;
      });
      return;
    }
    for (size_t k = 0; k < t.indexes.size(); ++k) {
      SendResult& r = results[t.indexes[k]];
      const Json& item = (*list)[k];
      const Json* code = item.is_object() && item.contains("status") ? &item["status"] : nullptr;
      if (code == nullptr || !code->is_number_integer()) {
        r.outcome = SendOutcome::kTemporaryFailure;
        r.error = absl::StrCat("webhook: result ", k, " of the provider's answer has no integer \"status\"");
        continue;
      }
      const long item_status = code->get<long>();
      if (item_status >= 200 && item_status <= 299) {
        r.outcome = SendOutcome::kAccepted;
        r.provider_message_id = ProviderId(item, profile_.id_pointers);
        continue;
      }
      std::string detail;
      if (item.contains("error") && item["error"].is_string()) detail = item["error"].get<std::string>();
      if (by_status(r, item_status, detail) && item.contains("retry_after") && item["retry_after"].is_number() &&
          item["retry_after"].get<double>() > 0) {
        r.retry_after = absl::Seconds(std::min<int64_t>(item["retry_after"].get<int64_t>(), kMaxRetryAfterSeconds));
      }
    }
  };

  while (!pending.empty() || running > 0) {
    while (running < settings_.max_in_flight && !pending.empty()) {
      std::vector<size_t> request = std::move(pending.front());
      pending.pop_front();
      const std::vector<size_t> indexes = request;
      if (!start(std::move(request))) {
        for (size_t i : indexes) results[i].error = "webhook: cannot start the request (libcurl)";
      }
    }
    if (running == 0) continue;
    int still_running = 0;
    curl_multi_perform(pool->multi, &still_running);
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(pool->multi, &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* e = msg->easy_handle;
      CURLcode rc = msg->data.result;  // read before removing the handle invalidates msg
      Transfer* t = nullptr;
      curl_easy_getinfo(e, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
      finish(*t, rc);
      curl_multi_remove_handle(pool->multi, e);
      pool->easies.push_back(e);
      transfers[t->id].reset();
      --running;
    }
    // Wait for the network only when no new request could start.
    if (running > 0 && (pending.empty() || running >= settings_.max_in_flight)) {
      curl_multi_poll(pool->multi, nullptr, 0, 1000, nullptr);
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    connections_opened_ += connects_total;
  }
  Release(std::move(pool));
  return results;
}

}  // namespace ecrm::broadcast
