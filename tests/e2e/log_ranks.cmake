# The start-up layout table (printed once, saved as layout.txt) and --log-ranks (log_ranks.sh).
add_test(NAME train_layout_table_and_log_ranks
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/log_ranks.sh ${TESSERA_MPIRUN} -- $<TARGET_FILE:tessera-train>
                 ${CMAKE_CURRENT_BINARY_DIR}/log_ranks)
set_tests_properties(train_layout_table_and_log_ranks PROPERTIES TIMEOUT 120 LABELS "e2e;mpi"
                     ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
