// Waiting for a broadcast to finish: the tests of broadcast, and of the engines that hand it
// campaigns, look at its counts once every recipient is in a final state.
#pragma once

#include <string>

#include "absl/time/time.h"
#include "ecrm/broadcast/v1/broadcast.grpc.pb.h"
#include "test_servers.h"

namespace ecrm::testing {

// Polls GetBroadcast until broadcast `id` is COMPLETED (true) or `timeout` passes (false); `job`
// holds the last answer either way.
inline bool BroadcastCompleted(broadcast::v1::Broadcast::Stub& stub, const std::string& id,
                               broadcast::v1::BroadcastJob& job, absl::Duration timeout = absl::Seconds(30)) {
  broadcast::v1::GetBroadcastRequest get;
  get.set_id(id);
  return Eventually(
      [&] {
        return Call(stub, &broadcast::v1::Broadcast::Stub::GetBroadcast, get, &job).ok() &&
               job.state() == broadcast::v1::BROADCAST_STATE_COMPLETED;
      },
      timeout);
}

}  // namespace ecrm::testing
