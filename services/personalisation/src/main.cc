// ecrm-personalisation: composition root of the personalisation engine.
#include "ecrm/server/runner.h"
#include "ecrm/server/stores.h"

int main(int argc, char** argv) {
  ecrm::server::Runner runner(
      {.name = "ecrm-personalisation",
       .engine = "personalisation",
       .summary = "ecrm personalisation: next-best offers, recommendations and message templates",
       .grpc_port = 50053,
       .metrics_port = 9103});
  if (auto exit_code = runner.Start(argc, argv)) return *exit_code;
  auto stores = ecrm::server::OpenStores(runner, {});
  if (!stores.ok()) return runner.Fail("opening stores", stores.status());
  return runner.Serve();
}
