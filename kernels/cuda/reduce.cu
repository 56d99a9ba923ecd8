// Reductions the host reads back, each one CUB call and one device-to-host copy:
// - sums of squares over segments of a flat buffer: cub::DeviceSegmentedReduce::Sum over x seen
//   through a transform iterator that squares each element into double (square_in_double). CUB
//   gives each segment one block, so long segments are cut into pieces of kPiece elements (one
//   block each, the whole GPU busy) whose sums the host adds in order;
// - the logged token statistics: cub::DeviceReduce::Reduce over the rows, each row mapped to
//   (loss, 1, predicted == target), or zeros for a pad target.
// CUB's reductions use no atomics, so both give the same result on every run.
#include <thrust/iterator/counting_iterator.h>
#include <thrust/iterator/transform_iterator.h>

#include "kernels/cuda/launch.cuh"

namespace tessera::kernels::cuda {
namespace {

template <typename T>
struct SquareInDouble {
  __host__ __device__ double operator()(T x) const { return square_in_double(x); }
};

constexpr int64_t kPiece = int64_t{1} << 16;

template <typename T>
std::vector<double> sum_squares_segments_typed(const T* x, const std::vector<int64_t>& bounds) {
  const int64_t segments = static_cast<int64_t>(bounds.size() / 2);
  // The pieces' begins, then their ends (the two offset arrays CUB reads); segment s owns pieces
  // [first_piece[s], first_piece[s + 1]).
  std::vector<int64_t> begins, ends, first_piece(segments + 1, 0);
  for (int64_t s = 0; s < segments; ++s) {
    for (int64_t b = bounds[2 * s]; b < bounds[2 * s + 1]; b += kPiece) {
      begins.push_back(b);
      ends.push_back(std::min(b + kPiece, bounds[2 * s + 1]));
    }
    first_piece[s + 1] = static_cast<int64_t>(begins.size());
  }
  const int64_t pieces = first_piece[segments];
  std::vector<double> out(segments, 0.0);
  if (pieces == 0) return out;
  std::vector<int64_t> offsets(begins);
  offsets.insert(offsets.end(), ends.begin(), ends.end());
  const auto squares = thrust::make_transform_iterator(x, SquareInDouble<T>{});
  size_t temp_bytes = 0;
  CUDA_CHECK(cub::DeviceSegmentedReduce::Sum(nullptr, temp_bytes, squares, static_cast<double*>(nullptr), pieces,
                                             static_cast<const int64_t*>(nullptr),
                                             static_cast<const int64_t*>(nullptr), stream()));
  ScratchLayout layout;
  const size_t offsets_at = layout.add<int64_t>(2 * pieces), sums_at = layout.add<double>(pieces),
               temp_at = layout.add<char>(static_cast<int64_t>(temp_bytes));
  DeviceScratch scratch(layout.bytes());
  const int64_t* offsets_dev = ScratchLayout::at<int64_t>(scratch, offsets_at);
  double* sums_dev = ScratchLayout::at<double>(scratch, sums_at);
  copy_to_device_async(ScratchLayout::at<int64_t>(scratch, offsets_at), offsets.data(),
                       offsets.size() * sizeof(int64_t));
  CUDA_CHECK(cub::DeviceSegmentedReduce::Sum(ScratchLayout::at<char>(scratch, temp_at), temp_bytes, squares, sums_dev,
                                             pieces, offsets_dev, offsets_dev + pieces, stream()));
  std::vector<double> piece_sums(pieces);
  CUDA_CHECK(cudaMemcpyAsync(piece_sums.data(), sums_dev, piece_sums.size() * sizeof(double), cudaMemcpyDeviceToHost,
                             stream()));
  synchronize("sum_squares_segments");
  for (int64_t s = 0; s < segments; ++s)
    for (int64_t p = first_piece[s]; p < first_piece[s + 1]; ++p) out[s] += piece_sums[p];
  return out;
}

// The three token statistics of a set of rows.
struct StatsSum {
  double loss;
  long long tokens;
  long long correct;
};
struct StatsSumOp {
  __host__ __device__ StatsSum operator()(const StatsSum& a, const StatsSum& b) const {
    return StatsSum{a.loss + b.loss, a.tokens + b.tokens, a.correct + b.correct};
  }
};
template <typename T>
struct RowStats {
  const T* row_loss;
  const int32_t* predicted;
  const int32_t* targets;
  int32_t pad_id;
  __host__ __device__ StatsSum operator()(int64_t i) const {
    if (targets[i] == pad_id) return StatsSum{0.0, 0, 0};
    return StatsSum{static_cast<double>(row_loss[i]), 1, predicted[i] == targets[i] ? 1 : 0};
  }
};

template <typename T>
TokenStats token_stats_typed(const T* row_loss, const int32_t* predicted, const int32_t* targets, int32_t pad_id,
                             int64_t n) {
  const auto rows = thrust::make_transform_iterator(thrust::make_counting_iterator<int64_t>(0),
                                                    RowStats<T>{row_loss, predicted, targets, pad_id});
  const StatsSum zero{0.0, 0, 0};
  size_t temp_bytes = 0;
  CUDA_CHECK(cub::DeviceReduce::Reduce(nullptr, temp_bytes, rows, static_cast<StatsSum*>(nullptr), n, StatsSumOp{},
                                       zero, stream()));
  ScratchLayout layout;
  const size_t sum_at = layout.add<StatsSum>(1), temp_at = layout.add<char>(static_cast<int64_t>(temp_bytes));
  DeviceScratch scratch(layout.bytes());
  StatsSum* sum_dev = ScratchLayout::at<StatsSum>(scratch, sum_at);
  CUDA_CHECK(cub::DeviceReduce::Reduce(ScratchLayout::at<char>(scratch, temp_at), temp_bytes, rows, sum_dev, n,
                                       StatsSumOp{}, zero, stream()));
  StatsSum host{};
  CUDA_CHECK(cudaMemcpyAsync(&host, sum_dev, sizeof(StatsSum), cudaMemcpyDeviceToHost, stream()));
  synchronize("token_stats");
  TokenStats stats;
  stats.loss_sum = host.loss;
  stats.tokens = host.tokens;
  stats.correct = host.correct;
  return stats;
}

}  // namespace

std::vector<double> sum_squares_segments(const Tensor& x, const std::vector<int64_t>& bounds) {
  if (bounds.empty() || x.numel() == 0) return std::vector<double>(bounds.size() / 2, 0.0);
  std::vector<double> out;
  TESSERA_DISPATCH_FLOAT(x.dtype(), "sum_squares_segments",
                         out = sum_squares_segments_typed(x.data<scalar_t>(), bounds));
  return out;
}

TokenStats token_stats(const Tensor& row_loss, const Tensor& predicted, const Tensor& targets, int32_t pad_id) {
  const int64_t n = row_loss.numel();
  if (n == 0) return TokenStats{};
  TokenStats stats;
  TESSERA_DISPATCH_FLOAT(row_loss.dtype(), "token_stats",
                         stats = token_stats_typed(row_loss.data<scalar_t>(), predicted.data<int32_t>(),
                                                   targets.data<int32_t>(), pad_id, n));
  return stats;
}

}  // namespace tessera::kernels::cuda
