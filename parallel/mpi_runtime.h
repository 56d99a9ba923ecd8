// Starting and stopping MPI. Tessera runs collectives from per-communicator progress threads,
// so it needs MPI_THREAD_MULTIPLE; init_mpi asks for it and fails clearly when MPI cannot give it.
#pragma once

#include <functional>

namespace tessera::parallel {

// Calls MPI_Init_thread(MPI_THREAD_MULTIPLE) (or, if MPI is already up, checks the level it was
// started with). Throws tessera::Error when the MPI library does not provide the level.
void init_mpi(int* argc, char*** argv);

// MPI_Finalize, once; destroy every MpiCommunicator (and ProcessGrid) before calling it.
void finalize_mpi();

// This process's world rank as the launcher (mpirun, srun) announces it in the environment, for
// use before MPI is up (e.g. to let only rank 0 print option errors); 0 when not launched so.
int launcher_world_rank();

// The number of ranks on this node as the launcher announces it (OMPI_COMM_WORLD_LOCAL_SIZE,
// SLURM_NTASKS_PER_NODE, MPI_LOCALNRANKS), at least 1; usable before MPI is up.
int launcher_local_ranks();

// main() of every MPI program: starts MPI, runs `body`, finalizes. An exception escaping `body`
// on any rank is printed at once, one line naming `app` and the rank, before anything waits on
// other ranks; then, when the job has more than one rank, MPI_Abort ends every rank now instead of
// leaving the others in a collective until the deadline ("timed out in all_reduce" would hide
// the cause). Returns body's exit code, or 1 after an error in a single-process run.
int run_with_mpi(const char* app, int* argc, char*** argv, const std::function<int()>& body);

// RAII form for main(): init_mpi in the constructor, finalize_mpi in the destructor.
class MpiRuntime {
 public:
  MpiRuntime(int* argc, char*** argv) { init_mpi(argc, argv); }
  ~MpiRuntime() { finalize_mpi(); }
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;
};

}  // namespace tessera::parallel
