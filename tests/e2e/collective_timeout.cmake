# A rank that skips a collective makes its peers hit the deadline: the job must fail within
# 3x the deadline (4 s) and name the collective and the missing rank with its host. A rank that
# dies must fail the whole job too.
# Each limit adds 20 s for mpirun to start and stop 3 ranks on a loaded 2-core machine (seen
# taking 2-6 s); a hang still fails, cut off at twice the limit.
set(TESSERA_FAULT_DEADLINE 4)
set(TESSERA_MPIRUN_ALLOWANCE 20)
math(EXPR TESSERA_SKIP_LIMIT "3 * ${TESSERA_FAULT_DEADLINE} + ${TESSERA_MPIRUN_ALLOWANCE}")
math(EXPR TESSERA_KILL_LIMIT "${TESSERA_FAULT_DEADLINE} + ${TESSERA_MPIRUN_ALLOWANCE}")
add_test(NAME collective_timeout_skipped_rank
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/expect_abort.sh ${TESSERA_SKIP_LIMIT}
                 "timed out after [0-9.]+ s in all_reduce\\(count=4096, f32, sum\\) on group .dp. of 3 ranks: group rank\\(s\\) 1 \\(world rank 1 on [^)]+\\) did not arrive"
                 ${TESSERA_MPIRUN} -np 3 $<TARGET_FILE:tessera-fault-probe>
                 --skip-rank 1 --timeout ${TESSERA_FAULT_DEADLINE})
add_test(NAME collective_timeout_killed_rank
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/expect_abort.sh ${TESSERA_KILL_LIMIT} ""
                 ${TESSERA_MPIRUN} -np 3 $<TARGET_FILE:tessera-fault-probe>
                 --kill-rank 2 --timeout ${TESSERA_FAULT_DEADLINE})
set_tests_properties(collective_timeout_skipped_rank collective_timeout_killed_rank PROPERTIES
                     TIMEOUT 120 LABELS "mpi;e2e"
                     ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")

# A rank that fails (here rank 0 cannot create --out-dir) is heard at once and ends the job: its
# error comes first and the other rank does not sit in a collective until the 300 s deadline.
add_test(NAME failing_rank_ends_the_job_at_once
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/expect_abort.sh ${TESSERA_MPIRUN_ALLOWANCE}
                 "rank 0: error: --out-dir: cannot create directory '/proc/tessera-no-such-dir'"
                 ${TESSERA_MPIRUN} -np 2 $<TARGET_FILE:tessera-train> --config ${CMAKE_SOURCE_DIR}/configs/tiny.cfg
                 --data-parallel 2 --threads 1 --collective-timeout 300 --out-dir /proc/tessera-no-such-dir)
set_tests_properties(failing_rank_ends_the_job_at_once PROPERTIES TIMEOUT 120 LABELS "mpi;e2e"
                     ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")

# Lines from different ranks (and threads) never interleave mid-line: 4 ranks x 2 threads write
# 400 long lines each at once, and every line of the merged output must be whole.
add_test(NAME stderr_lines_stay_whole
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/stderr_lines.sh ${TESSERA_MPIRUN} -np 4
                 $<TARGET_FILE:tessera-fault-probe> --chatter 400 --steps 1)
set_tests_properties(stderr_lines_stay_whole PROPERTIES TIMEOUT 120 LABELS "mpi;e2e"
                     ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
