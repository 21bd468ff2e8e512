// ecrm-infostore-bench: streaming throughput of a running ecrm-infostore.
//   --mode=events  RecordEvents: `streams` client streams of `batch`-event batches for `duration`
//   --mode=watch   WatchChanges: one consumer reads the whole feed from sequence 0
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "bench_util.h"
#include "ecrm/config/flags.h"
#include "ecrm/infostore/v1/infostore.grpc.pb.h"

namespace v1 = ecrm::infostore::v1;

int main(int argc, char** argv) {
  std::string target = "127.0.0.1:50051", mode = "events";
  int64_t streams = 4, batch = 1000, customers = 1000, runs = 1, total_events = 0;
  absl::Duration duration = absl::Seconds(60);
  ecrm::config::Flags flags("ecrm-infostore-bench",
                            "RecordEvents and WatchChanges throughput of a running ecrm-infostore");
  flags.AddString("target", &target, "host:port of ecrm-infostore");
  flags.AddString("mode", &mode, "events or watch");
  flags.AddInt("streams", &streams, "concurrent RecordEvents streams");
  flags.AddInt("batch", &batch, "events per batch");
  flags.AddInt("customers", &customers, "distinct customers the events belong to (device ids, created on first use)");
  flags.AddInt("runs", &runs, "runs (the median is reported)");
  flags.AddInt("total-events", &total_events, "stop each events run after this many events (0: run for --duration)");
  flags.AddDuration("duration", &duration, "length of each events run");
  if (std::optional<int> exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  auto stub = v1::InformationStore::NewStub(channel);
  std::vector<double> results;
  // Event ids unique to this invocation: an earlier run's ids would only measure dedupe.
  const std::string nonce = absl::StrCat(absl::ToUnixNanos(absl::Now()));
  for (int64_t r = 0; r < runs; ++r) {
    if (mode == "events") {
      std::atomic<int64_t> accepted{0}, sent{0};
      std::atomic<bool> failed{false};
      const auto start = std::chrono::steady_clock::now();
      const auto end = start + absl::ToChronoNanoseconds(duration);
      std::vector<std::thread> threads;
      for (int64_t s = 0; s < streams; ++s) {
        threads.emplace_back([&, s] {
          grpc::ClientContext ctx;
          v1::RecordEventsResponse resp;
          auto writer = stub->RecordEvents(&ctx, &resp);
          const int64_t now_s = absl::ToUnixSeconds(absl::Now());
          int64_t batches = 0;
          for (int64_t b = 0; std::chrono::steady_clock::now() < end; ++b) {
            // Batches walk the customers in turn, so every customer gets events.
            const int64_t offset = sent.fetch_add(batch);
            if (total_events > 0 && offset >= total_events) break;
            v1::RecordEventsRequest req;
            for (int64_t i = 0; i < batch; ++i) {
              v1::Event* e = req.add_events();
              e->set_event_id(absl::StrCat("bench-", nonce, "-", r, "-", s, "-", b, "-", i));
              e->set_type(i % 10 == 0 ? "purchase" : "page_view");
              auto* id = e->mutable_customer()->mutable_identifier();
              id->set_type(ecrm::common::v1::IDENTIFIER_TYPE_DEVICE_ID);
              id->set_value(absl::StrCat("device-", (offset + i) % customers));
              e->mutable_occurred_at()->set_seconds(now_s - 3600 + i % 3600);
            }
            if (!writer->Write(req)) break;
            ++batches;
          }
          if (batches == 0) {  // the total was reached by the other streams: nothing to send
            ctx.TryCancel();
            (void)writer->Finish();
            return;
          }
          writer->WritesDone();
          grpc::Status st = writer->Finish();
          if (!st.ok()) {
            std::fprintf(stderr, "stream %lld: %s\n", static_cast<long long>(s), st.error_message().c_str());
            failed = true;
          }
          accepted += resp.accepted();
        });
      }
      for (auto& t : threads) t.join();
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (failed) return 1;
      results.push_back(static_cast<double>(accepted.load()) / secs);
    } else {
      grpc::ClientContext ctx;
      v1::WatchChangesRequest req;
      req.set_heartbeat_seconds(1);
      auto reader = stub->WatchChanges(&ctx, req);
      v1::WatchChangesResponse message;
      int64_t n = 0;
      const auto start = std::chrono::steady_clock::now();
      while (reader->Read(&message) && message.changes_size() > 0)
        n += message.changes_size();  // a heartbeat: caught up
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() - 1.0;
      ctx.TryCancel();
      (void)reader->Finish();
      results.push_back(static_cast<double>(n) / std::max(secs, 1e-3));
      std::fprintf(stderr, "watch: %lld changes\n", static_cast<long long>(n));
    }
  }
  ecrm::bench::PrintResult(absl::StrCat("infostore_", mode), mode == "events" ? "events/s" : "changes/s", results);
  return 0;
}
