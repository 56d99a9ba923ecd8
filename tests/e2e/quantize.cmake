# tessera-translate --quantize int8: close to f32 on one process, and under mpirun -np 2 with
# --tensor-parallel 2 close to one process (quantize.sh says how close and why).
add_test(NAME translate_quantize_int8
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/quantize.sh ${TESSERA_MPIRUN} --
                 $<TARGET_FILE:tessera-prep> $<TARGET_FILE:tessera-train> $<TARGET_FILE:tessera-translate>
                 ${CMAKE_CURRENT_BINARY_DIR}/quantize)
set_tests_properties(translate_quantize_int8 PROPERTIES TIMEOUT 300 LABELS "e2e;mpi"
                     ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
