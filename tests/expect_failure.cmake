# Runs COMMAND (a ;-list) and passes only if it exits non-zero, within the ctest TIMEOUT, and
# its output matches EXPECT: a failure that is clear, not a crash that happens to be non-zero.
# COMMAND separates its words with | (a ; would not survive add_test).
string(REPLACE "|" ";" COMMAND "${COMMAND}")
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(all "${out}${err}")
if(result EQUAL 0)
    message(FATAL_ERROR "expected a failure, got exit code 0:\n${all}")
endif()
if(NOT all MATCHES "${EXPECT}")
    message(FATAL_ERROR "exit code ${result}, but the output does not match '${EXPECT}':\n${all}")
endif()
if(all MATCHES "Segmentation|Aborted|terminate called|signal")
    message(FATAL_ERROR "the program crashed instead of failing cleanly:\n${all}")
endif()
message(STATUS "failed as expected (exit code ${result})")
