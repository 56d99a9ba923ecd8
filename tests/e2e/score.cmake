# tessera-translate --score on text: pieces + eos counted as training counts them, the label-smoothed
# CE equal to tessera-train's dev loss, tp=2 and dp=2 equal to one process (score.sh says how).
add_test(NAME translate_score
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/score.sh ${TESSERA_MPIRUN} --
                 $<TARGET_FILE:tessera-prep> $<TARGET_FILE:tessera-train> $<TARGET_FILE:tessera-translate>
                 ${CMAKE_CURRENT_BINARY_DIR}/score)
set_tests_properties(translate_score PROPERTIES TIMEOUT 300 LABELS "e2e;mpi"
                     ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
