// tessera-bench-collectives: nccl-tests for Tessera's communicators. Under mpirun -np N it times
// all_reduce, all_gather and reduce_scatter over growing sizes and prints algorithm bandwidth
// (size / time) and bus bandwidth (algbw scaled by how much of the data each rank must move:
// 2(n-1)/n for all-reduce, (n-1)/n for all-gather and reduce-scatter; nccl-tests'
// doc/PERFORMANCE.md derives the factors).
// --device cpu (the default): the MPI communicator on host buffers, next to the single-core
// memcpy bandwidth of this machine, the limit a shared-memory transport is held against.
// --device cuda: the NCCL communicator on device buffers, one rank per GPU, as nccl-tests prints
// it: out-of-place and in-place time, algbw, busbw and #wrong, the elements that differ from the
// exact result computed from known fill values (rank r's element i is ((r + i) mod 4) + 1, so
// every partial sum is a small integer, exact in every type: in bf16 up to 64 ranks).
#include <mpi.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <climits>
#include <cstdint>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <thread>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "core/log.h"
#include "core/option_values.h"
#include "core/tensor.h"
#include "parallel/compute_device.h"
#include "parallel/mpi_communicator.h"
#include "parallel/mpi_runtime.h"
#include "parallel/process_grid.h"
#if defined(TESSERA_WITH_CUDA)
#include "kernels/cuda/runtime.h"
#endif

namespace po = boost::program_options;
using namespace tessera;
using namespace tessera::parallel;

namespace {

struct Options {
  size_t min_bytes = 8;
  size_t max_bytes = size_t{256} << 20;
  int iters = 10;
  int warmup = 2;
  std::string dtype = "f32";
  std::string device = "cpu";
  double timeout_s = 600.0;
};

bool parse(int argc, char** argv, Options& o) {
  po::options_description desc("tessera-bench-collectives options");
  desc.add_options()
      ("help,h", "print this help")
      ("min-bytes", bound(o.min_bytes), "smallest message")
      ("max-bytes", bound(o.max_bytes),
       "largest message (sizes grow 4x from --min-bytes)")
      ("iters", bound(o.iters), "timed iterations per size")
      ("warmup", bound(o.warmup), "untimed iterations per size")
      ("dtype", bound(o.dtype), "element type: f32, f64, i32, or (--device cuda) bf16")
      ("device", bound(o.device), "cpu: the MPI communicator on host buffers; cuda: NCCL on one GPU per rank")
      ("collective-timeout", bound(o.timeout_s),
       "deadline of every collective, in seconds");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, desc), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return false;
  }
  TESSERA_CHECK(o.iters >= 1 && o.warmup >= 0, "--iters must be >= 1 and --warmup >= 0");
  TESSERA_CHECK(o.min_bytes >= 1 && o.min_bytes <= o.max_bytes,
                "--min-bytes must be between 1 and --max-bytes");
  parse_device_kind(o.device);
  return true;
}

DType parse_dtype(const std::string& name, bool cuda) {
  for (DType t : {DType::f32, DType::f64, DType::i32, DType::bf16})
    if (name == dtype_name(t) && (t != DType::bf16 || cuda)) return t;
  TESSERA_FAIL("--dtype ", name, " is not one of f32, f64, i32", cuda ? ", bf16" : " (bf16 needs --device cuda)");
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Best-of-5 single-thread memcpy of 256 MB, in GB/s of bytes copied.
double memcpy_gbps() {
  const size_t bytes = size_t{256} << 20;
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    double t = now_s();
    std::memcpy(dst.data(), src.data(), bytes);
    best = std::min(best, now_s() - t);
  }
  return bytes / best / 1e9;
}

