# The NCCL communicator, one GPU per rank (built with NCCL; every test skips where a node has fewer
# visible GPUs than ranks, so on a machine without GPUs they pass as skipped).
if(TESSERA_WITH_NCCL)
  tessera_add_mpi_test(nccl_communicator_np2 2 nccl_communicator_test.cc)
  tessera_add_mpi_test(nccl_communicator_np4 4 nccl_communicator_test.cc)
  # Rank 1 never issues an all-reduce: rank 0's watchdog must end the job past the 4 s deadline,
  # naming the collective and group (exit code 77, skipped, without 2 GPUs).
  add_test(NAME nccl_deadline_np2
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/nccl_deadline.sh ${CMAKE_SOURCE_DIR}/tests/e2e/expect_abort.sh
                   ${TESSERA_MPIRUN} -np 2 $<TARGET_FILE:nccl_communicator_test> --gtest_filter=NcclDeadline.*)
  set_tests_properties(nccl_deadline_np2 PROPERTIES TIMEOUT 120 LABELS "mpi;e2e" SKIP_RETURN_CODE 77
      ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;TESSERA_NCCL_TEST_SKIP_RANK=1")
endif()
