#include "channels/smtp_channel.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "channels/curl_util.h"

namespace ecrm::broadcast {

struct SmtpChannel::Handle {
  CURL* curl = nullptr;
  // The upload of the current message.
  absl::string_view data;
  size_t offset = 0;
  // Replies from the server during the current transfer: how many, and the final line of the last
  // 4xx or 5xx one (libcurl's QUIT after a failure gets "221 Bye", which explains nothing).
  int replies = 0;
  std::string last_error_reply;
  char errbuf[CURL_ERROR_SIZE] = {};

  ~Handle() {
    if (curl != nullptr) curl_easy_cleanup(curl);
  }

  static size_t Read(char* buffer, size_t size, size_t nitems, void* userdata) {
    auto* h = static_cast<Handle*>(userdata);
    size_t n = std::min(size * nitems, h->data.size() - h->offset);
    std::memcpy(buffer, h->data.data() + h->offset, n);
    h->offset += n;
    return n;
  }

  // libcurl shows each reply line here (CURLINFO_HEADER_IN); the final line of a reply is
  // "ddd text", continuation lines are "ddd-text".
  static int Debug(CURL*, curl_infotype type, char* data, size_t size, void* userdata) {
    if (type != CURLINFO_HEADER_IN) return 0;
    auto* h = static_cast<Handle*>(userdata);
    absl::string_view line = absl::StripTrailingAsciiWhitespace(absl::string_view(data, size));
    if (line.size() >= 3 && absl::ascii_isdigit(line[0]) && absl::ascii_isdigit(line[1]) &&
        absl::ascii_isdigit(line[2]) && (line.size() == 3 || line[3] == ' ')) {
      ++h->replies;
      if (line[0] == '4' || line[0] == '5') h->last_error_reply.assign(line.data(), std::min<size_t>(line.size(), 512));
    }
    return 0;
  }
};

namespace {

// libcurl says "EHLO localhost" unless the URL names a domain; say the sender's instead.
std::string UrlWithEhloDomain(const std::string& url, absl::string_view domain) {
  size_t scheme = url.find("://");
  size_t path = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (path != std::string::npos && path + 1 < url.size()) return url;
  std::string out = url;
  if (path == std::string::npos) out.push_back('/');
  out.append(domain.data(), domain.size());
  return out;
}

bool IsConnectionLoss(CURLcode rc) {
  return rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SmtpChannel>> SmtpChannel::Create(SmtpSettings settings,
                                                                 std::unique_ptr<DkimSigner> dkim) {
  if (!absl::StartsWith(settings.url, "smtp://") && !absl::StartsWith(settings.url, "smtps://")) {
    return absl::InvalidArgumentError("smtp-url: expected smtp://host[:port] or smtps://host[:port]");
  }
  if (absl::Status s = ValidateMailbox(settings.identity.from_address); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("smtp-from: ", s.message()));
  }
  if (!settings.user.empty() && settings.password.empty()) {
    return absl::InvalidArgumentError("smtp-user is set but ECRM_SMTP_PASSWORD is empty");
  }
  if (settings.connect_timeout <= absl::ZeroDuration() || settings.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("smtp timeouts: must be positive");
  }
  if (settings.identity.message_id_domain.empty()) {
    settings.identity.message_id_domain =
        settings.identity.from_address.substr(settings.identity.from_address.rfind('@') + 1);
  }
  settings.url = UrlWithEhloDomain(settings.url, settings.identity.message_id_domain);
  curl_util::EnsureInitialised();
  return std::unique_ptr<SmtpChannel>(new SmtpChannel(std::move(settings), std::move(dkim)));
}

SmtpChannel::SmtpChannel(SmtpSettings settings, std::unique_ptr<DkimSigner> dkim)
    : settings_(std::move(settings)), dkim_(std::move(dkim)) {}

SmtpChannel::~SmtpChannel() = default;

int64_t SmtpChannel::connections_opened() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connections_opened_;
}

std::unique_ptr<SmtpChannel::Handle> SmtpChannel::Acquire() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      std::unique_ptr<Handle> h = std::move(idle_.back());
      idle_.pop_back();
      return h;
    }
  }
  auto h = std::make_unique<Handle>();
  h->curl = curl_easy_init();
  if (h->curl == nullptr) return nullptr;
  CURL* c = h->curl;
  curl_easy_setopt(c, CURLOPT_URL, settings_.url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(c, CURLOPT_READFUNCTION, &Handle::Read);
  curl_easy_setopt(c, CURLOPT_READDATA, h.get());
  curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);  // for the debug callback: the server's replies
  curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, &Handle::Debug);
  curl_easy_setopt(c, CURLOPT_DEBUGDATA, h.get());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, curl_util::Millis(settings_.connect_timeout));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, curl_util::Millis(settings_.timeout));
  curl_easy_setopt(c, CURLOPT_USE_SSL, settings_.require_tls ? CURLUSESSL_ALL : CURLUSESSL_TRY);
  if (!settings_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, settings_.ca_file.c_str());
  std::string from = absl::StrCat("<", settings_.identity.from_address, ">");
  curl_easy_setopt(c, CURLOPT_MAIL_FROM, from.c_str());  // libcurl copies string options
  if (!settings_.user.empty()) {
    curl_easy_setopt(c, CURLOPT_USERNAME, settings_.user.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, settings_.password.c_str());
  }
  return h;
}

