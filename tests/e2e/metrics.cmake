# Run metrics (docs/metrics.md): metrics.jsonl, the time split, the straggler report naming a
# slowed rank, continuation on resume, and TensorBoard reading the event files.
add_test(NAME train_metrics_and_stragglers
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/metrics.sh ${TESSERA_MPIRUN} --
                 $<TARGET_FILE:tessera-train> ${CMAKE_SOURCE_DIR}/configs/tiny.cfg ${CMAKE_SOURCE_DIR}/tools
                 ${CMAKE_CURRENT_BINARY_DIR}/metrics)
set_tests_properties(train_metrics_and_stragglers PROPERTIES TIMEOUT 300 LABELS "e2e;mpi" SKIP_RETURN_CODE 77
                     ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
