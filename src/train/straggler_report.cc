#include "train/straggler_report.h"

#include <algorithm>

namespace tessera::train {

std::optional<Straggler> find_straggler(const std::vector<double>& seconds_per_rank, double threshold_percent) {
  if (seconds_per_rank.size() < 2) return std::nullopt;
  std::vector<double> sorted = seconds_per_rank;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  const double median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
  const auto slowest = std::max_element(seconds_per_rank.begin(), seconds_per_rank.end());
  if (median <= 0) return std::nullopt;
  const double percent = 100.0 * (*slowest / median - 1.0);
  if (percent <= threshold_percent) return std::nullopt;
  return Straggler{static_cast<int>(slowest - seconds_per_rank.begin()), *slowest, median, percent};
}

}  // namespace tessera::train
