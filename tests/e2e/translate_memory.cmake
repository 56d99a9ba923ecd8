# tessera-translate's peak memory does not grow with the length of the input (translate_memory.sh).
add_test(NAME translate_memory_bounded_by_the_batch
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/translate_memory.sh
                 $<TARGET_FILE:tessera-prep> $<TARGET_FILE:tessera-train> $<TARGET_FILE:tessera-translate>
                 ${CMAKE_CURRENT_BINARY_DIR}/translate_memory)
set_tests_properties(translate_memory_bounded_by_the_batch PROPERTIES TIMEOUT 300 LABELS "e2e")
