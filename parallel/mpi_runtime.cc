#include "parallel/mpi_runtime.h"

#include <algorithm>
#include <cstdlib>

#include <mpi.h>

#include "core/error.h"
#include "core/log.h"

namespace tessera::parallel {
namespace {

const char* thread_level_name(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE: return "MPI_THREAD_SINGLE";
    case MPI_THREAD_FUNNELED: return "MPI_THREAD_FUNNELED";
    case MPI_THREAD_SERIALIZED: return "MPI_THREAD_SERIALIZED";
    case MPI_THREAD_MULTIPLE: return "MPI_THREAD_MULTIPLE";
  }
  return "an unknown thread level";
}

}  // namespace

void init_mpi(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  int provided = MPI_THREAD_SINGLE;
  if (initialized) {
    MPI_Query_thread(&provided);
  } else {
    TESSERA_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) == MPI_SUCCESS,
                  "MPI_Init_thread failed");
  }
  TESSERA_CHECK(provided == MPI_THREAD_MULTIPLE,
                "tessera needs MPI_THREAD_MULTIPLE (collectives run on progress threads) but the "
                "MPI library provides only ", thread_level_name(provided),
                "; use an MPI build with thread support (Open MPI: --enable-mpi-thread-multiple)");
}

void finalize_mpi() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Finalize();
}

int run_with_mpi(const char* app, int* argc, char*** argv, const std::function<int()>& body) {
  try {
    init_mpi(argc, argv);
  } catch (const std::exception& e) {
    write_stderr_line(detail::concat(app, ": rank ", launcher_world_rank(), ": error: ", e.what()));
    return 1;
  }
  int rc = 1;
  try {
    rc = body();
  } catch (const std::exception& e) {
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    write_stderr_line(detail::concat(app, ": rank ", rank, ": error: ", e.what()));
    if (size > 1) {
      MPI_Abort(MPI_COMM_WORLD, 1);
      std::_Exit(1);  // MPI_Abort does not return; never leave this rank behind if it did
    }
  }
  finalize_mpi();
  return rc;
}

int launcher_local_ranks() {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE", "MPI_LOCALNRANKS"})
    if (const char* v = std::getenv(var)) return std::max(1, std::atoi(v));
  return 1;
}

int launcher_world_rank() {
  for (const char* var : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"})
    if (const char* v = std::getenv(var)) return std::atoi(v);
  return 0;
}

}  // namespace tessera::parallel
