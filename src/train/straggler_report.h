// Which rank holds the others back. In a synchronous step every rank waits for the slowest at the
// next collective, so one slow node (a throttled GPU, a noisy neighbour, a bad link) sets the
// pace of the whole job while its own log looks normal. Every --straggler-every steps the ranks
// gather their mean step time, excluding the time spent waiting in collectives (which is where
// the fast ranks wait for the slow one), and the slowest is named when it is more than
// --straggler-threshold percent slower than the median.
#pragma once

#include <optional>
#include <vector>

namespace tessera::train {

struct Straggler {
  int rank = 0;
  double seconds = 0;         // its time
  double median_seconds = 0;  // the median over all ranks
  double percent_slower = 0;  // 100 (seconds / median - 1)
};

// The slowest of `seconds_per_rank` (indexed by rank) when it exceeds the median by more than
// `threshold_percent`, else nullopt. The median of an even count is the mean of the middle two.
std::optional<Straggler> find_straggler(const std::vector<double>& seconds_per_rank, double threshold_percent);

}  // namespace tessera::train
