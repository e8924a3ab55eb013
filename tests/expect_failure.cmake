# Runs COMMAND (a ;-list) and passes only if it exits non-zero within TIMEOUT seconds (60 by
# default: a hang is a failure of its own, not a ctest timeout much later), and its output
# matches EXPECT: a failure that is clear, not a crash that happens to be non-zero.
# COMMAND separates its words with | (a ; would not survive add_test).
# Optional: EXIT_CODE, the exit code required; FORBID, a regex the output must not match (such
# as an epoch line, to prove the run failed before training); UNCHANGED, a file that must be
# bitwise the same afterwards (an input the run was told to overwrite).
string(REPLACE "|" ";" COMMAND "${COMMAND}")
if(NOT TIMEOUT)
    set(TIMEOUT 60)
endif()
if(UNCHANGED)
    file(SHA256 "${UNCHANGED}" before)
endif()
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err
                TIMEOUT ${TIMEOUT})
set(all "${out}${err}")
if(NOT result MATCHES "^[0-9]+$")
    message(FATAL_ERROR "the job did not end by itself within ${TIMEOUT} s (${result}):\n${all}")
endif()
if(result EQUAL 0)
    message(FATAL_ERROR "expected a failure, got exit code 0:\n${all}")
endif()
if(NOT all MATCHES "${EXPECT}")
    message(FATAL_ERROR "exit code ${result}, but the output does not match '${EXPECT}':\n${all}")
endif()
if(all MATCHES "Segmentation|Aborted|terminate called|signal")
    message(FATAL_ERROR "the program crashed instead of failing cleanly:\n${all}")
endif()
if(NOT "${EXIT_CODE}" STREQUAL "" AND NOT result EQUAL EXIT_CODE)
    message(FATAL_ERROR "expected exit code ${EXIT_CODE}, got ${result}:\n${all}")
endif()
if(NOT "${FORBID}" STREQUAL "" AND all MATCHES "${FORBID}")
    message(FATAL_ERROR "the output matches '${FORBID}', which it must not:\n${all}")
endif()
if(UNCHANGED)
    file(SHA256 "${UNCHANGED}" after)
    if(NOT before STREQUAL after)
        message(FATAL_ERROR "'${UNCHANGED}' was modified")
    endif()
endif()
message(STATUS "failed as expected (exit code ${result})")
