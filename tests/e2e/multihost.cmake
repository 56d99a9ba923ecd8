# Two hosts on one machine (network namespaces on a bridge, mpirun over TCP between them): tp 2
# inside each host x dp 2 across them trains exactly like one host, and a host that is killed,
# hangs or is cut off ends the job within 60 s naming the lost ranks. Needs root and `ip netns`
# (skipped with the reason otherwise); it changes the machine's network, so it runs alone.
add_test(NAME multihost_train_and_faults
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/multihost.sh ${TESSERA_MPIRUN} --
                 $<TARGET_FILE:tessera-train> ${CMAKE_SOURCE_DIR}/configs/tiny.cfg ${CMAKE_CURRENT_BINARY_DIR}/multihost)
set_tests_properties(multihost_train_and_faults PROPERTIES TIMEOUT 300 LABELS "e2e;multihost" RUN_SERIAL TRUE
                     SKIP_RETURN_CODE 77
                     ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
