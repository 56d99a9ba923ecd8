# Scaling experiments (docs/scaling.md). perf_model: the alpha-beta fit recovers known alpha and
# beta from a synthetic benchmark table, and the counted collectives and buckets are the code's
# (plain Python 3; skipped, exit 77, where there is no python3). scaling_sweep: launch/scaling.sh
# runs a tiny strong-scaling sweep of 3 layouts with short collective benchmarks, and
# scaling_sweep.sh checks the report's rows (about 30-60 s; timings are not asserted).
add_test(NAME scaling_perf_model
         COMMAND bash -c "command -v python3 >/dev/null || { echo 'skipped: no python3'; exit 77; }; exec python3 \"$@\" -v"
                 _ ${CMAKE_CURRENT_SOURCE_DIR}/perf_model_test.py)
set_tests_properties(scaling_perf_model PROPERTIES TIMEOUT 60 LABELS "e2e;scaling" SKIP_RETURN_CODE 77)

add_test(NAME scaling_sweep
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/scaling_sweep.sh ${TESSERA_MPIRUN} --
                 $<TARGET_FILE:tessera-train> $<TARGET_FILE:tessera-bench-collectives> ${CMAKE_SOURCE_DIR}
                 ${CMAKE_CURRENT_BINARY_DIR}/scaling_sweep)
set_tests_properties(scaling_sweep PROPERTIES TIMEOUT 300 LABELS "e2e;scaling;mpi" SKIP_RETURN_CODE 77
                     ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
