// The engine's one small HTTP server (cpp-httplib): the HTTP glue of TrackingEndpoints and
// nothing more. Routes, under the root the public base URL reaches:
//
//   GET  /o                  open pixel                    GET  /u   unsubscribe confirmation page
//   GET  /c                  signed click redirect         POST /u   one-click unsubscribe (RFC 8058)
//   POST /webhooks/provider  provider events (JSON)        POST /webhooks/dsn   RFC 3464 reports
//
// Limits are explicit: request bodies (413 above), read and write timeouts per connection, a
// fixed pool of handler threads, kept-alive connections bounded in time and in requests.
// Every request is counted in HttpMetrics by endpoint and status code.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "metrics.h"
#include "tracking_endpoints.h"

namespace httplib {
class Server;
}

namespace ecrm::broadcast {

struct HttpServerOptions {
  std::string address = "127.0.0.1:0";  // host:port; port 0 picks one
  int threads = 8;
  size_t max_body_bytes = 1 << 20;
  absl::Duration read_timeout = absl::Seconds(5);
  absl::Duration write_timeout = absl::Seconds(5);
  absl::Duration keep_alive_timeout = absl::Seconds(5);
  int keep_alive_max_requests = 100;
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpMetrics& metrics);
  ~HttpServer();

  // Binds the address; returns the port it got. UNAVAILABLE when it cannot listen there.
  absl::StatusOr<int> Bind();
  // Routes to `endpoints` and starts answering on a thread of its own (after Bind).
  void Start(TrackingEndpoints& endpoints);
  // Stops accepting, lets the requests in hand finish, joins the threads. Idempotent.
  void Stop();

  // The host of the address, without brackets ("127.0.0.1", "::1").
  const std::string& host() const { return host_; }

 private:
  const HttpServerOptions options_;
  HttpMetrics& metrics_;
  std::string host_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace ecrm::broadcast
