// The caller's deadline carried to calls to other engines (libs/server deadline.h, channel.h).
#include <grpcpp/client_context.h>

#include <catch2/catch.hpp>
#include <thread>

#include "absl/time/clock.h"
#include "ecrm/server/channel.h"
#include "ecrm/server/deadline.h"

using ecrm::server::CurrentDeadline;
using ecrm::server::PrepareOutboundCall;
using ecrm::server::ScopedDeadline;

namespace {

absl::Time DeadlineOf(const grpc::ClientContext& ctx) { return absl::FromChrono(ctx.deadline()); }

}  // namespace

TEST_CASE("an outbound call made with 50 ms of the caller's budget left gets 50 ms, not its 2 s timeout") {
  const absl::Time caller = absl::Now() + absl::Milliseconds(50);
  ScopedDeadline scope(caller);
  grpc::ClientContext ctx;
  PrepareOutboundCall(ctx, absl::Seconds(2));
  CHECK(absl::ToInt64Microseconds(DeadlineOf(ctx) - caller) == 0);
}

TEST_CASE("without a caller's deadline an outbound call gets its own timeout") {
  CHECK(CurrentDeadline() == absl::InfiniteFuture());
  grpc::ClientContext ctx;
  const absl::Time before = absl::Now();
  PrepareOutboundCall(ctx, absl::Seconds(2));
  const absl::Time after = absl::Now();
  CHECK(DeadlineOf(ctx) >= before + absl::Seconds(2) - absl::Microseconds(1));
  CHECK(DeadlineOf(ctx) <= after + absl::Seconds(2) + absl::Microseconds(1));

  // A caller with more time left than the timeout does not lengthen it.
  ScopedDeadline generous(absl::Now() + absl::Hours(1));
  grpc::ClientContext longer;
  PrepareOutboundCall(longer, absl::Seconds(2));
  CHECK(DeadlineOf(longer) <= absl::Now() + absl::Seconds(2));
}

TEST_CASE("deadline scopes nest, restore the outer one, and belong to their thread") {
  const absl::Time outer = absl::Now() + absl::Seconds(10);
  const absl::Time inner = absl::Now() + absl::Seconds(1);
  {
    ScopedDeadline a(outer);
    {
      ScopedDeadline b(inner);
      CHECK(CurrentDeadline() == inner);
      absl::Time seen_elsewhere;
      std::thread([&] { seen_elsewhere = CurrentDeadline(); }).join();
      CHECK(seen_elsewhere == absl::InfiniteFuture());
    }
    CHECK(CurrentDeadline() == outer);
  }
  CHECK(CurrentDeadline() == absl::InfiniteFuture());
}
