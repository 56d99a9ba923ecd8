// The process grid: the one place that knows how ranks are laid out and which groups exist.
//
// World = dp × tp ranks with the tensor rank varying fastest, global = tp_rank + tp * dp_rank,
// so the ranks of a tensor-parallel group are neighbours (and sit inside one node). Each rank
// belongs to one tp group (same dp_rank) and one dp group (same tp_rank).
#pragma once

#include <memory>

#include "parallel/communicator.h"

namespace tessera::parallel {

class ProcessGrid {
 public:
  // Splits MPI_COMM_WORLD (MPI must be up, see init_mpi) into tp and dp groups whose collectives
  // have a deadline of collective_timeout_s seconds. Throws tessera::Error naming
  // --tensor-parallel and --data-parallel unless tp * dp equals the world size. With a cuda
  // `device`, collectives accept this rank's GPU buffers (staged through host memory).
  ProcessGrid(int tp, int dp, double collective_timeout_s, Device device = Device::cpu);
  // A single process without MPI: every group is a SelfCommunicator.
  static ProcessGrid single();

  ProcessGrid(ProcessGrid&&) noexcept;
  ProcessGrid& operator=(ProcessGrid&&) noexcept;
  ~ProcessGrid();

  int world_rank() const { return tp_rank_ + tp_size_ * dp_rank_; }
  int world_size() const { return tp_size_ * dp_size_; }
  int tp_rank() const { return tp_rank_; }
  int tp_size() const { return tp_size_; }
  int dp_rank() const { return dp_rank_; }
  int dp_size() const { return dp_size_; }

  Communicator& tp() const { return *tp_; }
  Communicator& dp() const { return *dp_; }
  Communicator& world() const { return *world_; }

 private:
  ProcessGrid() = default;

  int tp_rank_ = 0, tp_size_ = 1, dp_rank_ = 0, dp_size_ = 1;
  std::unique_ptr<Communicator> tp_, dp_, world_;
};

}  // namespace tessera::parallel
