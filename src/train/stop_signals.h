// Stopping cleanly when the cluster asks. SLURM (and mpirun, and a user's Ctrl-C) send SIGTERM,
// SIGINT or - when asked with `--signal` - SIGUSR1 before a job is killed at its time limit or
// preempted. tessera-train catches them: the handler only records the signal, and at the next
// step boundary every rank learns of it (the signal is reduced over the world, since it may reach
// only some ranks), saves a checkpoint, and exits with kExitStoppedEarly so the batch script
// can requeue the job. A second signal while the checkpoint is written changes nothing: the save
// goes on, and its files appear whole or not at all.
#pragma once

namespace tessera::train {

// The exit code of a run that stopped before --steps, on a stop signal or at --time-limit, after
// saving its checkpoint (EX_TEMPFAIL: try again later). launch/train.sbatch requeues on it.
inline constexpr int kExitStoppedEarly = 75;

// Installs the handlers for SIGTERM, SIGINT and SIGUSR1 (replacing the default actions).
void catch_stop_signals();

// The first stop signal received since catch_stop_signals(), or 0.
int stop_signal();

// "SIGTERM", "SIGINT", "SIGUSR1", or "signal N".
const char* signal_name(int signal);

}  // namespace tessera::train
