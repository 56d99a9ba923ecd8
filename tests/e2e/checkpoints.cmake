# Checkpoints of long runs (docs/checkpoint-format.md): re-saves, a different model refused,
# retention, the I/O deadline, and SIGKILLs during background saves.
add_test(NAME checkpoint_lifecycle
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/checkpoint_lifecycle.sh ${TESSERA_MPIRUN} --
                 $<TARGET_FILE:tessera-train> ${CMAKE_SOURCE_DIR}/configs/tiny.cfg
                 ${CMAKE_CURRENT_BINARY_DIR}/checkpoint_lifecycle)

# Rank 0's shard write takes 6 s (a stalled file system); with --io-timeout 1 the rank that waits
# for it stops the job naming checkpoint I/O, not a collective (--collective-timeout is 300 s).
add_test(NAME checkpoint_io_timeout_names_io
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/expect_abort.sh 30
                 "rank 1 \\(world\\) waited 1 s for checkpoint I/O on other ranks \\(--io-timeout\\): writing a shard of checkpoint"
                 ${TESSERA_MPIRUN} -np 2 $<TARGET_FILE:tessera-train> --config ${CMAKE_SOURCE_DIR}/configs/tiny.cfg
                 --data-parallel 2 --threads 1 --steps 2 --io-timeout 1
                 --save-dir ${CMAKE_CURRENT_BINARY_DIR}/checkpoint_io_timeout)
set_tests_properties(checkpoint_io_timeout_names_io PROPERTIES
                     ENVIRONMENT "TESSERA_TEST_SLOW_SHARD_WRITE=6;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")

# Three random SIGKILLs of the whole job during background saves (tp 2 x dp 2); the long version
# is `bash tests/e2e/kill_during_saves.sh 20 ...` (docs/checkpoint-format.md).
add_test(NAME checkpoint_kill_during_async_saves
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/kill_during_saves.sh 3 ${TESSERA_MPIRUN} --
                 $<TARGET_FILE:tessera-train> $<TARGET_FILE:tessera-ckpt> ${CMAKE_SOURCE_DIR}/configs/tiny.cfg
                 ${CMAKE_CURRENT_BINARY_DIR}/kill_during_saves)
set_tests_properties(checkpoint_lifecycle checkpoint_kill_during_async_saves PROPERTIES TIMEOUT 300 LABELS "e2e;mpi"
                     ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
set_tests_properties(checkpoint_io_timeout_names_io PROPERTIES TIMEOUT 120 LABELS "e2e;mpi")

# SIGUSR1 and SIGTERM on the ranks of a tp 2 job under mpirun, SIGINT on a single process, mid-run
# and again during the save: a checkpoint at that step, exit code 75, and the same command line
# (--resume auto) finishes the run bit for bit as an uninterrupted one.
foreach(signal_ranks USR1:2 TERM:2 INT:1)
  string(REPLACE ":" ";" signal_ranks "${signal_ranks}")
  list(GET signal_ranks 0 signal)
  list(GET signal_ranks 1 ranks)
  add_test(NAME train_stops_on_sig${signal}_and_resumes
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/stop_signal.sh ${signal} ${ranks} ${TESSERA_MPIRUN} --
                   $<TARGET_FILE:tessera-train> ${CMAKE_SOURCE_DIR}/configs/tiny.cfg
                   ${CMAKE_CURRENT_BINARY_DIR}/stop_signal_${signal})
  set_tests_properties(train_stops_on_sig${signal}_and_resumes PROPERTIES TIMEOUT 300 LABELS "e2e;mpi"
                       ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
endforeach()
