#include "parallel/process_grid.h"

#include <mpi.h>

#include "core/error.h"
#include "parallel/host_staged_communicator.h"
#include "parallel/mpi_communicator.h"
#include "parallel/self_communicator.h"

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

}  // namespace

ProcessGrid::ProcessGrid(int tp, int dp, double collective_timeout_s, Device device) {
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
  tp_ = split_world(/*color=*/dp_rank_, /*key=*/tp_rank_, "tp", collective_timeout_s);
  dp_ = split_world(/*color=*/tp_rank_, /*key=*/dp_rank_, "dp", collective_timeout_s);
  if (device.is_cuda())
    for (std::unique_ptr<Communicator>* c : {&world_, &tp_, &dp_})
      *c = std::make_unique<HostStagedCommunicator>(std::move(*c), device);
}

ProcessGrid ProcessGrid::single() {
  ProcessGrid grid;
  grid.world_ = std::make_unique<SelfCommunicator>("world");
  grid.tp_ = std::make_unique<SelfCommunicator>("tp");
  grid.dp_ = std::make_unique<SelfCommunicator>("dp");
  return grid;
}

ProcessGrid::ProcessGrid(ProcessGrid&&) noexcept = default;
ProcessGrid& ProcessGrid::operator=(ProcessGrid&&) noexcept = default;
ProcessGrid::~ProcessGrid() = default;

}  // namespace tessera::parallel
