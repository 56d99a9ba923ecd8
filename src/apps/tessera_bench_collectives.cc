// tessera-bench-collectives: nccl-tests for the MPI communicator. Under mpirun -np N it times
// all_reduce, all_gather and reduce_scatter over growing sizes and prints algorithm bandwidth
// (size / time) and bus bandwidth (algbw scaled by how much of the data each rank must move:
// 2(n-1)/n for all-reduce, (n-1)/n for all-gather and reduce-scatter), next to the single-core
// memcpy bandwidth of this machine, the limit a shared-memory transport is held against.
#include <mpi.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "core/option_values.h"
#include "parallel/mpi_runtime.h"
#include "parallel/process_grid.h"

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
      ("dtype", bound(o.dtype), "element type: f32, f64 or i32")
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
  return true;
}

DType parse_dtype(const std::string& name) {
  for (DType t : {DType::f32, DType::f64, DType::i32})
    if (name == dtype_name(t)) return t;
  TESSERA_FAIL("--dtype ", name, " is not one of f32, f64, i32");
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

void bench(Kind kind, Communicator& comm, const Options& o, DType dtype) {
  const int n = comm.size();
  const size_t esize = dtype_size(dtype);
  const char* name = kind == Kind::all_reduce   ? "all_reduce"
                     : kind == Kind::all_gather ? "all_gather"
                                                : "reduce_scatter";
  const double bus_factor = kind == Kind::all_reduce ? 2.0 * (n - 1) / n : double(n - 1) / n;
  if (comm.rank() == 0) {
    std::printf("\n# %s on %d ranks, op sum; size = the largest buffer (all ranks' data)\n", name, n);
    std::printf("%14s %12s %6s %12s %12s %12s\n", "size(B)", "count", "type", "time(us)",
                "algbw(GB/s)", "busbw(GB/s)");
  }
  for (size_t bytes : sizes(o)) {
    // all_gather and reduce_scatter need the count to split evenly across ranks.
    size_t count = std::max<size_t>(bytes / esize, 1);
    if (kind != Kind::all_reduce) count = std::max<size_t>(count / n, 1) * n;
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
    for (int i = 0; i < o.warmup; ++i) once();
    comm.barrier();
    double t = now_s();
    for (int i = 0; i < o.iters; ++i) once();
    double seconds = (now_s() - t) / o.iters;
    comm.all_reduce(&seconds, 1, DType::f64, ReduceOp::max);  // the slowest rank sets the pace
    const double algbw = bytes / seconds / 1e9;
    if (comm.rank() == 0)
      std::printf("%14zu %12zu %6s %12.1f %12.3f %12.3f\n", bytes, count,
                  std::string(dtype_name(dtype)).c_str(), seconds * 1e6, algbw, algbw * bus_factor);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  DType dtype = DType::f32;
  try {
    if (!parse(argc, argv, options)) return 0;
    dtype = parse_dtype(options.dtype);
  } catch (const std::exception& e) {
    write_stderr_line(std::string("tessera-bench-collectives: error: ") + e.what());
    return 2;
  }
  return run_with_mpi("tessera-bench-collectives", &argc, &argv, [&] {
    int world_size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    ProcessGrid grid(/*tp=*/1, /*dp=*/world_size, options.timeout_s);
    const double memcpy_bw = measure_memcpy_quietly(grid.world_rank());
    if (grid.world_rank() == 0)
      std::printf("# memcpy, 1 core, 256 MB: %.2f GB/s copied (the limit for busbw of "
                  "shared-memory transfers)\n", memcpy_bw);
    for (Kind kind : {Kind::all_reduce, Kind::all_gather, Kind::reduce_scatter})
      bench(kind, grid.world(), options, dtype);
    return 0;
  });
}
