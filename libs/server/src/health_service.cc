#include "health_service.h"

namespace ecrm::server {

using grpc::health::v1::HealthCheckResponse;

// One Watch stream: writes the current status, then every change, one write at a time.
class HealthService::Watcher final : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  Watcher(HealthService& owner, std::string service) : owner_(owner), service_(std::move(service)) {}

  // Called with owner_.mu_ held.
  void Update(Status status, bool last) {
    std::lock_guard lock(mu_);
    pending_ = status;
    finish_after_write_ |= last;
    if (!writing_) WriteNext();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok) {
      FinishOnce(grpc::Status::CANCELLED);
      return;
    }
    if (pending_ != sent_) {
      WriteNext();
    } else if (finish_after_write_) {
      FinishOnce(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
    }
  }

  void OnCancel() override {
    std::lock_guard lock(mu_);
    if (!writing_) FinishOnce(grpc::Status::CANCELLED);
    cancelled_ = true;
  }

  void OnDone() override {
    owner_.Forget(this);
    delete this;
  }

 private:
  void WriteNext() {  // requires mu_
    if (cancelled_ || finished_) return;
    sent_ = pending_;
    response_.set_status(sent_);
    writing_ = true;
    StartWrite(&response_);
  }
  void FinishOnce(const grpc::Status& s) {  // requires mu_
    if (finished_) return;
    finished_ = true;
    Finish(s);
  }

  HealthService& owner_;
  const std::string service_;
  std::mutex mu_;
  HealthCheckResponse response_;
  Status pending_ = HealthCheckResponse::UNKNOWN;
  Status sent_ = HealthCheckResponse::UNKNOWN;
  bool writing_ = false;
  bool finish_after_write_ = false;
  bool cancelled_ = false;
  bool finished_ = false;

  friend class HealthService;
};

HealthService::HealthService() { statuses_[""] = HealthCheckResponse::NOT_SERVING; }

HealthService::~HealthService() = default;

HealthService::Status HealthService::Lookup(const std::string& service) const {
  auto it = statuses_.find(service);
  return it == statuses_.end() ? HealthCheckResponse::SERVICE_UNKNOWN : it->second;
}

void HealthService::Set(const std::string& service, Status status) {
  std::lock_guard lock(mu_);
  if (shut_down_) return;
  statuses_[service] = status;
  for (Watcher* w : watchers_) {
    if (w->service_ == service) w->Update(status, false);
  }
}

void HealthService::Shutdown() {
  std::lock_guard lock(mu_);
  shut_down_ = true;
  for (auto& [name, status] : statuses_) status = HealthCheckResponse::NOT_SERVING;
  for (Watcher* w : watchers_) w->Update(Lookup(w->service_), true);
}

void HealthService::Forget(Watcher* w) {
  std::lock_guard lock(mu_);
  watchers_.erase(w);
}

grpc::ServerUnaryReactor* HealthService::Check(grpc::CallbackServerContext* ctx,
                                               const grpc::health::v1::HealthCheckRequest* req,
                                               HealthCheckResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  std::lock_guard lock(mu_);
  Status status = Lookup(req->service());
  if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service \"" + req->service() + "\""));
  } else {
    resp->set_status(status);
    reactor->Finish(grpc::Status::OK);
  }
  return reactor;
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthService::Watch(grpc::CallbackServerContext*,
                                                                    const grpc::health::v1::HealthCheckRequest* req) {
  auto* w = new Watcher(*this, req->service());
  std::lock_guard lock(mu_);
  watchers_.insert(w);
  w->Update(Lookup(req->service()), shut_down_);
  return w;
}

}  // namespace ecrm::server
