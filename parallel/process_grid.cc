#include "parallel/process_grid.h"

#include <mpi.h>
#include <unistd.h>

#include <climits>

#include "core/error.h"
#include "core/log.h"
#include "parallel/mpi_communicator.h"
#include "parallel/process_topology.h"
#include "parallel/self_communicator.h"
#if defined(TESSERA_WITH_NCCL)
#include "parallel/cuda/nccl_session.h"
#else
#include "parallel/host_staged_communicator.h"
#endif

namespace tessera::parallel {
namespace {

// MPI_Comm_split(world, color, key): ranks with the same color form one group, ordered by key.
std::unique_ptr<Communicator> split_world(int color, int key, const char* name, double timeout_s) {
  MPI_Comm group = MPI_COMM_NULL;
  TESSERA_CHECK(MPI_Comm_split(MPI_COMM_WORLD, color, key, &group) == MPI_SUCCESS,
                "MPI_Comm_split for the ", name, " group failed");
  auto comm = std::make_unique<MpiCommunicator>(group, name, timeout_s);
  MPI_Comm_free(&group);  // the communicator keeps its own duplicate
  return comm;
}

std::string host_name() {
  char host[HOST_NAME_MAX + 1] = {};
  return gethostname(host, sizeof host - 1) == 0 ? std::string(host) : std::string("unknown-host");
}

}  // namespace

ProcessGrid::ProcessGrid(int tp, int dp, double collective_timeout_s, Device device, bool allow_tp_across_nodes) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  TESSERA_CHECK(initialized, "ProcessGrid(", tp, ", ", dp,
                ") needs MPI: call tessera::parallel::init_mpi first, or use ProcessGrid::single()");
  int world_rank = 0, world_size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  TESSERA_CHECK(tp >= 1 && dp >= 1 && tp * dp == world_size, "--tensor-parallel ", tp,
                " x --data-parallel ", dp, " = ", tp * dp, " ranks, but the MPI world has ",
                world_size, " ranks; choose them so that their product is ", world_size);

  tp_size_ = tp;
  dp_size_ = dp;
  tp_rank_ = world_rank % tp;
  dp_rank_ = world_rank / tp;
  world_ = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, "world", collective_timeout_s);

  // Every rank gathers the same table, so every rank reaches the same verdict.
  node_of_world_rank_ = gather_node_names(*world_);
  const std::string spanning =
      check_tp_groups_within_nodes(tp, dp, node_of_world_rank_, allow_tp_across_nodes || device.is_cpu());
  if (!spanning.empty() && world_rank == 0)
    TESSERA_LOG_WARN(spanning, allow_tp_across_nodes ? "; running it anyway, as --allow-tp-across-nodes asks"
                                                     : "; the CPU backend runs it anyway");

  tp_ = split_world(/*color=*/dp_rank_, /*key=*/tp_rank_, "tp", collective_timeout_s);
  dp_ = split_world(/*color=*/tp_rank_, /*key=*/dp_rank_, "dp", collective_timeout_s);
  if (!device.is_cuda()) return;
#if defined(TESSERA_WITH_NCCL)
  // The NCCL groups are split with the same colors and keys as the MPI ones, so group rank r is
  // the same process in both, and each keeps its MPI twin for host buffers.
  NcclGroups nccl = make_nccl_groups(std::move(world_), {std::move(tp_), /*color=*/dp_rank_, /*key=*/tp_rank_},
                                     {std::move(dp_), /*color=*/tp_rank_, /*key=*/dp_rank_}, collective_timeout_s);
  world_ = std::move(nccl.world);
  tp_ = std::move(nccl.tp);
  dp_ = std::move(nccl.dp);
#else
  if (world_size > 1 && world_rank == 0)
    TESSERA_LOG_WARN("this build has no NCCL (install libnccl-dev and rebuild): GPU collectives are staged through "
                     "host memory over MPI, which is slow and does not overlap backward");
  for (std::unique_ptr<Communicator>* c : {&world_, &tp_, &dp_})
    *c = std::make_unique<HostStagedCommunicator>(std::move(*c), device);
#endif
}

ProcessGrid ProcessGrid::single() {
  ProcessGrid grid;
  grid.node_of_world_rank_ = {host_name()};
  grid.world_ = std::make_unique<SelfCommunicator>("world");
  grid.tp_ = std::make_unique<SelfCommunicator>("tp");
  grid.dp_ = std::make_unique<SelfCommunicator>("dp");
  return grid;
}

const std::string& ProcessGrid::node_of(int world_rank) const {
  TESSERA_CHECK(world_rank >= 0 && world_rank < world_size(), "node_of(", world_rank, "): the world has ",
                world_size(), " ranks");
  return node_of_world_rank_[static_cast<size_t>(world_rank)];
}

ProcessGrid::ProcessGrid(ProcessGrid&&) noexcept = default;
ProcessGrid& ProcessGrid::operator=(ProcessGrid&&) noexcept = default;
ProcessGrid::~ProcessGrid() = default;

}  // namespace tessera::parallel
