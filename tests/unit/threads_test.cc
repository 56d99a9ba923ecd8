// The default thread count: the CPUs a rank may use (affinity mask, cgroup quota) shared among the
// ranks that compete for them. The arithmetic and the cgroup files are checked here without MPI;
// tests/mpi/node_ranks_test.cc checks the counting of ranks under mpirun.
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "kernels/threads.h"

namespace tessera::kernels {
namespace {

namespace fs = std::filesystem;

TEST(Threads, ParsesCgroupV2CpuMax) {
  EXPECT_TRUE(std::isinf(parse_cgroup_cpu_max("max 100000")));  // no limit
  EXPECT_DOUBLE_EQ(parse_cgroup_cpu_max("150000 100000"), 1.5);
  EXPECT_DOUBLE_EQ(parse_cgroup_cpu_max("400000 100000\n"), 4.0);
  EXPECT_DOUBLE_EQ(parse_cgroup_cpu_max("50000 100000"), 0.5);
  // What is not a limit reads as none: the default must not fall to 1 thread on a misread file.
  for (const char* text : {"", "max", "150000", "150000 0", "-1 100000", "15x 100000", "abc def"})
    EXPECT_TRUE(std::isinf(parse_cgroup_cpu_max(text))) << "'" << text << "'";
}

TEST(Threads, SplitsTheMaskAmongRanksSharingIt) {
  const double none = INFINITY;
  EXPECT_EQ(threads_per_rank(16, none, 1, 1), 16);  // one process, the whole node
  EXPECT_EQ(threads_per_rank(16, none, 4, 4), 4);   // mpirun --bind-to none: 4 ranks split the node
  EXPECT_EQ(threads_per_rank(16, none, 3, 3), 5);   // rounded down: never more threads than CPUs
  EXPECT_EQ(threads_per_rank(2, none, 1, 4), 2);    // srun --cpu-bind=cores: each rank its own 2 cores
  EXPECT_EQ(threads_per_rank(2, none, 3, 3), 1);    // more ranks than CPUs: still one thread each
  EXPECT_EQ(threads_per_rank(1, none, 1, 1), 1);    // taskset -c 0
}

TEST(Threads, CgroupQuotaCapsTheShare) {
  EXPECT_EQ(threads_per_rank(64, 8.0, 1, 1), 8);   // docker --cpus 8 on a 64-core host
  EXPECT_EQ(threads_per_rank(64, 8.0, 4, 4), 2);   // ... shared by the container's 4 ranks
  EXPECT_EQ(threads_per_rank(64, 1.5, 1, 1), 1);   // a fraction of a CPU rounds down
  EXPECT_EQ(threads_per_rank(64, 0.5, 1, 1), 1);   // ... but never below one thread
  EXPECT_EQ(threads_per_rank(4, 32.0, 1, 1), 4);   // a loose quota leaves the mask's count
  EXPECT_EQ(threads_per_rank(4, 6.0, 1, 4), 1);    // own cores, but 4 ranks share 6 CPUs of time
}

TEST(Threads, SlurmCpusPerTaskCapsTheShare) {
  const double none = INFINITY;
  EXPECT_EQ(threads_per_rank(16, none, 1, 1, 4), 4);  // srun -c 4 --cpu-bind=none: the mask is the node's
  EXPECT_EQ(threads_per_rank(16, none, 4, 4, 8), 4);  // a looser cpus-per-task leaves the node's share
  EXPECT_EQ(threads_per_rank(16, 2.0, 1, 1, 4), 2);   // ... and the cgroup's
  EXPECT_EQ(slurm_cpus_per_task("4"), 4);
  for (const char* bad : {"", "0", "-2", "4x", "four"}) EXPECT_EQ(slurm_cpus_per_task(bad), 0) << "'" << bad << "'";
  EXPECT_EQ(slurm_cpus_per_task(nullptr), 0);
}

// A fake /sys/fs/cgroup and /proc/self/cgroup in a temporary directory.
class FakeCgroups : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("tessera-cgroups-" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "mnt");
  }
  void TearDown() override { fs::remove_all(root_); }
  void write(const fs::path& relative, const std::string& text) {
    fs::create_directories((root_ / relative).parent_path());
    std::ofstream(root_ / relative) << text << "\n";
  }
  CpuQuota quota() { return cgroup_cpu_quota(root_ / "proc-self-cgroup", root_ / "mnt"); }
  fs::path root_;
};

TEST_F(FakeCgroups, V2TakesTheTightestAncestor) {
  write("proc-self-cgroup", "0::/job/step/task_0");
  write("mnt/job/cpu.max", "400000 100000");            // the job: 4 CPUs
  write("mnt/job/step/cpu.max", "max 100000");          // the step: no limit of its own
  write("mnt/job/step/task_0/cpu.max", "800000 100000");  // looser than its parent: not binding
  const CpuQuota q = quota();
  EXPECT_DOUBLE_EQ(q.cpus, 4.0);
  EXPECT_EQ(fs::path(q.cgroup), root_ / "mnt/job");  // the ranks under job/ share it
}

TEST_F(FakeCgroups, V1ReadsCfsQuotaOfTheCpuController) {
  write("proc-self-cgroup", "4:memory:/elsewhere\n3:cpu,cpuacct:/docker/abc\n0::/");
  write("mnt/cpu/docker/abc/cpu.cfs_quota_us", "150000");
  write("mnt/cpu/docker/abc/cpu.cfs_period_us", "100000");
  write("mnt/cpu/cpu.cfs_quota_us", "-1");  // the root: no limit
  write("mnt/cpu/cpu.cfs_period_us", "100000");
  EXPECT_DOUBLE_EQ(quota().cpus, 1.5);
}

TEST_F(FakeCgroups, ContainerMountHoldsOnlyItsOwnPart) {
  // Without a cgroup namespace the path names the host's hierarchy, but the container sees only
  // its own cgroup, mounted at the root: the walk still ends there and finds its limit.
  write("proc-self-cgroup", "0::/system.slice/docker-abc.scope");
  write("mnt/cpu.max", "200000 100000");
  EXPECT_DOUBLE_EQ(quota().cpus, 2.0);
}

TEST_F(FakeCgroups, NoLimitAnywhere) {
  write("proc-self-cgroup", "0::/user.slice");
  const CpuQuota q = quota();
  EXPECT_TRUE(std::isinf(q.cpus));
  EXPECT_EQ(q.cgroup, "");
}

TEST(Threads, DefaultFollowsTheAffinityMask) {
  // Without MPI this process is the only rank: its default is its own mask's CPUs (or fewer,
  // under a cgroup quota). Bound to one CPU, like `taskset -c 0`, it must use one thread.
  cpu_set_t saved;
  ASSERT_EQ(sched_getaffinity(0, sizeof saved, &saved), 0);
  const int cpus = cpu_count(cpu_affinity());
  EXPECT_EQ(cpus, CPU_COUNT(&saved));
  EXPECT_GE(default_threads_per_rank(), 1);
  EXPECT_LE(default_threads_per_rank(), cpus);

  int first = 0;
  while (!CPU_ISSET(first, &saved)) ++first;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  const int bound_cpus = cpu_count(cpu_affinity()), bound_threads = default_threads_per_rank();
  ASSERT_EQ(sched_setaffinity(0, sizeof saved, &saved), 0);
  EXPECT_EQ(bound_cpus, 1);
  EXPECT_EQ(bound_threads, 1);
}

}  // namespace
}  // namespace tessera::kernels