void SmtpChannel::Release(std::unique_ptr<Handle> handle) {
  std::lock_guard<std::mutex> lock(mu_);
  if (static_cast<int>(idle_.size()) < settings_.max_idle_connections) idle_.push_back(std::move(handle));
  // else: destroyed here, closing its connection
}

std::vector<SendResult> SmtpChannel::Send(absl::Span<const OutgoingMessage> messages) {
  std::vector<SendResult> results(messages.size());
  if (messages.empty()) return results;
  // Contiguous shares, one per connection; the calling thread sends the first.
  const size_t n = std::clamp<size_t>(static_cast<size_t>(std::max(1, settings_.connections)), 1, messages.size());
  auto send_share = [&](size_t share) {
    const size_t from = messages.size() * share / n, to = messages.size() * (share + 1) / n;
    std::unique_ptr<Handle> handle = Acquire();
    if (handle == nullptr) {
      for (size_t i = from; i < to; ++i) results[i].error = "smtp: cannot create a libcurl handle";
      return;
    }
    for (size_t i = from; i < to; ++i) results[i] = SendOne(*handle, messages[i]);
    Release(std::move(handle));
  };
  std::vector<std::thread> threads;
  threads.reserve(n - 1);
  for (size_t share = 1; share < n; ++share) threads.emplace_back(send_share, share);
  send_share(0);
  for (std::thread& t : threads) t.join();
  return results;
}

SendResult SmtpChannel::SendOne(Handle& handle, const OutgoingMessage& message) {
  SendResult result;
  absl::StatusOr<std::string> mime = BuildMimeMessage(message, settings_.identity, settings_.now());
  if (!mime.ok()) {
    result.outcome = SendOutcome::kPermanentFailure;
    result.error = std::string(mime.status().message());
    return result;
  }
  if (dkim_ != nullptr) {
    mime = dkim_->Sign(*mime, message.delivery_id);
    if (!mime.ok()) {
      result.outcome = SendOutcome::kTemporaryFailure;
      result.error = std::string(mime.status().message());
      return result;
    }
  }
  std::string rcpt = absl::StrCat("<", message.address, ">");
  curl_slist* recipients = curl_slist_append(nullptr, rcpt.c_str());
  CURL* c = handle.curl;
  curl_easy_setopt(c, CURLOPT_MAIL_RCPT, recipients);
  curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(mime->size()));

  CURLcode rc = CURLE_OK;
  long code = 0;
  for (int attempt = 0; attempt < 2; ++attempt) {
    handle.data = *mime;
    handle.offset = 0;
    handle.replies = 0;
    handle.last_error_reply.clear();
    handle.errbuf[0] = '\0';
    rc = curl_easy_perform(c);
    long connects = 0;
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
    code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    {
      std::lock_guard<std::mutex> lock(mu_);
      connections_opened_ += connects;
    }
    // A kept connection the server closed while it was idle: nothing was answered, so nothing was
    // taken; try once more on a new connection instead of failing the message.
    if (!(IsConnectionLoss(rc) && connects == 0 && handle.replies == 0)) break;
  }
  curl_easy_setopt(c, CURLOPT_MAIL_RCPT, nullptr);
  curl_slist_free_all(recipients);
  handle.data = {};

  if (rc == CURLE_OK) {
    result.outcome = SendOutcome::kAccepted;
    result.provider_message_id = MessageIdFor(message.delivery_id, settings_.identity.message_id_domain);
    return result;
  }
  const bool has_reply = code >= 400 && code <= 599 && !handle.last_error_reply.empty();
  if (code >= 500 && code <= 599 && rc != CURLE_LOGIN_DENIED) {
    result.outcome = SendOutcome::kPermanentFailure;
  } else {
    result.outcome = SendOutcome::kTemporaryFailure;
  }
  if (has_reply) {
    result.error = absl::StrCat("smtp: ", handle.last_error_reply);
  } else {
    result.error = absl::StrCat("smtp: ", handle.errbuf[0] != '\0' ? handle.errbuf : curl_easy_strerror(rc));
  }
  return result;
}

}  // namespace ecrm::broadcast
