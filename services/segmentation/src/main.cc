// ecrm-segmentation: composition root of the analysis and segmentation engine.
#include "ecrm/server/runner.h"
#include "ecrm/server/stores.h"

int main(int argc, char** argv) {
  ecrm::server::Runner runner(
      {.name = "ecrm-segmentation",
       .engine = "segmentation",
       .summary = "ecrm segmentation: rule-based segments, RFM and scores, campaigns and their reports",
       .grpc_port = 50052,
       .metrics_port = 9102});
  if (auto exit_code = runner.Start(argc, argv)) return *exit_code;
  auto stores = ecrm::server::OpenStores(runner, {});
  if (!stores.ok()) return runner.Fail("opening stores", stores.status());
  return runner.Serve();
}
