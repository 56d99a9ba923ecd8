// Where every rank of a job runs, gathered once at start-up: world rank, host, local rank on the
// host, tensor- and data-parallel rank, threads and the CPUs it may run on. World rank 0 prints it
// as a table and saves it in the out-dir (layout.txt), so an operator sees which ranks share a
// host, which tensor-parallel group spans hosts, and which node to drain when a rank is named.
#pragma once

#include <string>
#include <vector>

#include "parallel/process_grid.h"

namespace tessera::train {

struct RankPlace {
  int world_rank = 0, local_rank = 0, tp_rank = 0, dp_rank = 0, threads = 0;
  std::string host;  // gethostname
  std::string cpus;  // the affinity mask as a list, e.g. "0-3,8"
};

// Every rank's place, in world-rank order, on every rank (one all-gather over the world).
std::vector<RankPlace> gather_rank_layout(const parallel::ProcessGrid& grid, int threads);

// The aligned text table, one line per rank under a header line.
std::string rank_layout_table(const std::vector<RankPlace>& places);

// The CPUs in `mask` as a list of ranges ("0-3,8"); exposed for tests.
std::string cpu_list(const std::vector<int>& cpus);

}  // namespace tessera::train
