# tessera-ckpt on checkpoints of a short real run (ckpt_tool.sh says what each case checks). The
# setup case trains the run once; the others share it (a ctest fixture) and work in their own
# directories, so they can run in any order or in parallel. export_python and pytorch exit 77
# (skipped) on a machine without Python's safetensors/numpy or torch.
add_executable(ckpt_reference_logprobs ${CMAKE_CURRENT_SOURCE_DIR}/ckpt_reference_logprobs.cc)
target_link_libraries(ckpt_reference_logprobs PRIVATE tessera)
set(CKPT_TOOL_ARGS ${TESSERA_MPIRUN} -- $<TARGET_FILE:tessera-prep> $<TARGET_FILE:tessera-train>
    $<TARGET_FILE:tessera-translate> $<TARGET_FILE:tessera-ckpt> $<TARGET_FILE:ckpt_reference_logprobs>
    ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/ckpt_tool)
foreach(case setup verify convert average export_python pytorch)
  add_test(NAME ckpt_tool_${case} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/ckpt_tool.sh ${case} ${CKPT_TOOL_ARGS})
  set_tests_properties(ckpt_tool_${case} PROPERTIES TIMEOUT 300 LABELS "e2e;mpi" SKIP_RETURN_CODE 77
                       ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
  if(case STREQUAL "setup")
    set_tests_properties(ckpt_tool_${case} PROPERTIES FIXTURES_SETUP ckpt_tool_run)
  else()
    set_tests_properties(ckpt_tool_${case} PROPERTIES FIXTURES_REQUIRED ckpt_tool_run)
  endif()
endforeach()
