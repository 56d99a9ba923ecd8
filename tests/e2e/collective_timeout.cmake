# A rank that skips a collective makes its peers hit the deadline: the job must fail within
# 3x the deadline (4 s) and name the collective. A rank that dies must fail the whole job too.
set(TESSERA_FAULT_DEADLINE 4)
add_test(NAME collective_timeout_skipped_rank
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/expect_abort.sh 12
                 "timed out after [0-9.]+ s in all_reduce\\(count=4096, f32, sum\\) on group .dp. of 3 ranks"
                 ${TESSERA_MPIRUN} -np 3 $<TARGET_FILE:tessera-fault-probe>
                 --skip-rank 1 --timeout ${TESSERA_FAULT_DEADLINE})
add_test(NAME collective_timeout_killed_rank
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/expect_abort.sh ${TESSERA_FAULT_DEADLINE} ""
                 ${TESSERA_MPIRUN} -np 3 $<TARGET_FILE:tessera-fault-probe>
                 --kill-rank 2 --timeout ${TESSERA_FAULT_DEADLINE})
set_tests_properties(collective_timeout_skipped_rank collective_timeout_killed_rank PROPERTIES
                     TIMEOUT 60 LABELS "mpi;e2e"
                     ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
