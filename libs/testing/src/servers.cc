#include "ecrm/testing/servers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace ecrm::testing {
namespace {

// True once a PING on 127.0.0.1:port is answered with PONG.
bool RedisAnswers(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = false;
  timeval tv{0, 200000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const char ping[] = "PING\r\n";
    char buf[16] = {};
    if (write(fd, ping, sizeof ping - 1) > 0 && read(fd, buf, sizeof buf - 1) > 0) ok = absl::StartsWith(buf, "+PONG");
  }
  close(fd);
  return ok;
}

// A port that was free a moment ago (bound to 127.0.0.1:0 and released). Another process may
// take it before the server binds it: callers start again on a new one when the bind fails.
int UnusedPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// Both servers say so in their log when their bind (or listen) fails for that reason.
bool SaysPortTaken(absl::string_view log) { return absl::StrContains(log, "Address already in use"); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

constexpr int kPortAttempts = 10;

std::string PostgresBinDir() {
  std::string best;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    std::string bin = entry.path().string() + "/bin";
    if (std::filesystem::exists(bin + "/initdb") && bin > best) best = bin;
  }
  return best;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start() {
  std::unique_ptr<RedisServer> r(new RedisServer());
  for (int attempt = 1;; ++attempt) {
    r->port_ = UnusedPort();
    bool port_taken = false;
    absl::Status s = r->Launch(&port_taken);
    if (s.ok()) return r;
    if (!port_taken || attempt == kPortAttempts) return s;
  }
}

RedisServer::~RedisServer() = default;

std::string RedisServer::url() const { return absl::StrCat("redis://127.0.0.1:", port_); }

absl::Status RedisServer::Launch(bool* port_taken) {
  *port_taken = false;
  auto p = Process::Spawn({"redis-server", "--port", absl::StrCat(port_), "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--dir", dir_.path(), "--daemonize", "no"},
                          absl::StrCat(dir_.path(), "/redis-", ++launches_, ".log"));
  if (!p.ok()) return p.status();
  process_ = std::move(*p);
  // Ready only once this server says it listens: a PONG alone might come from another server
  // that took the port first.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    const bool running = process_->running();
    const std::string output = process_->Output();
    if (!running) {
      *port_taken = SaysPortTaken(output);
      return absl::UnavailableError(absl::StrCat("redis-server did not start on port ", port_, ": ", output));
    }
    if (absl::StrContains(output, "Ready to accept connections") && RedisAnswers(port_)) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::UnavailableError(
      absl::StrCat("redis-server did not start on port ", port_, " within 10s: ", process_->Output()));
}

void RedisServer::Kill() {
  if (process_) {
    process_->Signal(SIGKILL);
    process_->Wait(absl::Seconds(5));
  }
}

absl::Status RedisServer::Restart() {
  Kill();
  // Clients find the server again on the same port. Any process binding port 0 meanwhile may
  // have been given it; such holders are short-lived in a test run, so wait for them.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  for (;;) {
    bool port_taken = false;
    absl::Status s = Launch(&port_taken);
    if (s.ok() || !port_taken || absl::Now() >= deadline) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

absl::StatusOr<PostgresServer*> PostgresServer::Shared() {
  static const absl::StatusOr<std::unique_ptr<PostgresServer>> server = Start();
  if (!server.ok()) return server.status();
  return server->get();
}

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start() {
  std::unique_ptr<PostgresServer> pg(new PostgresServer());
  pg->bin_dir_ = PostgresBinDir();
  if (pg->bin_dir_.empty())
    return absl::FailedPreconditionError("PostgreSQL server binaries not found (run scripts/install-deps.sh)");
  const char* base = std::getenv("TMPDIR");
  std::string root = absl::StrCat(base && *base ? base : "/tmp", "/ecrm-pg-XXXXXX");
  if (mkdtemp(root.data()) == nullptr) return absl::UnavailableError("mkdtemp failed");
  pg->data_dir_ = root + "/data";
  pg->log_dir_ = root;
  if (geteuid() == 0) {
    // PostgreSQL refuses to run as root: hand the directory to the postgres user.
    passwd* pw = getpwnam("postgres");
    if (pw == nullptr) return absl::FailedPreconditionError("running as root and no \"postgres\" user exists");
    if (chown(root.c_str(), pw->pw_uid, pw->pw_gid) != 0) return absl::UnavailableError("chown failed");
    pg->as_postgres_user_ = true;
  }
  auto init = pg->Run({pg->bin_dir_ + "/initdb", "-D", pg->data_dir_, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                       "--no-sync", "--no-instructions"});
  if (!init.ok()) return init.status();
  if (init->exit_code != 0) return absl::UnavailableError(absl::StrCat("initdb failed: ", init->output));
  for (int attempt = 1;; ++attempt) {
    pg->port_ = UnusedPort();
    const std::string log = absl::StrCat(root, "/postgres-", attempt, ".log");
    std::string opts = absl::StrCat("-p ", pg->port_, " -k ", root,
                                    " -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
                                    " -c max_connections=200");
    // -w waits for this data directory's server to be ready (its postmaster.pid), not for
    // whatever answers on the port.
    auto start =
        pg->Run({pg->bin_dir_ + "/pg_ctl", "-D", pg->data_dir_, "-l", log, "-o", opts, "-w", "-t", "60", "start"});
    if (!start.ok()) return start.status();
    if (start->exit_code == 0) break;
    const std::string server_log = ReadFile(log);
    if (!SaysPortTaken(server_log) || attempt == kPortAttempts) {
      return absl::UnavailableError(absl::StrCat("pg_ctl start failed: ", start->output, server_log));
    }
  }
  pg->started_ = true;
  return pg;
}

PostgresServer::~PostgresServer() {
  if (started_) (void)Run({bin_dir_ + "/pg_ctl", "-D", data_dir_, "-m", "immediate", "-w", "stop"});
  std::error_code ec;
  if (!log_dir_.empty()) std::filesystem::remove_all(log_dir_, ec);
}

absl::StatusOr<CommandResult> PostgresServer::Run(std::vector<std::string> argv) {
  if (as_postgres_user_) argv.insert(argv.begin(), {"runuser", "-u", "postgres", "--"});
  return RunCommand(argv, absl::Seconds(120));
}

std::string PostgresServer::url(const std::string& database) const {
  return absl::StrCat("postgresql://postgres@127.0.0.1:", port_, "/", database);
}

absl::Status PostgresServer::CreateDatabase(const std::string& name) {
  auto r = Run({bin_dir_ + "/psql", "-h", "127.0.0.1", "-p", absl::StrCat(port_), "-U", "postgres", "-d", "postgres",
                "-v", "ON_ERROR_STOP=1", "-c", absl::StrCat("CREATE DATABASE \"", name, "\"")});
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    if (absl::StrContains(r->output, "already exists")) return absl::AlreadyExistsError(r->output);
    return absl::UnavailableError(absl::StrCat("CREATE DATABASE failed: ", r->output));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> PostgresServer::CreateUniqueDatabase() {
  std::string name = absl::StrCat("test_", getpid(), "_", ++databases_);
  if (absl::Status s = CreateDatabase(name); !s.ok()) return s;
  return name;
}

}  // namespace ecrm::testing
