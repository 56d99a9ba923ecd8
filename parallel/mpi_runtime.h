// Starting and stopping MPI. Tessera runs collectives from per-communicator progress threads,
// so it needs MPI_THREAD_MULTIPLE; init_mpi asks for it and fails clearly when MPI cannot give it.
#pragma once

namespace tessera::parallel {

// Calls MPI_Init_thread(MPI_THREAD_MULTIPLE) (or, if MPI is already up, checks the level it was
// started with). Throws tessera::Error when the MPI library does not provide the level.
void init_mpi(int* argc, char*** argv);

// MPI_Finalize, once; destroy every MpiCommunicator (and ProcessGrid) before calling it.
void finalize_mpi();

// This process's world rank as the launcher (mpirun, srun) announces it in the environment, for
// use before MPI is up (e.g. to let only rank 0 print option errors); 0 when not launched so.
int launcher_world_rank();

// RAII form for main(): init_mpi in the constructor, finalize_mpi in the destructor.
class MpiRuntime {
 public:
  MpiRuntime(int* argc, char*** argv) { init_mpi(argc, argv); }
  ~MpiRuntime() { finalize_mpi(); }
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;
};

}  // namespace tessera::parallel
