// A rank's place on its node comes from MPI (MPI_COMM_TYPE_SHARED), not from launcher variables,
// and the default thread count splits a CPU mask among the ranks of the node that share it.
// node_ranks.cmake runs this under plain mpirun, under `taskset -c 0`, and with each rank bound
// to its own core; TESSERA_EXPECT_SHARING and TESSERA_EXPECT_THREADS say what each must find.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cstdlib>

#include "kernels/threads.h"
#include "parallel/compute_device.h"
#include "parallel/mpi_runtime.h"

namespace tessera::parallel {
namespace {

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int world_size() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

// An expectation from the test's registration, or -1 when it sets none.
int expected(const char* var) {
  const char* v = std::getenv(var);
  return v ? std::atoi(v) : -1;
}

TEST(NodeRanks, AllRanksOfOneMachineAreOneNode) {
  // mpirun on one machine: every rank is on this node, in world-rank order.
  const NodeRanks& node = node_ranks();
  EXPECT_EQ(node.local_size, world_size());
  EXPECT_EQ(node.local_rank, world_rank());
  EXPECT_EQ(node.first_world_rank, 0);
  EXPECT_EQ(local_rank(), world_rank());
  EXPECT_EQ(local_size(), world_size());
  // The GPU choice reads the same numbers.
  const NodePlacement placement = node_placement();
  EXPECT_EQ(placement.local_rank, node.local_rank);
  EXPECT_EQ(placement.local_ranks, node.local_size);
  // Open MPI's own view, where it gives one, agrees.
  if (const char* v = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK")) {
    EXPECT_EQ(node.local_rank, std::atoi(v));
  }
  if (const char* v = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE")) {
    EXPECT_EQ(node.local_size, std::atoi(v));
  }
}

TEST(NodeRanks, CountsRanksSharingTheCpuMask) {
  // Without an expectation from the registration: what holds on any machine.
  const int sharing = expected("TESSERA_EXPECT_SHARING");
  if (sharing < 0) {
    EXPECT_GE(node_ranks().ranks_sharing_cpus, 1);
    EXPECT_LE(node_ranks().ranks_sharing_cpus, node_ranks().local_size);
  } else {
    EXPECT_EQ(node_ranks().ranks_sharing_cpus, sharing)
        << "this rank's CPUs: " << kernels::cpu_count(kernels::cpu_affinity());
  }
  // One machine, one cgroup: every rank shares the quota (if there is one).
  EXPECT_EQ(node_ranks().ranks_sharing_quota, world_size());
}

TEST(NodeRanks, DefaultThreads) {
  // Without an expectation (the count depends on the machine's cores): at least 1, and never more
  // than this rank's share of its mask (a cgroup quota can only lower it).
  const int threads = expected("TESSERA_EXPECT_THREADS");
  const int cpus = kernels::cpu_count(kernels::cpu_affinity()), sharing = node_ranks().ranks_sharing_cpus;
  if (threads < 0) {
    EXPECT_GE(kernels::default_threads_per_rank(), 1);
    EXPECT_LE(kernels::default_threads_per_rank(), std::max(1, cpus / sharing));
  } else {
    EXPECT_EQ(kernels::default_threads_per_rank(), threads)
        << "this rank's CPUs: " << cpus << ", ranks sharing them " << sharing;
  }
}

}  // namespace
}  // namespace tessera::parallel
