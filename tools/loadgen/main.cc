// ecrm-load: open-loop gRPC load generator (see loadgen.h).
#include <cstdio>
#include <fstream>

#include "ecrm/config/flags.h"
#include "loadgen.h"

int main(int argc, char** argv) {
  ecrm::loadgen::Options o;
  bool json = false;
  std::string output;
  ecrm::config::Flags flags(
      "ecrm-load", "open-loop gRPC load generator; latency is measured from each request's scheduled send time");
  flags.AddString("target", &o.target, "host:port of the service under load");
  flags.AddString("workload", &o.workload,
                  "what to call: health (grpc.health.v1.Health/Check), infostore.get (GetCustomer, 2,000 seeded "
                  "customers), infostore.upsert (UpsertCustomer creating customers), transaction.add_cart_item "
                  "(AddCartItem over 100 products and 5,000 carts), transaction.checkout (Checkout of --population "
                  "carts filled before the load, one per request), segmentation.customer_segments / "
                  "segmentation.customer_scores (GetCustomerSegments / GetCustomerScores over the members of the "
                  "engine's largest segment, at most --population of them), personalisation.decide_offers / "
                  "personalisation.decide_offers_recorded (DecideOffers for the customers of --ids-file, preview / "
                  "recording impressions, after making sure the engine has --population active offers, default 200), "
                  "personalisation.batch_render (BatchRender of --batch-size customers of --ids-file for placement "
                  "\"home\": offers decided, recommendations fetched per customer; 200 offers made first)");
  flags.AddDouble("rate", &o.rate, "requests per second (open loop); 0 runs closed-loop to find saturation");
  flags.AddDuration("duration", &o.duration, "measured time");
  flags.AddDuration("warmup", &o.warmup, "time at the same load before measuring");
  flags.AddInt("concurrency", &o.concurrency, "most requests in flight (closed loop: exactly this many)");
  flags.AddInt("connections", &o.connections, "HTTP/2 connections to spread requests over");
  flags.AddDuration("timeout", &o.timeout, "deadline of each request");
  flags.AddInt("population", &o.population, "data the workload seeds before the load (0: its default)");
  flags.AddString("ids-file", &o.ids_file, "customer ids, one a line (personalisation.decide_offers, .batch_render)");
  flags.AddInt("batch-size", &o.batch_size, "customers per call (personalisation.batch_render: 1,000)");
  flags.AddBool("json", &json, "print one JSON object instead of the human report");
  flags.AddString("output", &output, "also append the JSON report as a line to this file");
  if (std::optional<int> exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  absl::StatusOr<ecrm::loadgen::Report> report = ecrm::loadgen::Run(o);
  if (!report.ok()) {
    std::fprintf(stderr, "ecrm-load: %s\n", std::string(report.status().message()).c_str());
    return 1;
  }
  std::fputs(json ? (report->Json() + "\n").c_str() : report->Human().c_str(), stdout);
  if (!output.empty()) std::ofstream(output, std::ios::app) << report->Json() << "\n";
  return 0;
}
