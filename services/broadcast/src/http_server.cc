#include "http_server.h"

#include <httplib.h>

#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "ecrm/log/log.h"

namespace ecrm::broadcast {
namespace {

constexpr absl::string_view kOneClickBody = "List-Unsubscribe=One-Click";

void Answer(const HttpReply& reply, httplib::Response& res) {
  res.status = reply.status;
  if (!reply.location.empty()) res.set_header("Location", reply.location);
  if (reply.no_store) {
    res.set_header("Cache-Control", "no-store, no-cache, must-revalidate, max-age=0, private");
    res.set_header("Pragma", "no-cache");
    res.set_header("Expires", "0");
  }
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_content(reply.body, reply.content_type.c_str());
}

// RFC 8058's body, form-encoded (as mail providers send it) or multipart, or bare.
bool IsOneClick(const httplib::Request& req) {
  if (req.has_param("List-Unsubscribe") && req.get_param_value("List-Unsubscribe") == "One-Click") return true;
  if (req.has_file("List-Unsubscribe") && req.get_file_value("List-Unsubscribe").content == "One-Click") return true;
  return absl::StripAsciiWhitespace(req.body) == kOneClickBody;
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, HttpMetrics& metrics)
    : options_(std::move(options)), metrics_(metrics), server_(std::make_unique<httplib::Server>()) {}

HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<int> HttpServer::Bind() {
  const size_t colon = options_.address.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(options_.address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("http-address: \"", options_.address, "\" is not host:port (port 0 picks one)"));
  }
  absl::string_view host = absl::string_view(options_.address).substr(0, colon);
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  host_ = std::string(host.empty() ? "0.0.0.0" : host);
  if (options_.threads < 1 || options_.threads > 256) {
    return absl::InvalidArgumentError("http-threads: must be 1-256");
  }
  httplib::Server& s = *server_;
  const int threads = options_.threads;
  s.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s.set_payload_max_length(options_.max_body_bytes);
  s.set_read_timeout(absl::ToChronoMicroseconds(options_.read_timeout));
  s.set_write_timeout(absl::ToChronoMicroseconds(options_.write_timeout));
  s.set_keep_alive_timeout(std::max<time_t>(1, absl::ToInt64Seconds(options_.keep_alive_timeout)));
  s.set_keep_alive_max_count(static_cast<size_t>(options_.keep_alive_max_requests));
  s.set_tcp_nodelay(true);
  int bound = port == 0 ? s.bind_to_any_port(host_) : (s.bind_to_port(host_, port) ? port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(
        absl::StrCat("http-address: cannot listen on ", options_.address, " (address in use or not valid)"));
  }
  return bound;
}

void HttpServer::Start(TrackingEndpoints& endpoints) {
  httplib::Server& s = *server_;
  auto route = [this](const char* endpoint, auto handler) {
    return [this, endpoint, handler](const httplib::Request& req, httplib::Response& res) {
      const auto began = std::chrono::steady_clock::now();
      Answer(handler(req), res);
      metrics_.Request(endpoint, res.status,
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count());
    };
  };
  auto param = [](const httplib::Request& req, const char* name) { return req.get_param_value(name); };
  s.Get(std::string(kOpenPath), route("open", [&endpoints, param](const httplib::Request& req) {
          return endpoints.Open(param(req, "d"), param(req, "s"));
        }));
  s.Get(std::string(kClickPath), route("click", [&endpoints, param](const httplib::Request& req) {
          return endpoints.Click(param(req, "d"), param(req, "u"), param(req, "s"));
        }));
  s.Get(std::string(kUnsubscribePath), route("unsubscribe_page", [&endpoints, param](const httplib::Request& req) {
          return endpoints.UnsubscribePage(param(req, "d"), param(req, "s"));
        }));
  s.Post(std::string(kUnsubscribePath), route("unsubscribe", [&endpoints, param](const httplib::Request& req) {
           return endpoints.Unsubscribe(param(req, "d"), param(req, "s"), IsOneClick(req));
         }));
  s.Post("/webhooks/provider", route("provider_webhook", [&endpoints](const httplib::Request& req) {
           return endpoints.ProviderWebhook(req.body, req.get_header_value("X-Ecrm-Timestamp"),
                                            req.get_header_value("X-Ecrm-Signature"));
         }));
  s.Post("/webhooks/dsn", route("dsn", [&endpoints](const httplib::Request& req) {
           return endpoints.DeliveryStatusNotification(req.body, req.get_header_value("X-Ecrm-Timestamp"),
                                                       req.get_header_value("X-Ecrm-Signature"));
         }));
  // Anything else (unknown paths, methods, a body over the limit): counted, never a crash.
  s.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    if (res.status == 404 || res.status == 405 || res.status == 413 || res.status == 400) {
      if (!res.has_header("X-Content-Type-Options")) metrics_.Request("other", res.status, 0);
    }
    (void)req;
  });
  s.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log::Error("http handler failed", {{"error", what}});
    res.status = 500;
    res.set_content("internal error\n", "text/plain");
    metrics_.Request("other", 500, 0);
  });
  thread_ = std::thread([&s] { s.listen_after_bind(); });
  // Running before Start returns, so that a Stop right after it is not lost.
  for (int i = 0; i < 5000 && !s.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void HttpServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace ecrm::broadcast
