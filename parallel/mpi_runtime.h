// Starting and stopping MPI. Tessera runs collectives from per-communicator progress threads,
// so it needs MPI_THREAD_MULTIPLE; init_mpi asks for it and fails clearly when MPI cannot give it.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace tessera::parallel {

// Calls MPI_Init_thread(MPI_THREAD_MULTIPLE) (or, if MPI is already up, checks the level it was
// started with), then finds this rank's node (node_ranks; collective over MPI_COMM_WORLD). Throws
// tessera::Error when the MPI library does not provide the level.
void init_mpi(int* argc, char*** argv);

// MPI_Finalize, once; destroy every MpiCommunicator (and ProcessGrid) before calling it.
void finalize_mpi();

// This process's world rank as the launcher announces it in the environment, for use before MPI
// is up (e.g. to let only rank 0 print option errors); 0 when not launched so. Open MPI's
// OMPI_COMM_WORLD_RANK, then PMIX_RANK (srun --mpi=pmix, Open MPI 5), PMI_RANK (MPICH, Intel
// MPI), and SLURM_PROCID only inside a job step that no mpirun started (SLURM_STEP_ID set, no
// OMPI_COMM_WORLD_RANK): under mpirun inside a batch job SLURM_PROCID is 0 on every rank.
int launcher_world_rank();

// Whether a launcher started this process as a rank of a job (mpirun, srun, mpiexec announce it
// in the environment: OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_RANK, SLURM_STEP_ID). A process started
// by hand is not, and when it needs no peers it can run without MPI (ProcessGrid::single()).
bool started_by_launcher();

// The number of ranks on this node as the launcher announces it (OMPI_COMM_WORLD_LOCAL_SIZE,
// SLURM_NTASKS_PER_NODE, MPI_LOCALNRANKS), at least 1; only for use before MPI is up, after which
// node_ranks().local_size is the answer every launcher agrees on.
int launcher_local_ranks();

// This process's node as MPI sees it: the world ranks that can share memory with it
// (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED)), so mpirun, srun and mpirun inside
// a batch job agree, whatever variables each launcher sets. init_mpi finds it once, collectively
// on every rank; before init_mpi (and after finalize_mpi) it describes a single process.
struct NodeRanks {
  int local_rank = 0;        // this rank's place among the node's ranks, in world-rank order
  int local_size = 1;        // the number of ranks on the node
  int first_world_rank = 0;  // the node's smallest world rank: names the node where host names repeat
  int ranks_sharing_cpus = 1;   // ranks of the node with this rank's CPU affinity mask, itself included
  int ranks_sharing_quota = 1;  // ranks of the node under this rank's cgroup CPU limit, itself included
};
const NodeRanks& node_ranks();
inline int local_rank() { return node_ranks().local_rank; }
inline int local_size() { return node_ranks().local_size; }

// The node of every world rank, once gather_node_names has found them (ProcessGrid does at start-
// up), so that a message about a rank can say where it runs: world_node(r) is "" before then, or
// for a rank out of range.
void remember_world_nodes(std::vector<std::string> nodes);
std::string world_node(int world_rank);

// main() of every MPI program: starts MPI, runs `body`, finalizes. An exception escaping `body`
// on any rank is printed at once, one line naming `app` and the rank, before anything waits on
// other ranks; then, when the job has more than one rank, MPI_Abort ends every rank now instead of
// leaving the others in a collective until the deadline ("timed out in all_reduce" would hide
// the cause). Returns body's exit code, or 1 after an error in a single-process run.
int run_with_mpi(const char* app, int* argc, char*** argv, const std::function<int()>& body);
// main() of a process that needs no peers and was started by hand (started_by_launcher() is
// false): runs `body` without MPI; an exception escaping it is printed as run_with_mpi prints it
// (rank 0) and returns 1.
int run_without_mpi(const char* app, const std::function<int()>& body);

// RAII form for main(): init_mpi in the constructor, finalize_mpi in the destructor.
class MpiRuntime {
 public:
  MpiRuntime(int* argc, char*** argv) { init_mpi(argc, argv); }
  ~MpiRuntime() { finalize_mpi(); }
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;
};

}  // namespace tessera::parallel
