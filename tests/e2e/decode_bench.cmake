# tessera-bench --decode and the CTranslate2 converter (decode_bench.sh says what each case
# checks). The setup case trains a small model once; table and ct2 share it (a ctest fixture) and
# work in their own directories. ct2 exits 77 (skipped, the reason printed) without Python's
# ctranslate2, torch or safetensors.
set(DECODE_BENCH_ARGS $<TARGET_FILE:tessera-prep> $<TARGET_FILE:tessera-train> $<TARGET_FILE:tessera-translate>
    $<TARGET_FILE:tessera-ckpt> $<TARGET_FILE:tessera-bench> ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/decode_bench)
foreach(case setup table ct2)
  add_test(NAME decode_bench_${case} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/decode_bench.sh ${case} ${DECODE_BENCH_ARGS})
  set_tests_properties(decode_bench_${case} PROPERTIES TIMEOUT 300 LABELS "e2e" SKIP_RETURN_CODE 77
                       ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
  if(case STREQUAL "setup")
    set_tests_properties(decode_bench_${case} PROPERTIES FIXTURES_SETUP decode_bench_model)
  else()
    set_tests_properties(decode_bench_${case} PROPERTIES FIXTURES_REQUIRED decode_bench_model)
  endif()
endforeach()
