// The process grid: the one place that knows how ranks are laid out and which groups exist.
//
// World = dp × tp ranks with the tensor rank varying fastest, global = tp_rank + tp * dp_rank,
// so the ranks of a tensor-parallel group are neighbours (and sit inside one node). Each rank
// belongs to one tp group (same dp_rank) and one dp group (same tp_rank).
//
// Host buffers always travel over MPI. With a cuda device the groups also carry device buffers:
// over NCCL (one world communicator, the tp and dp groups split from it) when the build has NCCL,
// else staged through host memory over MPI (HostStagedCommunicator, slow but correct).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "parallel/communicator.h"

namespace tessera::parallel {

class ProcessGrid {
 public:
  // Splits MPI_COMM_WORLD (MPI must be up, see init_mpi) into tp and dp groups whose collectives
  // have a deadline of collective_timeout_s seconds. Throws tessera::Error naming
  // --tensor-parallel and --data-parallel unless tp * dp equals the world size. A tp group that
  // spans nodes is an error on a cuda `device` unless allow_tp_across_nodes, and a warning (from
  // world rank 0) on the CPU. With a cuda `device`, collectives accept this rank's GPU buffers.
  ProcessGrid(int tp, int dp, double collective_timeout_s, Device device = Device::cpu,
              bool allow_tp_across_nodes = false);
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

  // The node that world rank `world_rank` runs on (its host name; see gather_node_names).
  const std::string& node_of(int world_rank) const;

 private:
  ProcessGrid() = default;

  int tp_rank_ = 0, tp_size_ = 1, dp_rank_ = 0, dp_size_ = 1;
  std::vector<std::string> node_of_world_rank_;
  std::unique_ptr<Communicator> tp_, dp_, world_;
};

}  // namespace tessera::parallel
