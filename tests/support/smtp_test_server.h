// The C++ side of tests/support/smtp_server.py: starts the real aiosmtpd server on 127.0.0.1
// (port 0), waits for its port file, sets faults, and reads back what it received.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "ecrm/testing/process.h"

namespace ecrm::testing {

struct SmtpTestServerOptions {
  std::string auth;  // "login:password": offer AUTH
  std::string tls_cert;
  std::string tls_key;
  double idle_timeout_seconds = 0;  // close connections idle this long
};

class SmtpTestServer {
 public:
  using Options = SmtpTestServerOptions;

  struct Received {
    std::string eml;
    nlohmann::json meta;  // mail_from, rcpt_tos, peer_port, tls, auth_login
  };

  static absl::StatusOr<std::unique_ptr<SmtpTestServer>> Start(const Options& options = {}) {
    std::unique_ptr<SmtpTestServer> s(new SmtpTestServer());
    const std::string port_file = s->dir_.path() + "/port";
    std::vector<std::string> argv = {"/usr/bin/python3",
                                     std::string(ECRM_SOURCE_DIR) + "/tests/support/smtp_server.py",
                                     "--dir",
                                     s->dir_.path(),
                                     "--port-file",
                                     port_file};
    if (!options.auth.empty()) argv.insert(argv.end(), {"--auth", options.auth});
    if (!options.tls_cert.empty())
      argv.insert(argv.end(), {"--tls-cert", options.tls_cert, "--tls-key", options.tls_key});
    if (options.idle_timeout_seconds > 0) {
      argv.insert(argv.end(), {"--idle-timeout", absl::StrCat(options.idle_timeout_seconds)});
    }
    auto p = Process::Spawn(argv, s->log_dir_.path() + "/smtp_server.log");
    if (!p.ok()) return p.status();
    s->process_ = std::move(*p);
    // The server writes the file atomically once it listens; wait for it or for the server's end.
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline && s->process_->running()) {
      std::ifstream in(port_file);
      if (in >> s->port_) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return absl::UnavailableError(absl::StrCat("smtp_server.py did not listen:\n", s->process_->Output()));
  }

  int port() const { return port_; }
  std::string Url() const { return absl::StrCat("smtp://127.0.0.1:", port_); }

  // Faults for the next messages, one "<stage> <action>" a line (see smtp_server.py).
  void SetFaults(const std::vector<std::string>& lines) {
    std::string tmp = dir_.path() + "/faults.new";
    {
      std::ofstream out(tmp);
      for (const std::string& l : lines) out << l << "\n";
    }
    std::rename(tmp.c_str(), (dir_.path() + "/faults").c_str());
  }

  // Every message received so far, in order.
  std::vector<Received> Messages() const {
    std::vector<Received> out;
    for (int i = 1;; ++i) {
      std::string base = absl::StrFormat("%s/msg-%05d", dir_.path(), i);
      std::ifstream eml(base + ".eml", std::ios::binary);
      std::ifstream meta(base + ".json");
      if (!eml || !meta) break;
      std::stringstream e;
      e << eml.rdbuf();
      out.push_back({e.str(), nlohmann::json::parse(meta)});
    }
    return out;
  }

  // Connections the server has seen closed (by either side).
  int ConnectionsClosed() const {
    std::ifstream in(dir_.path() + "/closed");
    int n = 0;
    in >> n;
    return n;
  }

  // Waits until at least `n` connections were closed; false after 30 s.
  bool WaitForClosedConnections(int n) const {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (ConnectionsClosed() < n) {
      if (absl::Now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
  }

  std::string Output() const { return process_->Output(); }

 private:
  SmtpTestServer() = default;
  TempDir dir_;
  TempDir log_dir_;
  std::unique_ptr<Process> process_;
  int port_ = 0;
};

}  // namespace ecrm::testing
