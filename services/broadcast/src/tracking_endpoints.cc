#include "tracking_endpoints.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "channels/signing.h"
#include "ecrm/log/log.h"
#include "provider_events.h"

namespace ecrm::broadcast {
namespace {

constexpr char kGif[] =
    "GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00\x00\x00"
    "\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b";

std::string HtmlEscape(absl::string_view s) {
  return absl::StrReplaceAll(s, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}, {"'", "&#39;"}});
}

HttpReply Page(int status, absl::string_view title, absl::string_view body_html) {
  HttpReply r;
  r.status = status;
  r.content_type = "text/html; charset=utf-8";
  r.no_store = true;
  r.body = absl::StrCat(
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
      "content=\"width=device-width\"><title>",
      title, "</title></head><body style=\"font-family:sans-serif;max-width:32em;margin:3em auto\">\n<h1>", title,
      "</h1>\n", body_html, "\n</body></html>\n");
  return r;
}

HttpReply Text(int status, absl::string_view text) {
  HttpReply r;
  r.status = status;
  r.body = absl::StrCat(text, "\n");
  return r;
}

HttpReply Json(int status, std::string body) {
  HttpReply r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

const char* const kBadLink =
    "This link is not valid: it was changed or cut short. Use the link in the message as sent.";

}  // namespace

absl::string_view TransparentGif() { return absl::string_view(kGif, sizeof(kGif) - 1); }

TrackingEndpoints::TrackingEndpoints(const TrackingLinks& links, Deliveries& deliveries, ConsentUpdater* consents,
                                     TrackingEndpointsOptions options, Clock clock)
    : links_(links),
      deliveries_(deliveries),
      consents_(consents),
      options_(std::move(options)),
      clock_(std::move(clock)) {}

bool TrackingEndpoints::Record(const v1::RecordDeliveryEventRequest& req, std::string* problem) {
  absl::StatusOr<v1::Delivery> d = deliveries_.RecordDeliveryEvent(req);
  if (d.ok()) return true;
  *problem = d.status().ToString();
  switch (d.status().code()) {
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kInvalidArgument:
      return true;  // moot: asking again would not change it
    default:
      log::Warn("recording a delivery event failed", {{"delivery_id", req.delivery_id()}, {"error", d.status()}});
      return false;
  }
}

HttpReply TrackingEndpoints::Open(const std::string& delivery_id, const std::string& signature) {
  if (!links_.Verify(LinkKind::kOpen, delivery_id, "", signature)) return Text(400, kBadLink);
  v1::RecordDeliveryEventRequest req;
  req.set_delivery_id(delivery_id);
  req.set_type(v1::DELIVERY_EVENT_TYPE_OPENED);
  std::string problem;
  (void)Record(req, &problem);  // the image is answered whatever became of the event
  HttpReply r;
  r.content_type = "image/gif";
  r.body = std::string(TransparentGif());
  r.no_store = true;
  return r;
}

HttpReply TrackingEndpoints::Click(const std::string& delivery_id, const std::string& url,
                                   const std::string& signature) {
  if (!links_.Verify(LinkKind::kClick, delivery_id, url, signature)) return Text(400, kBadLink);
  // Signed, so it is a link the engine wrote; still, only http(s) and nothing that could split
  // the Location header.
  if (!(absl::StartsWithIgnoreCase(url, "http://") || absl::StartsWithIgnoreCase(url, "https://")) ||
      url.find_first_of("\r\n") != std::string::npos) {
    return Text(400, kBadLink);
  }
  v1::RecordDeliveryEventRequest req;
  req.set_delivery_id(delivery_id);
  req.set_type(v1::DELIVERY_EVENT_TYPE_CLICKED);
  req.set_detail(url.substr(0, 2048));
  std::string problem;
  (void)Record(req, &problem);  // the customer gets where they were going in any case
  HttpReply r;
  r.status = 302;
  r.location = url;
  r.no_store = true;
  return r;
}

HttpReply TrackingEndpoints::UnsubscribePage(const std::string& delivery_id, const std::string& signature) {
  if (!links_.Verify(LinkKind::kUnsubscribe, delivery_id, "", signature)) {
    return Page(400, "Link not valid", HtmlEscape(kBadLink));
  }
  return Page(200, "Unsubscribe",
              absl::StrCat("<p>Stop receiving marketing messages like this one?</p>\n<form method=\"post\" action=\"",
                           HtmlEscape(links_.UnsubscribeUrl(delivery_id)),
                           "\">\n<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\n"
                           "<button type=\"submit\">Unsubscribe</button>\n</form>"));
}

