// How many threads this rank uses for BLAS and its own loops (--threads), and the CPUs it may use.
//
// A rank may run on the CPUs of its affinity mask (taskset, mpirun --bind-to, srun --cpu-bind,
// a cpuset) and, over time, on as much CPU as its cgroup's quota allows (a container's --cpus, a
// job's CPU limit). std::thread::hardware_concurrency counts neither: on a 64-core node a rank
// bound to 2 cores would start 64 threads that take turns on those 2.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace tessera::kernels {

// A set of up to 1024 CPUs (the size of the kernel's cpu_set_t), bit i for CPU i. Two processes
// with equal masks compete for the same CPUs.
using CpuMask = std::array<uint64_t, 16>;

// This process's affinity mask (sched_getaffinity); where that fails (more than 1024 CPUs), CPUs
// 0 .. hardware_concurrency-1.
CpuMask cpu_affinity();

// How many CPUs a mask holds.
int cpu_count(const CpuMask& mask);

// A cgroup's CPU limit: `cpus` CPUs' worth of time (1.5 = one and a half CPUs), set in the cgroup
// directory `cgroup` (every process below it shares the limit); no limit: infinity and "".
struct CpuQuota {
  double cpus;
  std::string cgroup;
};

// The text of cgroup v2's cpu.max, "QUOTA PERIOD" in microseconds ("150000 100000": 1.5 CPUs) or
// "max PERIOD" (no limit), as CPUs; infinity for "max" and for text that is neither.
double parse_cgroup_cpu_max(std::string_view text);

// The tightest CPU limit of this process's cgroup and its ancestors: cgroup v2's cpu.max under
// `mount`, or v1's cpu.cfs_quota_us / cpu.cfs_period_us under `mount`/cpu, for the cgroups that
// `proc_cgroup` (/proc/self/cgroup) names. The arguments are there for tests.
CpuQuota cgroup_cpu_quota(const std::filesystem::path& proc_cgroup = "/proc/self/cgroup",
                          const std::filesystem::path& mount = "/sys/fs/cgroup");

// The arithmetic of the default: this rank's `cpus` (its mask) are shared by
// `ranks_sharing_cpus` ranks (those with the same mask, itself included), and the cgroup quota
// `quota_cpus` by `ranks_sharing_quota` ranks (those in the same cgroup); the rank takes its
// share of each, the smaller one, rounded down, but at least 1 thread. cpus_per_task > 0 (SLURM's
// --cpus-per-task, which an unbound task's mask does not show) caps it further.
int threads_per_rank(int cpus, double quota_cpus, int ranks_sharing_cpus, int ranks_sharing_quota,
                     int cpus_per_task = 0);

// SLURM_CPUS_PER_TASK as a number of CPUs, or 0 where it is unset or not a positive integer.
int slurm_cpus_per_task(const char* value);

// threads_per_rank for this process. When MPI is up (parallel::init_mpi), the ranks sharing its
// mask and its cgroup are counted among the ranks on its node (parallel::node_ranks); otherwise
// it is the only rank. Ranks bound to their own cores (srun --cpu-bind=cores) use their own mask;
// unbound ranks of one node split the node.
int default_threads_per_rank();

}  // namespace tessera::kernels
