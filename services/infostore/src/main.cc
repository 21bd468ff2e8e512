// ecrm-infostore: composition root of the customer-centric information store engine.
#include "ecrm/server/runner.h"
#include "ecrm/server/stores.h"

int main(int argc, char** argv) {
  ecrm::server::Runner runner(
      {.name = "ecrm-infostore",
       .engine = "infostore",
       .summary =
           "ecrm information store: the 360° customer view (identities, profiles, consents, events, change feed)",
       .grpc_port = 50051,
       .metrics_port = 9101});
  if (auto exit_code = runner.Start(argc, argv)) return *exit_code;
  auto stores = ecrm::server::OpenStores(runner, {});
  if (!stores.ok()) return runner.Fail("opening stores", stores.status());
  return runner.Serve();
}
