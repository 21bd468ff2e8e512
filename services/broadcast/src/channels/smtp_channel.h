// Email over SMTP with libcurl. Each Send call borrows up to `connections` easy handles from a small
// pool and sends its batch over them at once, each handle's share one message after another, so
// the connections are kept from batch to batch (libcurl keeps the connection on the handle). STARTTLS is used when the
// server offers it (or required, by configuration), AUTH when a user is configured.
//
// Outcomes: a 2xx reply to the message's end of data is accepted; a 4xx reply (450, 421, ...), a
// refused, dropped or timed-out connection are temporary; a 5xx reply (550, ...) is permanent,
// except a refused authentication (535), which is the operator's to fix and so temporary. The
// server's reply goes into SendResult::error ("450 4.2.0 Mailbox busy").
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "channel.h"
#include "channels/mime.h"

namespace ecrm::broadcast {

struct SmtpSettings {
  // smtp://host[:port] (STARTTLS when offered) or smtps://host[:port] (TLS from the start). A path
  // names the EHLO domain: smtp://relay:587/mail.example.com.
  std::string url;
  MailIdentity identity;
  // AUTH (libcurl picks the best mechanism the server offers) when user is not empty.
  std::string user;
  std::string password;
  // Refuse to send unless the connection is TLS (STARTTLS required), rather than only trying.
  bool require_tls = false;
  // CA bundle for the server's certificate; empty: the system's.
  std::string ca_file;
  absl::Duration connect_timeout = absl::Seconds(10);
  // For one message, connecting included.
  absl::Duration timeout = absl::Seconds(60);
  // Connections one Send call uses at once (each with a share of the batch, on its own thread).
  // One SMTP transaction is several round trips the server answers one by one: parallel
  // connections are what keeps a fast server busy. The engine's --smtp-connections sets it.
  int connections = 1;
  // Handles (each with its connection) kept between Send calls; more are made when more threads
  // send at once, and closed when returned to a full pool.
  int max_idle_connections = 16;
  // The Date header's clock (tests inject one).
  std::function<absl::Time()> now = [] { return absl::Now(); };
};

class SmtpChannel : public Channel {
 public:
  // `dkim` may be null (no signing).
  static absl::StatusOr<std::unique_ptr<SmtpChannel>> Create(SmtpSettings settings,
                                                             std::unique_ptr<DkimSigner> dkim = nullptr);
  ~SmtpChannel() override;

  std::vector<SendResult> Send(absl::Span<const OutgoingMessage> messages) override;

  // Connections opened so far (each handle's first message, and every reconnect); tests and
  // metrics use it to see that a batch went over one connection.
  int64_t connections_opened() const;

 private:
  struct Handle;
  SmtpChannel(SmtpSettings settings, std::unique_ptr<DkimSigner> dkim);
  std::unique_ptr<Handle> Acquire();
  void Release(std::unique_ptr<Handle> handle);
  SendResult SendOne(Handle& handle, const OutgoingMessage& message);

  const SmtpSettings settings_;
  const std::unique_ptr<DkimSigner> dkim_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Handle>> idle_;
  int64_t connections_opened_ = 0;
};

}  // namespace ecrm::broadcast
