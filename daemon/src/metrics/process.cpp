// /proc/self readers for the process metrics.
#include "metrics/process.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace pgcohere::metrics {

namespace {

// Fields of /proc/self/stat after the command name (which may contain spaces).
std::vector<std::string> stat_fields() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  std::vector<std::string> out;
  auto close = line.rfind(')');
  if (close == std::string::npos) return out;
  std::istringstream rest(line.substr(close + 2));
  for (std::string f; rest >> f;) out.push_back(f);
  return out;  // out[0] is field 3 (state)
}

double boot_time_seconds() {
  std::ifstream in("/proc/stat");
  for (std::string key; in >> key;) {
    if (key == "btime") {
      double v = 0;
      in >> v;
      return v;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

int count_open_fds() {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  int n = 0;
  while (dirent* ent = readdir(dir))
    if (ent->d_name[0] != '.') ++n;
  closedir(dir);
  return n - 1;  // the descriptor opendir itself holds
}

}  // namespace

void collect_process_metrics(Exposition& e) {
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  auto f = stat_fields();
  // man 5 proc: utime(14) stime(15) num_threads(20) starttime(22) vsize(23) rss(24);
  // out[i] is field i + 3.
  if (f.size() > 21 && ticks > 0) {
    double utime = std::stod(f[11]), stime = std::stod(f[12]);
    e.counter("process_cpu_seconds_total", "User and system CPU time spent, seconds", {},
              (utime + stime) / ticks);
    e.gauge("process_threads", "Threads in the process", {}, std::stod(f[17]));
    e.gauge("process_start_time_seconds", "Start time of the process since the Unix epoch, seconds", {},
            boot_time_seconds() + std::stod(f[19]) / ticks);
    e.gauge("process_virtual_memory_bytes", "Virtual memory size, bytes", {}, std::stod(f[20]));
    e.gauge("process_resident_memory_bytes", "Resident memory size, bytes", {}, std::stod(f[21]) * page);
  }
  int fds = count_open_fds();
  if (fds >= 0) e.gauge("process_open_fds", "Open file descriptors", {}, fds);
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY)
    e.gauge("process_max_fds", "Limit on open file descriptors", {}, static_cast<double>(lim.rlim_cur));
}

void register_process_metrics() {
  static std::once_flag once;
  std::call_once(once, [] { registry().add_collector(collect_process_metrics); });
}

}  // namespace pgcohere::metrics