HttpReply TrackingEndpoints::Unsubscribe(const std::string& delivery_id, const std::string& signature, bool one_click) {
  if (!links_.Verify(LinkKind::kUnsubscribe, delivery_id, "", signature)) {
    return Page(400, "Link not valid", HtmlEscape(kBadLink));
  }
  if (!one_click) return Text(400, "body: must be List-Unsubscribe=One-Click (RFC 8058)");
  // 1. Here first: the suppression stops queued mail at once, whatever the information store does.
  v1::RecordDeliveryEventRequest req;
  req.set_delivery_id(delivery_id);
  req.set_type(v1::DELIVERY_EVENT_TYPE_UNSUBSCRIBED);
  req.set_detail("one-click unsubscribe");
  absl::StatusOr<v1::Delivery> d = deliveries_.RecordDeliveryEvent(req);
  if (!d.ok()) {
    if (d.status().code() == absl::StatusCode::kNotFound) {
      return Page(404, "Message not found", "<p>This message is no longer known (its data may have been erased).</p>");
    }
    log::Warn("unsubscribe: recording failed", {{"delivery_id", delivery_id}, {"error", d.status()}});
    return Text(503, "unsubscribing failed for now; please try again");
  }
  // 2. The consent itself, with its evidence. A failure answers 503: trying again repeats both
  //    steps harmlessly (the same event id, the same suppression, one more history entry).
  if (consents_ != nullptr) {
    infostore::v1::UpdateConsentRequest consent;
    consent.mutable_customer()->set_customer_id(d->customer_id());
    consent.set_channel(d->channel());
    consent.set_purpose(common::v1::PURPOSE_MARKETING);
    consent.set_status(infostore::v1::CONSENT_STATUS_WITHDRAWN);
    consent.set_source(common::v1::TOUCHPOINT_MESSAGE);
    consent.set_evidence(absl::StrCat("source: one-click unsubscribe (RFC 8058); delivery_id: ", delivery_id,
                                      d->campaign_id().empty() ? "" : "; campaign_id: ", d->campaign_id()));
    if (absl::Status s = consents_->UpdateConsent(consent, clock_() + options_.consent_timeout); !s.ok()) {
      log::Warn("unsubscribe: withdrawing the consent failed",
                {{"delivery_id", delivery_id}, {"customer_id", d->customer_id()}, {"error", s}});
      if (s.code() != absl::StatusCode::kNotFound) {
        return Text(503, "unsubscribing failed for now; please try again");
      }
    }
  }
  return Page(200, "Unsubscribed", "<p>You will not receive these marketing messages any more.</p>");
}

HttpReply TrackingEndpoints::Authenticate(const std::string& body, const std::string& timestamp,
                                          const std::string& signature) {
  if (options_.webhook_secret.empty()) {
    return Text(404, "provider webhooks are not configured on this engine (ECRM_PROVIDER_WEBHOOK_SECRET)");
  }
  absl::Status s =
      VerifyRequestSignature(options_.webhook_secret, timestamp, body, signature, clock_(), options_.webhook_max_age);
  if (!s.ok()) return Text(401, s.message());
  return HttpReply{};
}

HttpReply TrackingEndpoints::ProviderWebhook(const std::string& body, const std::string& timestamp,
                                             const std::string& signature) {
  if (HttpReply auth = Authenticate(body, timestamp, signature); auth.status != 200) return auth;
  absl::StatusOr<std::vector<v1::RecordDeliveryEventRequest>> events = ParseProviderWebhook(body);
  if (!events.ok()) return Text(400, events.status().message());
  int recorded = 0, ignored = 0;
  std::string first_problem;
  for (const v1::RecordDeliveryEventRequest& e : *events) {
    std::string problem;
    if (!Record(e, &problem)) return Text(503, "recording the events failed for now; send them again");
    if (problem.empty()) {
      ++recorded;
    } else {
      ++ignored;
      if (first_problem.empty()) first_problem = problem;
    }
  }
  return Json(200, absl::StrCat("{\"recorded\":", recorded, ",\"ignored\":", ignored,
                                first_problem.empty() ? "" : ",\"first_ignored\":",
                                first_problem.empty() ? "" : JsonString(first_problem), "}\n"));
}

HttpReply TrackingEndpoints::DeliveryStatusNotification(const std::string& body, const std::string& timestamp,
                                                        const std::string& signature) {
  if (HttpReply auth = Authenticate(body, timestamp, signature); auth.status != 200) return auth;
  absl::StatusOr<DeliveryStatus> dsn = ParseDeliveryStatus(body);
  if (!dsn.ok()) return Text(400, dsn.status().message());
  std::optional<v1::RecordDeliveryEventRequest> event = DeliveryStatusEvent(*dsn);
  if (!event) {
    return Json(200, absl::StrCat("{\"recorded\":0,\"ignored\":1,\"first_ignored\":",
                                  JsonString(absl::StrCat("action ", dsn->action, " ", dsn->status,
                                                          ": nothing final, the message is still being tried")),
                                  "}\n"));
  }
  std::string problem;
  if (!Record(*event, &problem)) return Text(503, "recording the report failed for now; send it again");
  return Json(200, problem.empty()
                       ? std::string("{\"recorded\":1,\"ignored\":0}\n")
                       : absl::StrCat("{\"recorded\":0,\"ignored\":1,\"first_ignored\":", JsonString(problem), "}\n"));
}

}  // namespace ecrm::broadcast
