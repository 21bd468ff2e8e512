// An HTTP webhook sink for tests: a real cpp-httplib server on 127.0.0.1 (port 0) inside the test
// process that records every request and answers what the test's responder says (by default
// 200 {"id": "sink-<n>"}). It can also hold requests until a number of them are in flight at
// once, which proves that a client sends concurrently without timing anything. BatchReply
// answers a batch provider's request (the "generic-batch" profile) message by message.
//
// Every kept-alive connection holds one of the server's threads for as long as it is open (the
// thread waits on it for the next request): `threads` must exceed the connections all clients keep
// open at once, or a new connection waits in the pool's queue until one closes. And Debian's
// cpp-httplib listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, compiled into the library):
// 64 connections opened at once overflowed it, the kernel dropped the handshakes' last packets and
// a few requests waited out the client's timeout unanswered. The sink listens again with the
// system's maximum backlog (SOMAXCONN) before it accepts anything.
#pragma once

#include <httplib.h>
#include <sys/socket.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

namespace ecrm::testing {

class WebhookSink {
 public:
  struct Request {
    std::string method;
    std::string path;
    std::multimap<std::string, std::string, httplib::detail::ci> headers;
    std::string body;
    std::string Header(const std::string& name) const {
      auto it = headers.find(name);
      return it == headers.end() ? std::string() : it->second;
    }
  };
  struct Reply {
    int status = 200;
    std::string body;
    std::map<std::string, std::string> headers;
  };
  // Called for every request (n counts from 1); its reply is sent.
  using Responder = std::function<Reply(const Request&, int n)>;

  explicit WebhookSink(int threads = 96) {
    // Keep-alive connections each hold a worker: enough workers for every client connection.
    server_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    server_.set_keep_alive_max_count(100000);
    server_.set_tcp_nodelay(true);  // else Nagle and delayed ACKs add ~40 ms to each answer
    server_.set_read_timeout(10, 0);
    server_.set_socket_options([this](socket_t sock) {
      httplib::default_socket_options(sock);
      listen_socket_ = sock;
    });
    server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); });
    port_ = server_.bind_to_any_port("127.0.0.1");
    // Listening again on a listening socket only changes its backlog (Linux): the library's 5
    // becomes the system's maximum.
    if (port_ > 0 && listen_socket_ >= 0) ::listen(listen_socket_, SOMAXCONN);
    // Bound and listening: connections queue in the kernel until the thread accepts them.
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~WebhookSink() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      hold_until_ = 0;
    }
    cv_.notify_all();
    server_.stop();
    thread_.join();
  }
  WebhookSink(const WebhookSink&) = delete;
  WebhookSink& operator=(const WebhookSink&) = delete;

  int port() const { return port_; }

  // One message's result in a batch answer: {"status": status, "id": id, "error": error,
  // "retry_after": retry_after} (the last three when set).
  struct Result {
    int status = 200;
    std::string id;
    std::string error;
    int retry_after = 0;
  };
  // The answer to a generic-batch request, as a provider gives it: 200 with a JSON array holding
  // `result(message, index)` for each message of the request's JSON array, in order; 400 when the
  // body is not a JSON array of objects.
  static Reply BatchReply(const Request& request,
                          const std::function<Result(const nlohmann::json& message, int index)>& result) {
    nlohmann::json body = nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_array()) return Reply{400, R"({"error":"expected a JSON array of messages"})", {}};
    nlohmann::json out = nlohmann::json::array();
    for (size_t i = 0; i < body.size(); ++i) {
      if (!body[i].is_object()) return Reply{400, R"({"error":"each message is a JSON object"})", {}};
      Result r = result(body[i], static_cast<int>(i));
      nlohmann::json item = {{"status", r.status}};
      if (!r.id.empty()) item["id"] = r.id;
      if (!r.error.empty()) item["error"] = r.error;
      if (r.retry_after > 0) item["retry_after"] = r.retry_after;
      out.push_back(std::move(item));
    }
    return Reply{200, out.dump(), {}};
  }
  std::string Url(const std::string& path = "/hook") const { return absl::StrCat("http://127.0.0.1:", port_, path); }

  void SetResponder(Responder r) {
    std::lock_guard<std::mutex> lock(mu_);
    responder_ = std::move(r);
  }
  // Requests wait in the handler until `n` are in flight at once (or 20 s pass, so that a
  // failing test ends); 0 turns it off.
  void HoldUntilConcurrent(int n) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      hold_until_ = n;
    }
    cv_.notify_all();
  }

  // Off: requests are answered (and the responder called) but not kept, for long runs that count
  // in the responder instead.
  void KeepRequests(bool keep) {
    std::lock_guard<std::mutex> lock(mu_);
    keep_requests_ = keep;
  }

  std::vector<Request> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  int max_concurrent() const {
    std::lock_guard<std::mutex> lock(mu_);
    return max_concurrent_;
  }

 private:
  void Handle(const httplib::Request& req, httplib::Response& res) {
    Request r{req.method, req.path, {}, req.body};
    for (const auto& [k, v] : req.headers) r.headers.emplace(k, v);
    Responder responder;
    int n = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      n = ++received_;
      if (keep_requests_) requests_.push_back(r);
      responder = responder_;
      ++in_flight_;
      max_concurrent_ = std::max(max_concurrent_, in_flight_);
      cv_.notify_all();
      cv_.wait_for(lock, std::chrono::seconds(20), [&] { return hold_until_ == 0 || max_concurrent_ >= hold_until_; });
      --in_flight_;
    }
    Reply reply = responder ? responder(r, n) : Reply{200, absl::StrCat("{\"id\":\"sink-", n, "\"}"), {}};
    res.status = reply.status;
    for (const auto& [k, v] : reply.headers) res.set_header(k, v);
    res.set_content(reply.body, "application/json");
  }

  httplib::Server server_;
  socket_t listen_socket_ = INVALID_SOCKET;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Responder responder_;
  std::vector<Request> requests_;
  bool keep_requests_ = true;
  int received_ = 0;
  int hold_until_ = 0;
  int in_flight_ = 0;
  int max_concurrent_ = 0;
};

}  // namespace ecrm::testing
