#include "import.h"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "google/protobuf/descriptor.h"
#include "nlohmann/json.hpp"

namespace ecrm::ctl {
namespace {

struct Batch {
  std::vector<std::unique_ptr<google::protobuf::Message>> rows;
  std::vector<int64_t> lines;
};

struct Rejected {
  int64_t line;
  std::string reason;
};

std::string Thousands(int64_t n) {
  std::string digits = absl::StrCat(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

int RunImport(Invocation& inv, const ImportSpec& spec, const std::string& format_flag) {
  const std::string& path = inv.args.at(0);
  std::string format = format_flag;
  if (format.empty()) {
    if (absl::EndsWith(path, ".csv")) {
      format = "csv";
    } else if (absl::EndsWith(path, ".jsonl") || absl::EndsWith(path, ".ndjson") || absl::EndsWith(path, ".json")) {
      format = "jsonl";
    } else {
      std::cerr << "ecrmctl: cannot tell the format of \"" << path << "\" from its name: give --format=csv|jsonl\n";
      return kUsage;
    }
  }
  if (format != "csv" && format != "jsonl") {
    std::cerr << "ecrmctl: --format must be csv or jsonl, not \"" << format << "\"\n";
    return kUsage;
  }
  std::ifstream file;
  if (path != "-") {
    file.open(path);
    if (!file) {
      std::cerr << "ecrmctl: cannot read " << path << "\n";
      return kUsage;
    }
  }
  std::istream& in = path == "-" ? std::cin : file;
  const google::protobuf::Message* prototype =
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(spec.row);

  CsvReader csv(in);
  std::optional<CsvMapping> mapping;
  if (format == "csv") {
    Record header;
    absl::StatusOr<bool> got = csv.Next(&header);
    if (!got.ok() || !*got) {
      std::cerr << "ecrmctl: " << path << ": "
                << (got.ok() ? "empty file: expected a header row" : got.status().message()) << "\n";
      return kUsage;
    }
    absl::StatusOr<CsvMapping> m = CsvMapping::Create(*spec.row, header.fields, spec.hooks);
    if (!m.ok()) {
      std::cerr << "ecrmctl: " << path << ": " << m.status().message() << "\n";
      return kUsage;
    }
    mapping = std::move(*m);
  }

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Batch> queue;
  bool done_reading = false;
  int64_t imported = 0, unavailable = 0;
  std::atomic<int64_t> rows_read = 0;
  std::vector<Rejected> rejected;

  auto worker = [&] {
    for (;;) {
      Batch batch;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return !queue.empty() || done_reading; });
        if (queue.empty()) return;
        batch = std::move(queue.front());
        queue.pop_front();
      }
      cv.notify_all();
      std::vector<const google::protobuf::Message*> rows;
      for (auto& r : batch.rows) rows.push_back(r.get());
      std::vector<absl::Status> results;
      for (int attempt = 0;; ++attempt) {
        results = spec.send(inv, rows);
        bool any_unavailable = false;
        for (const absl::Status& s : results) any_unavailable |= absl::IsUnavailable(s);
        if (!any_unavailable || attempt == 5) break;
        std::this_thread::sleep_for(
            std::chrono::milliseconds(200 << attempt));  // backoff, then resend all: rows are idempotent
      }
      std::lock_guard lock(mu);
      for (size_t i = 0; i < rows.size(); ++i) {
        const absl::Status& s = i < results.size() ? results[i] : absl::InternalError("no answer for the row");
        if (s.ok()) {
          ++imported;
        } else {
          unavailable += absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s);
          rejected.push_back({batch.lines[i], std::string(s.message())});
        }
      }
    }
  };
  std::vector<std::thread> workers;
  for (int i = 0; i < std::max(1, inv.parallel); ++i) workers.emplace_back(worker);

  const bool show_progress = inv.progress || isatty(STDERR_FILENO);
  absl::Time last_progress = absl::Now();
  const absl::Time began = absl::Now();
  auto progress = [&](bool final) {
    if (!show_progress) return;
    std::lock_guard lock(mu);
    const double seconds = std::max(1e-3, absl::ToDoubleSeconds(absl::Now() - began));
    std::fprintf(stderr, "\r%s rows read, %s imported, %s rejected, %.0f rows/s%s", Thousands(rows_read.load()).c_str(),
                 Thousands(imported).c_str(), Thousands(static_cast<int64_t>(rejected.size())).c_str(),
                 static_cast<double>(imported) / seconds, final ? "\n" : "  ");
    std::fflush(stderr);
  };

  Batch batch;
  int exit_code = kOk;
  int64_t json_line = 0;
  for (;;) {
    Record record;
    absl::StatusOr<bool> got = true;
    if (format == "csv") {
      got = csv.Next(&record);
    } else if (std::getline(in, record.text)) {
      record.line = ++json_line;
    } else {
      got = false;
    }
    if (!got.ok()) {  // an unterminated quote runs to the end of the file
      std::lock_guard lock(mu);
      rejected.push_back({record.line, std::string(got.status().message())});
      break;
    }
    if (!*got) break;
    if (format == "jsonl" && absl::StripAsciiWhitespace(record.text).empty()) continue;
    ++rows_read;
    std::unique_ptr<google::protobuf::Message> row(prototype->New());
    absl::Status parsed = format == "csv" ? mapping->Fill(record.fields, *row) : ParseJsonLine(record.text, *row);
    if (!parsed.ok()) {
      std::lock_guard lock(mu);
      rejected.push_back({record.line, std::string(parsed.message())});
      continue;
    }
    batch.rows.push_back(std::move(row));
    batch.lines.push_back(record.line);
    if (batch.rows.size() >= spec.batch) {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return queue.size() < 4 * workers.size(); });  // bounded: memory stays flat
      queue.push_back(std::move(batch));
      batch = Batch();
      lock.unlock();
      cv.notify_all();
    }
    if (absl::Now() - last_progress > absl::Seconds(1)) {
      last_progress = absl::Now();
      progress(false);
    }
  }
  {
    std::lock_guard lock(mu);
    if (!batch.rows.empty()) queue.push_back(std::move(batch));
    done_reading = true;
  }
  cv.notify_all();
  for (std::thread& t : workers) t.join();
  progress(true);

  std::sort(rejected.begin(), rejected.end(), [](const Rejected& a, const Rejected& b) { return a.line < b.line; });
  if (inv.format == Format::kJson) {
    nlohmann::json out = {
        {"file", path}, {"rows", rows_read.load()}, {"imported", imported}, {"rejected", rejected.size()}};
    nlohmann::json errors = nlohmann::json::array();
    for (const Rejected& r : rejected) errors.push_back({{"line", r.line}, {"error", r.reason}});
    out["errors"] = std::move(errors);
    std::cout << out.dump() << "\n";
  } else {
    for (const Rejected& r : rejected) std::cerr << path << ":" << r.line << ": " << r.reason << "\n";
    std::cout << absl::StrFormat("%s: %s rows, %s imported, %s rejected\n", path, Thousands(rows_read.load()),
                                 Thousands(imported), Thousands(static_cast<int64_t>(rejected.size())));
  }
  if (unavailable > 0) {
    exit_code = kUnavailable;
  } else if (!rejected.empty()) {
    exit_code = kSomeRejected;
  }
  return exit_code;
}

}  // namespace ecrm::ctl
