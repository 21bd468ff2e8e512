// An HTTP webhook sink for tests: a real cpp-httplib server on 127.0.0.1 (port 0) inside the test
// process that records every request and answers what the test's responder says (by default
// 200 {"id": "sink-<n>"}). It can also hold requests until a number of them are in flight at
// once, which proves that a client sends concurrently without timing anything.
#pragma once

#include <httplib.h>

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

  WebhookSink() {
    // Keep-alive connections each hold a worker: enough workers for every client connection.
    server_.new_task_queue = [] { return new httplib::ThreadPool(96); };
    server_.set_keep_alive_max_count(100000);
    server_.set_tcp_nodelay(true);  // else Nagle and delayed ACKs add ~40 ms to each answer
    server_.set_read_timeout(10, 0);
    server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); });
    port_ = server_.bind_to_any_port("127.0.0.1");
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
