// Which rank prints option errors before MPI is up: launcher_world_rank reads the launcher's
// variables, and must never take SLURM_PROCID from an mpirun inside a batch job (0 on every rank).
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>

#include "parallel/mpi_runtime.h"

namespace tessera::parallel {
namespace {

// Sets exactly the given launcher variables for one test (the others unset), restoring them after.
class LauncherEnv : public ::testing::Test {
 protected:
  static constexpr const char* kVars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID",
                                          "SLURM_STEP_ID"};
  void SetUp() override {
    for (const char* var : kVars) {
      if (const char* v = std::getenv(var)) saved_[var] = v;
      unsetenv(var);
    }
  }
  void TearDown() override {
    for (const char* var : kVars) {
      unsetenv(var);
      if (saved_.count(var)) setenv(var, saved_[var].c_str(), 1);
    }
  }
  int rank_with(const std::map<std::string, std::string>& vars) {
    for (const char* var : kVars) unsetenv(var);
    for (const auto& [var, value] : vars) setenv(var.c_str(), value.c_str(), 1);
    return launcher_world_rank();
  }
  std::map<std::string, std::string> saved_;
};

TEST_F(LauncherEnv, EachLaunchersRank) {
  EXPECT_EQ(rank_with({}), 0);                                              // no launcher
  EXPECT_EQ(rank_with({{"OMPI_COMM_WORLD_RANK", "3"}}), 3);                 // Open MPI's mpirun
  EXPECT_EQ(rank_with({{"PMIX_RANK", "5"}, {"SLURM_PROCID", "5"}, {"SLURM_STEP_ID", "0"}}), 5);  // srun --mpi=pmix
  EXPECT_EQ(rank_with({{"PMI_RANK", "2"}}), 2);                             // MPICH, Intel MPI
  EXPECT_EQ(rank_with({{"SLURM_PROCID", "7"}, {"SLURM_STEP_ID", "1"}}), 7);  // srun, other PMI
}

TEST_F(LauncherEnv, SlurmProcidOnlyInsideAStepThatSrunStarted) {
  // mpirun inside sbatch: every rank inherits the batch script's SLURM_PROCID=0; mpirun's rank wins.
  EXPECT_EQ(rank_with({{"OMPI_COMM_WORLD_RANK", "2"}, {"PMIX_RANK", "2"}, {"SLURM_PROCID", "0"}}), 2);
  // PMIx's rank comes before SLURM_PROCID even where both are set and differ.
  EXPECT_EQ(rank_with({{"PMIX_RANK", "1"}, {"SLURM_PROCID", "0"}, {"SLURM_STEP_ID", "4"}}), 1);
  // Outside a job step (the batch script itself) SLURM_PROCID is not a rank of this program.
  EXPECT_EQ(rank_with({{"SLURM_PROCID", "3"}}), 0);
}

}  // namespace
}  // namespace tessera::parallel
