#include "parallel/mpi_runtime.h"

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include <mpi.h>

#include "core/error.h"
#include "core/log.h"
#include "kernels/threads.h"

namespace tessera::parallel {
namespace {

const char* thread_level_name(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE: return "MPI_THREAD_SINGLE";
    case MPI_THREAD_FUNNELED: return "MPI_THREAD_FUNNELED";
    case MPI_THREAD_SERIALIZED: return "MPI_THREAD_SERIALIZED";
    case MPI_THREAD_MULTIPLE: return "MPI_THREAD_MULTIPLE";
  }
  return "an unknown thread level";
}

NodeRanks g_node;  // a single process's until init_mpi finds the node

// What each rank tells the others of its node: who it is and which CPUs it competes for.
struct RankCpus {
  kernels::CpuMask mask;  // its affinity mask
  uint64_t quota_cgroup;  // a hash of the cgroup directory that limits its CPU time ("" if none)
  int64_t world_rank;     // 64 bits: no padding travels uninitialised
};

// The ranks that can share memory with this one are its node (MPI_COMM_TYPE_SHARED); one
// all-gather among them tells its place and which of them share its CPUs or its CPU quota.
NodeRanks find_node_ranks() {
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm node = MPI_COMM_NULL;
  TESSERA_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world_rank, MPI_INFO_NULL, &node) ==
                    MPI_SUCCESS,
                "MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) failed on world rank ", world_rank);
  NodeRanks n;
  MPI_Comm_rank(node, &n.local_rank);
  MPI_Comm_size(node, &n.local_size);
  const RankCpus mine{kernels::cpu_affinity(), std::hash<std::string>{}(kernels::cgroup_cpu_quota().cgroup),
                      world_rank};
  std::vector<RankCpus> all(static_cast<size_t>(n.local_size));
  const int rc = MPI_Allgather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, node);
  MPI_Comm_free(&node);
  TESSERA_CHECK(rc == MPI_SUCCESS, "MPI_Allgather over the ranks of world rank ", world_rank, "'s node failed");
  n.first_world_rank = world_rank;
  n.ranks_sharing_cpus = n.ranks_sharing_quota = 0;
  for (const RankCpus& other : all) {
    n.first_world_rank = std::min(n.first_world_rank, static_cast<int>(other.world_rank));
    n.ranks_sharing_cpus += other.mask == mine.mask;
    n.ranks_sharing_quota += other.quota_cgroup == mine.quota_cgroup;
  }
  return n;
}

}  // namespace

const NodeRanks& node_ranks() { return g_node; }

namespace {
std::mutex g_world_nodes_mutex;
std::vector<std::string> g_world_nodes;
}  // namespace

void remember_world_nodes(std::vector<std::string> nodes) {
  std::lock_guard lock(g_world_nodes_mutex);
  g_world_nodes = std::move(nodes);
}

std::string world_node(int world_rank) {
  std::lock_guard lock(g_world_nodes_mutex);
  return world_rank >= 0 && static_cast<size_t>(world_rank) < g_world_nodes.size()
             ? g_world_nodes[static_cast<size_t>(world_rank)]
             : std::string();
}

void init_mpi(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  int provided = MPI_THREAD_SINGLE;
  if (initialized) {
    MPI_Query_thread(&provided);
  } else {
    // Each communicator's progress thread waits inside MPI for every collective, and Open MPI's
    // progress engine busy-polls there unless it knows the node is full, which it does not under
    // srun or a hostfile that claims more slots than cores: the polling then takes cores from the
    // compute threads (a 40-step run under srun -n 4 took 24.1 s, 2.3 s yielding). Yielding costs
    // a dedicated core nothing measurable (docs/performance.md); OMPI_MCA_mpi_yield_when_idle set
    // by the user wins.
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", /*overwrite=*/0);
    TESSERA_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) == MPI_SUCCESS,
                  "MPI_Init_thread failed");
  }
  TESSERA_CHECK(provided == MPI_THREAD_MULTIPLE,
                "tessera needs MPI_THREAD_MULTIPLE (collectives run on progress threads) but the "
                "MPI library provides only ", thread_level_name(provided),
                "; use an MPI build with thread support (Open MPI: --enable-mpi-thread-multiple)");
  g_node = find_node_ranks();
}

void finalize_mpi() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Finalize();
  g_node = NodeRanks{};
}

namespace {
// The one line an error that ends a program prints: the program, the rank, the error.
void report_error(const char* app, int rank, const std::exception& e) {
  write_stderr_line(detail::concat(app, ": rank ", rank, ": error: ", e.what()));
}
}  // namespace

int run_with_mpi(const char* app, int* argc, char*** argv, const std::function<int()>& body) {
  try {
    init_mpi(argc, argv);
  } catch (const std::exception& e) {
    report_error(app, launcher_world_rank(), e);
    return 1;
  }
  int rc = 1;
  try {
    rc = body();
  } catch (const std::exception& e) {
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    report_error(app, rank, e);
    if (size > 1) {
      MPI_Abort(MPI_COMM_WORLD, 1);
      std::_Exit(1);  // MPI_Abort does not return; never leave this rank behind if it did
    }
  }
  finalize_mpi();
  return rc;
}

int run_without_mpi(const char* app, const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    report_error(app, 0, e);
    return 1;
  }
}

bool started_by_launcher() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "SLURM_STEP_ID"})
    if (std::getenv(var) != nullptr) return true;
  return false;
}

int launcher_local_ranks() {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE", "MPI_LOCALNRANKS"})
    if (const char* v = std::getenv(var)) return std::max(1, std::atoi(v));
  return 1;
}

int launcher_world_rank() {
  for (const char* var : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"})
    if (const char* v = std::getenv(var)) return std::atoi(v);
  // SLURM_PROCID is a task's rank in a job step that srun started. Ranks that an mpirun inside the
  // job started inherit the batch script's SLURM_PROCID (0 on every rank) or their daemon's; Open
  // MPI's ranks were answered above, and outside a step (no SLURM_STEP_ID) it is never trusted.
  const char* procid = std::getenv("SLURM_PROCID");
  return procid && std::getenv("SLURM_STEP_ID") ? std::atoi(procid) : 0;
}

}  // namespace tessera::parallel
