#include "kernels/threads.h"

#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string_view>
#include <thread>

#include "kernels/cpu/blas.h"
#include "kernels/ops.h"
#include "parallel/mpi_runtime.h"

namespace tessera::kernels {
namespace {

int g_threads = 1;
constexpr double kNoLimit = std::numeric_limits<double>::infinity();

// The first line of `file`, or "" when it cannot be read.
std::string first_line(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

// This process's cgroup (e.g. "/system.slice/job.scope") from `proc_cgroup` (/proc/self/cgroup),
// whose lines read "ID:CONTROLLERS:PATH". cgroup v2's line is "0::PATH"; in v1, the line whose
// comma-separated controllers include "cpu" (often mounted together as "cpu,cpuacct"). "" when
// there is none.
std::string cgroup_path(const std::filesystem::path& proc_cgroup, bool v2) {
  std::ifstream in(proc_cgroup);
  for (std::string line; std::getline(in, line);) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const bool match = v2 ? line.compare(0, a, "0") == 0 && controllers.empty()
                          : ("," + controllers + ",").find(",cpu,") != std::string::npos;
    if (match) return line.substr(b + 1);
  }
  return "";
}

// cgroup v1's limit in `dir`: cpu.cfs_quota_us (-1: none) over cpu.cfs_period_us, in CPUs.
double cgroup_v1_cpus(const std::filesystem::path& dir) {
  std::istringstream quota(first_line(dir / "cpu.cfs_quota_us")), period(first_line(dir / "cpu.cfs_period_us"));
  double q = -1, p = 0;
  if (!(quota >> q) || !(period >> p) || q <= 0 || p <= 0) return kNoLimit;
  return q / p;
}

// The tightest limit from the cgroup `path` (as /proc/self/cgroup names it) up to the hierarchy's
// root mounted at `mount`: a child cannot use more than any ancestor allows. In a container the
// path may name the host's hierarchy while `mount` holds only the container's part; directories
// that do not exist have no limit to read, and the walk still ends at `mount`.
CpuQuota tightest_limit(const std::filesystem::path& mount, const std::string& path,
                        double (*cpus_in)(const std::filesystem::path&)) {
  CpuQuota best{kNoLimit, ""};
  std::filesystem::path dir = std::filesystem::path(mount.string() + path).lexically_normal();
  if (!dir.has_filename()) dir = dir.parent_path();  // "/sys/fs/cgroup/" names /sys/fs/cgroup
  for (;;) {
    const double cpus = cpus_in(dir);
    if (cpus < best.cpus) best = {cpus, dir.string()};
    if (dir.string().size() <= mount.string().size() || dir == dir.parent_path()) return best;
    dir = dir.parent_path();
  }
}

}  // namespace

// OpenMP's threads do all the work, matrix products included (kernels/cpu/matmul_cpu.cc cuts them
// into per-thread panels); the BLAS stays single-threaded so its pool never competes with OpenMP's.
void set_num_threads(int threads) {
  g_threads = threads < 1 ? 1 : threads;
  omp_set_num_threads(g_threads);
  cpu::blas_set_single_threaded();
}

int num_threads() { return g_threads; }

CpuMask cpu_affinity() {
  CpuMask mask{};
  static_assert(sizeof(cpu_set_t) == sizeof(CpuMask), "CpuMask must hold a cpu_set_t");
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
      if (CPU_ISSET(cpu, &set)) mask[cpu / 64] |= uint64_t{1} << (cpu % 64);
    return mask;
  }
  const int n = std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, CPU_SETSIZE);
  for (int cpu = 0; cpu < n; ++cpu) mask[cpu / 64] |= uint64_t{1} << (cpu % 64);
  return mask;
}

int cpu_count(const CpuMask& mask) {
  int n = 0;
  for (uint64_t word : mask) n += std::popcount(word);
  return n;
}

double parse_cgroup_cpu_max(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::string quota;
  double period = 0;
  if (!(in >> quota >> period) || period <= 0) return kNoLimit;  // unreadable: no limit we know of
  double q = 0;
  const auto [end, error] = std::from_chars(quota.data(), quota.data() + quota.size(), q);
  if (error != std::errc() || end != quota.data() + quota.size() || q <= 0) return kNoLimit;  // "max"
  return q / period;
}

CpuQuota cgroup_cpu_quota(const std::filesystem::path& proc_cgroup, const std::filesystem::path& mount) {
  const CpuQuota v2 = tightest_limit(mount, cgroup_path(proc_cgroup, true), [](const std::filesystem::path& dir) {
    return parse_cgroup_cpu_max(first_line(dir / "cpu.max"));
  });
  // v1 mounts the cpu controller at cpu/ (systemd: a link to cpu,cpuacct/).
  const CpuQuota v1 = tightest_limit(mount / "cpu", cgroup_path(proc_cgroup, false), cgroup_v1_cpus);
  return v1.cpus < v2.cpus ? v1 : v2;
}

int threads_per_rank(int cpus, double quota_cpus, int ranks_sharing_cpus, int ranks_sharing_quota,
                     int cpus_per_task) {
  const int of_mask = cpus / std::max(1, ranks_sharing_cpus);
  const double of_quota = std::floor(quota_cpus / std::max(1, ranks_sharing_quota));
  int threads = of_quota < of_mask ? static_cast<int>(of_quota) : of_mask;
  if (cpus_per_task > 0) threads = std::min(threads, cpus_per_task);
  return std::max(1, threads);
}

int slurm_cpus_per_task(const char* value) {
  if (value == nullptr) return 0;
  const std::string_view text(value);
  int n = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), n);
  return error == std::errc() && end == text.data() + text.size() && n > 0 ? n : 0;
}

int default_threads_per_rank() {
  const parallel::NodeRanks& node = parallel::node_ranks();
  return threads_per_rank(cpu_count(cpu_affinity()), cgroup_cpu_quota().cpus, node.ranks_sharing_cpus,
                          node.ranks_sharing_quota, slurm_cpus_per_task(std::getenv("SLURM_CPUS_PER_TASK")));
}

}  // namespace tessera::kernels
