// ecrm-broadcast: composition root of the broadcast engine.
#include "ecrm/server/runner.h"
#include "ecrm/server/stores.h"

int main(int argc, char** argv) {
  ecrm::server::Runner runner(
      {.name = "ecrm-broadcast",
       .engine = "broadcast",
       .summary = "ecrm broadcast: delivery over email, SMS, push and web inbox with consent and caps",
       .grpc_port = 50054,
       .metrics_port = 9104});
  if (auto exit_code = runner.Start(argc, argv)) return *exit_code;
  auto stores = ecrm::server::OpenStores(runner, {});
  if (!stores.ok()) return runner.Fail("opening stores", stores.status());
  return runner.Serve();
}
