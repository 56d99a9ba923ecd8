# A rank's local rank and node from MPI, and the default thread count from its CPU mask.
# Plain mpirun, 3 ranks unbound (--bind-to none): one node of 3 ranks that all share one mask.
tessera_add_mpi_test(node_ranks_np3 3 node_ranks_test.cc)
set_property(TEST node_ranks_np3 APPEND PROPERTY ENVIRONMENT "TESSERA_EXPECT_SHARING=3")
# Under `taskset -c 0` every rank inherits a mask of one CPU: 1 thread, whatever the machine has
# (cores / ranks would give 2 on a 2-core machine); at 3 ranks all 3 share that one CPU.
add_test(NAME node_ranks_taskset_np1
         COMMAND taskset -c 0 ${TESSERA_MPIRUN} -np 1 $<TARGET_FILE:node_ranks_test>)
add_test(NAME node_ranks_taskset_np3
         COMMAND taskset -c 0 ${TESSERA_MPIRUN} -np 3 $<TARGET_FILE:node_ranks_test>)
# Each rank bound to its own core (like srun --cpu-bind=cores): nobody shares a mask, 1 CPU each.
add_test(NAME node_ranks_bound_np2
         COMMAND ${MPIEXEC_EXECUTABLE} --bind-to core --map-by core -np 2 $<TARGET_FILE:node_ranks_test>)
set_tests_properties(node_ranks_taskset_np1 node_ranks_taskset_np3 node_ranks_bound_np2 PROPERTIES TIMEOUT 120 LABELS mpi
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1")
set_property(TEST node_ranks_taskset_np1 APPEND PROPERTY ENVIRONMENT "TESSERA_EXPECT_SHARING=1;TESSERA_EXPECT_THREADS=1")
set_property(TEST node_ranks_taskset_np3 APPEND PROPERTY ENVIRONMENT "TESSERA_EXPECT_SHARING=3;TESSERA_EXPECT_THREADS=1")
set_property(TEST node_ranks_bound_np2 APPEND PROPERTY ENVIRONMENT "TESSERA_EXPECT_SHARING=1;TESSERA_EXPECT_THREADS=1")
