#include "process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <prometheus/metric_family.h>

namespace ecrm::server {
namespace {

prometheus::MetricFamily Single(std::string name, std::string help, prometheus::MetricType type, double value) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  prometheus::ClientMetric m;
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
  return f;
}

double BootTimeSeconds() {
  std::ifstream in("/proc/stat");
  std::string key;
  double value = 0;
  while (in >> key) {
    if (key == "btime") {
      in >> value;
      return value;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

int OpenFds() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d) != nullptr) ++n;
    closedir(d);
    n -= 3;  // ".", ".." and the directory's own descriptor
  }
  return n;
}

}  // namespace

ProcessMetrics::ProcessMetrics(std::string service, std::string version)
    : service_(std::move(service)), version_(std::move(version)) {}

std::vector<prometheus::MetricFamily> ProcessMetrics::Collect() const {
  std::vector<prometheus::MetricFamily> out;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  std::ifstream stat("/proc/self/stat");
  std::string line;
  std::getline(stat, line);
  // Fields after the parenthesised command name; see proc(5).
  size_t close = line.rfind(')');
  if (close != std::string::npos) {
    std::istringstream rest(line.substr(close + 2));
    std::vector<std::string> f;
    std::string tok;
    while (rest >> tok) f.push_back(tok);
    if (f.size() > 21) {
      // f[0] is field 3 (state): utime=14, stime=15, starttime=22, vsize=23, rss=24.
      double cpu = (std::stod(f[11]) + std::stod(f[12])) / ticks;
      out.push_back(Single("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                           prometheus::MetricType::Counter, cpu));
      out.push_back(Single("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                           prometheus::MetricType::Gauge, BootTimeSeconds() + std::stod(f[19]) / ticks));
      out.push_back(Single("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                           prometheus::MetricType::Gauge, std::stod(f[20])));
      out.push_back(Single("process_resident_memory_bytes", "Resident memory size in bytes.",
                           prometheus::MetricType::Gauge, std::stod(f[21]) * page));
    }
  }
  out.push_back(
      Single("process_open_fds", "Number of open file descriptors.", prometheus::MetricType::Gauge, OpenFds()));
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    out.push_back(Single("process_max_fds", "Maximum number of open file descriptors.", prometheus::MetricType::Gauge,
                         static_cast<double>(lim.rlim_cur)));
  }
  prometheus::MetricFamily build =
      Single("ecrm_build_info", "ecrm build; the value is always 1.", prometheus::MetricType::Gauge, 1);
  build.metric[0].label = {{"service", service_}, {"version", version_}};
  out.push_back(std::move(build));
  return out;
}

}  // namespace ecrm::server
