// Channels and call contexts for calls to another engine.
#pragma once

#include <memory>
#include <string>

#include "absl/time/time.h"

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace ecrm::server {

// A channel to another engine that reconnects within a quarter of a second after the peer
// comes back (gRPC's default backoff, 1 s growing to 120 s, left a restarted peer unusable for
// seconds).
std::shared_ptr<grpc::Channel> OutboundChannel(const std::string& address);

// Sets the call's deadline — `timeout` from now, or the deadline of the RPC this thread works
// for if that comes sooner (deadline.h) — and lets the call wait for the channel to become
// ready within it, so a call made while the peer is reconnecting is delayed, not failed at once
// with UNAVAILABLE.
void PrepareOutboundCall(grpc::ClientContext& ctx, absl::Duration timeout);

}  // namespace ecrm::server