// Rank 0 measures memcpy while the other ranks wait without spinning, so they do not compete
// with it for cores and memory bandwidth.
double measure_memcpy_quietly(int world_rank) {
  double gbps = world_rank == 0 ? memcpy_gbps() : 0.0;
  MPI_Request req;
  MPI_Ibarrier(MPI_COMM_WORLD, &req);
  for (int done = 0; !done;) {
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return gbps;
}

// Sizes from min to max growing 4x, plus max itself when the progression skips it.
std::vector<size_t> sizes(const Options& o) {
  std::vector<size_t> out;
  for (size_t s = o.min_bytes; s <= o.max_bytes; s *= 4) out.push_back(s);
  if (out.back() != o.max_bytes) out.push_back(o.max_bytes);
  return out;
}

enum class Kind { all_reduce, all_gather, reduce_scatter };

const char* kind_name(Kind kind) {
  return kind == Kind::all_reduce ? "all_reduce" : kind == Kind::all_gather ? "all_gather" : "reduce_scatter";
}

// How much of the data each rank must move, relative to the buffer size (nccl-tests' busbw).
double bus_factor(Kind kind, int n) { return kind == Kind::all_reduce ? 2.0 * (n - 1) / n : double(n - 1) / n; }

// Elements of the largest buffer for `bytes`: all_gather and reduce_scatter need a count that
// splits evenly across the ranks.
size_t element_count(Kind kind, size_t bytes, size_t esize, int n) {
  size_t count = std::max<size_t>(bytes / esize, 1);
  if (kind != Kind::all_reduce) count = std::max<size_t>(count / n, 1) * n;
  return count;
}

// Seconds per call of `once` on the slowest rank of `comm`: o.warmup calls, a barrier, then the
// mean of o.iters timed calls.
template <typename Call>
double seconds_per_call(const Options& o, Communicator& comm, Call once) {
  for (int i = 0; i < o.warmup; ++i) once();
  comm.barrier();
  const double t = now_s();
  for (int i = 0; i < o.iters; ++i) once();
  double seconds = (now_s() - t) / o.iters;
  comm.all_reduce(&seconds, 1, DType::f64, ReduceOp::max);  // the slowest rank sets the pace
  return seconds;
}

// The same collective as one plain MPI call on MPI_COMM_WORLD (all-reduce in place, as Tessera's),
// timed like Tessera's: the bar its communicator is held to. Seconds per call on the slowest rank,
// or a negative number when MPI has no such call for the type (a bf16 sum).
double plain_mpi_seconds(Kind kind, std::vector<char>& big, std::vector<char>& part, size_t count, DType dtype,
                         Communicator& comm, const Options& o) {
  const int n = comm.size();
  if (dtype == DType::bf16 && kind != Kind::all_gather) return -1;
  const MPI_Datatype type = mpi_copy_type(dtype, "tessera-bench-collectives");
  const int block = static_cast<int>(count / n);
  auto once = [&] {
    switch (kind) {
      case Kind::all_reduce:
        MPI_Allreduce(MPI_IN_PLACE, big.data(), static_cast<int>(count), type, MPI_SUM, MPI_COMM_WORLD);
        break;
      case Kind::all_gather: MPI_Allgather(part.data(), block, type, big.data(), block, type, MPI_COMM_WORLD); break;
      case Kind::reduce_scatter:
        MPI_Reduce_scatter_block(big.data(), part.data(), block, type, MPI_SUM, MPI_COMM_WORLD);
        break;
    }
  };
  return seconds_per_call(o, comm, once);
}

void bench_host(Kind kind, Communicator& comm, const Options& o, DType dtype) {
  const int n = comm.size();
  const size_t esize = dtype_size(dtype);
  const char* name = kind_name(kind);
  if (comm.rank() == 0) {
    std::printf("\n# %s on %d ranks, op sum; size = the largest buffer (all ranks' data); mpi = the plain\n"
                "# MPI call on the same buffers in the same run; time ratio = Tessera's time / MPI's\n",
                name, n);
    std::printf("%14s %12s %6s %12s %12s %12s %12s %12s %11s\n", "size(B)", "count", "type", "time(us)",
                "algbw(GB/s)", "busbw(GB/s)", "mpi(us)", "mpi busbw", "time ratio");
  }
  for (size_t bytes : sizes(o)) {
    const size_t count = element_count(kind, bytes, esize, n);
    bytes = count * esize;
    std::vector<char> big(bytes, 0);
    std::vector<char> part(kind == Kind::all_reduce ? 0 : bytes / n, 0);
    auto once = [&] {
      switch (kind) {
        case Kind::all_reduce: comm.all_reduce(big.data(), count, dtype, ReduceOp::sum); break;
        case Kind::all_gather: comm.all_gather(part.data(), big.data(), count / n, dtype); break;
        case Kind::reduce_scatter:
          comm.reduce_scatter(big.data(), part.data(), count / n, dtype, ReduceOp::sum);
          break;
      }
    };
    const double seconds = seconds_per_call(o, comm, once);
    const double mpi_seconds = plain_mpi_seconds(kind, big, part, count, dtype, comm, o);
    const double algbw = bytes / seconds / 1e9;
    if (comm.rank() != 0) continue;
    std::printf("%14zu %12zu %6s %12.1f %12.3f %12.3f", bytes, count, std::string(dtype_name(dtype)).c_str(),
                seconds * 1e6, algbw, algbw * bus_factor(kind, n));
    if (mpi_seconds > 0)
      std::printf(" %12.1f %12.3f %10.2fx\n", mpi_seconds * 1e6, bytes / mpi_seconds / 1e9 * bus_factor(kind, n),
                  seconds / mpi_seconds);
    else
      std::printf(" %12s %12s %11s\n", "n/a", "n/a", "n/a");
  }
}


// ---- --device cuda: nccl-tests' table ------------------------------------------------------

// Rank r's input element i, and the exact sum of element i over n ranks (each run of 4 ranks
// adds 1 + 2 + 3 + 4).
double fill_value(int rank, size_t i) { return static_cast<double>((static_cast<size_t>(rank) + i) % 4 + 1); }
double sum_value(int n, size_t i) {
  double sum = 10.0 * (n / 4);
  for (int r = 0; r < n % 4; ++r) sum += fill_value(r, i);
  return sum;
}
constexpr double kSentinel = -1;  // fills outputs before a checked run, so an unwritten element shows

void put(std::vector<char>& host, DType dtype, size_t i, double v) {
  char* p = host.data() + i * dtype_size(dtype);
  switch (dtype) {
    case DType::f32: { const float x = static_cast<float>(v); std::memcpy(p, &x, sizeof x); break; }
    case DType::f64: std::memcpy(p, &v, sizeof v); break;
    case DType::i32: { const int32_t x = static_cast<int32_t>(v); std::memcpy(p, &x, sizeof x); break; }
    case DType::bf16: { const uint16_t x = float_to_bf16(static_cast<float>(v)); std::memcpy(p, &x, sizeof x); break; }
  }
}

double get(const std::vector<char>& host, DType dtype, size_t i) {
  const char* p = host.data() + i * dtype_size(dtype);
  switch (dtype) {
    case DType::f32: { float x; std::memcpy(&x, p, sizeof x); return x; }
    case DType::f64: { double x; std::memcpy(&x, p, sizeof x); return x; }
    case DType::i32: { int32_t x; std::memcpy(&x, p, sizeof x); return x; }
    case DType::bf16: { uint16_t x; std::memcpy(&x, p, sizeof x); return bf16_to_float(x); }
  }
  return 0;
}

// A device allocation for the whole run, with host-side upload and download (stream-ordered; a
// download waits for the collectives queued before it).
class DeviceBuffer {
 public:
  DeviceBuffer(Device device, size_t bytes) : device_(device), ptr_(allocator_for(device).allocate(bytes)) {}
  ~DeviceBuffer() { allocator_for(device_).deallocate(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  char* data() const { return static_cast<char*>(ptr_); }
  void upload(size_t offset, const std::vector<char>& host) const {
    allocator_for(device_).copy(data() + offset, device_, host.data(), Device::cpu, host.size());
  }
  std::vector<char> download(size_t offset, size_t bytes) const {
    std::vector<char> host(bytes);
    allocator_for(device_).copy(host.data(), Device::cpu, data() + offset, device_, bytes);
    return host;
  }

 private:
  Device device_;
  void* ptr_;
};

void wait_for_device() {
#if defined(TESSERA_WITH_CUDA)
  kernels::cuda::synchronize("the timed collectives");
#endif
}

struct Measured {
  bool ran = false;
  double seconds = 0;  // per collective, the slowest rank's
  int32_t wrong = 0;   // over all ranks
};

// One (collective, size, placement): a checked run from known values, then the timed runs.
// `big` holds the all-ranks buffer (count elements), `part` one rank's block.
Measured measure(Kind kind, bool in_place, Communicator& comm, const DeviceBuffer& big, const DeviceBuffer& part,
                 size_t count, DType dtype, const Options& o) {
  Measured m;
  if (kind == Kind::all_reduce && !in_place) return m;  // the Communicator's all_reduce is in place
  m.ran = true;
  const int n = comm.size(), rank = comm.rank();
  const size_t esize = dtype_size(dtype), block = kind == Kind::all_reduce ? count : count / n;
  const size_t own = static_cast<size_t>(rank) * block * esize;  // byte offset of this rank's block in big
  auto filled = [&](size_t elements, auto value) {
    std::vector<char> host(elements * esize);
    for (size_t i = 0; i < elements; ++i) put(host, dtype, i, value(i));
    return host;
  };
  const auto sentinel = [](size_t) { return kSentinel; };
  const auto mine = [&](size_t i) { return fill_value(rank, i); };
  auto once = [&] {
    switch (kind) {
      case Kind::all_reduce: comm.all_reduce(big.data(), count, dtype, ReduceOp::sum); break;
      case Kind::all_gather:
        comm.all_gather(in_place ? big.data() + own : part.data(), big.data(), block, dtype);
        break;
      case Kind::reduce_scatter:
        comm.reduce_scatter(big.data(), in_place ? big.data() + own : part.data(), block, dtype, ReduceOp::sum);
        break;
    }
  };

  int64_t wrong = 0;
  auto compare = [&](const std::vector<char>& got, auto want) {
    for (size_t i = 0; i < got.size() / esize; ++i) wrong += get(got, dtype, i) != want(i);
  };
  switch (kind) {
    case Kind::all_reduce:
      big.upload(0, filled(count, mine));
      once();
      compare(big.download(0, count * esize), [&](size_t i) { return sum_value(n, i); });
      break;
    case Kind::all_gather:
      big.upload(0, filled(count, sentinel));
      (in_place ? big : part).upload(in_place ? own : 0, filled(block, mine));
      once();
      compare(big.download(0, count * esize), [&](size_t i) { return fill_value(static_cast<int>(i / block), i % block); });
      break;
    case Kind::reduce_scatter:
      big.upload(0, filled(count, mine));
      if (!in_place) part.upload(0, filled(block, sentinel));
      once();
      compare(in_place ? big.download(own, block * esize) : part.download(0, block * esize),
              [&](size_t i) { return sum_value(n, static_cast<size_t>(rank) * block + i); });
      break;
  }
  m.wrong = static_cast<int32_t>(std::min<int64_t>(wrong, INT32_MAX / n));
  comm.all_reduce(&m.wrong, 1, DType::i32, ReduceOp::sum);

  for (int i = 0; i < o.warmup; ++i) once();
  comm.barrier();
  const double t = now_s();
  for (int i = 0; i < o.iters; ++i) once();
  wait_for_device();
  m.seconds = (now_s() - t) / o.iters;
  comm.all_reduce(&m.seconds, 1, DType::f64, ReduceOp::max);  // the slowest rank sets the pace
  return m;
}

// Prints one collective's table; returns the elements that came out wrong and adds the in-place
// bus bandwidths to `busbw` (for the average).
int64_t bench_device(Kind kind, Communicator& comm, Device device, const Options& o, DType dtype,
                     std::vector<double>& busbw) {
  const int n = comm.size();
  const size_t esize = dtype_size(dtype);
  const size_t max_count = element_count(kind, o.max_bytes, esize, n);
  const DeviceBuffer big(device, max_count * esize), part(device, (max_count / n + 1) * esize);
  const bool root = comm.rank() == 0;
  if (root) {
    std::printf("\n# %s on %d ranks (one GPU each) over NCCL; size = the largest buffer (all ranks' data)\n",
                kind_name(kind), n);
    std::printf("# %75s %37s\n", "out-of-place", "in-place");
    std::printf("%14s %12s %5s %6s %10s %8s %8s %7s %10s %8s %8s %7s\n", "size(B)", "count", "type", "redop",
                "time(us)", "algbw", "busbw", "#wrong", "time(us)", "algbw", "busbw", "#wrong");
  }
  int64_t wrong = 0;
  for (size_t bytes : sizes(o)) {
    const size_t count = element_count(kind, bytes, esize, n);
    bytes = count * esize;
    char cols[128];
    std::snprintf(cols, sizeof cols, "%14zu %12zu %5s %6s", bytes, count, std::string(dtype_name(dtype)).c_str(),
                  kind == Kind::all_gather ? "none" : "sum");
    std::string row = cols;
    for (bool in_place : {false, true}) {
      const Measured m = measure(kind, in_place, comm, big, part, count, dtype, o);
      if (!m.ran) {
        std::snprintf(cols, sizeof cols, " %10s %8s %8s %7s", "n/a", "n/a", "n/a", "n/a");
      } else {
        const double algbw = bytes / m.seconds / 1e9;
        std::snprintf(cols, sizeof cols, " %10.1f %8.2f %8.2f %7d", m.seconds * 1e6, algbw,
                      algbw * bus_factor(kind, n), m.wrong);
        wrong += m.wrong;
        if (in_place) busbw.push_back(algbw * bus_factor(kind, n));
      }
      row += cols;
    }
    if (root) std::printf("%s\n", row.c_str());
  }
  return wrong;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  DType dtype = DType::f32;
  try {
    if (!parse(argc, argv, options)) return 0;
    dtype = parse_dtype(options.dtype, parse_device_kind(options.device) == DeviceKind::cuda);
  } catch (const std::exception& e) {
    write_stderr_line(std::string("tessera-bench-collectives: error: ") + e.what());
    return 2;
  }
  return run_with_mpi("tessera-bench-collectives", &argc, &argv, [&] {
    int world_size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    const Device device = select_compute_device(options.device);
    ProcessGrid grid(/*tp=*/1, /*dp=*/world_size, options.timeout_s, device);
    const std::initializer_list<Kind> kinds = {Kind::all_reduce, Kind::all_gather, Kind::reduce_scatter};
    if (device.is_cpu()) {
      const double memcpy_bw = measure_memcpy_quietly(grid.world_rank());
      if (grid.world_rank() == 0)
        std::printf("# memcpy, 1 core, 256 MB: %.2f GB/s copied (the limit for busbw of "
                    "shared-memory transfers)\n", memcpy_bw);
      for (Kind kind : kinds) bench_host(kind, grid.world(), options, dtype);
      return 0;
    }
    std::vector<double> busbw;
    int64_t wrong = 0;
    for (Kind kind : kinds) wrong += bench_device(kind, grid.world(), device, options, dtype, busbw);
    if (grid.world_rank() == 0) {
      double mean = 0;
      for (double b : busbw) mean += b / static_cast<double>(busbw.size());
      std::printf("\n# #wrong: %lld elements differ from the exact result%s\n", static_cast<long long>(wrong),
                  wrong == 0 ? " (every result exact)" : " (FAILED)");
      std::printf("# Avg bus bandwidth (in place, every size): %.3f GB/s\n", mean);
    }
    return wrong == 0 ? 0 : 1;
  });
}
