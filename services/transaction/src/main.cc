// ecrm-transaction: composition root of the transaction engine.
#include "ecrm/server/runner.h"
#include "ecrm/server/stores.h"

int main(int argc, char** argv) {
  ecrm::server::Runner runner({.name = "ecrm-transaction",
                               .engine = "transaction",
                               .summary = "ecrm transaction: catalogue, carts, orders, loyalty and service inquiries",
                               .grpc_port = 50055,
                               .metrics_port = 9105});
  if (auto exit_code = runner.Start(argc, argv)) return *exit_code;
  auto stores = ecrm::server::OpenStores(runner, {});
  if (!stores.ok()) return runner.Fail("opening stores", stores.status());
  return runner.Serve();
}
