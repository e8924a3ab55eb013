# Kill-and-resume: a run whose rank KILL_RANK dies by SIGKILL after KILL_STEP steps (which takes
# the whole MPI job down), restarted with --resume, must end bitwise like an uninterrupted run:
# same loss sequence (every bit), same weights checksum, same final: line but samples_per_s.
# Inputs: MPIEXEC, NP_FLAG, RANKS, TRAIN_MLP, WORK_DIR, KILL_RANK, KILL_STEP, EVERY, ARGS (|-list).
string(REPLACE "|" ";" ARGS "${ARGS}")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(run ${MPIEXEC} ${NP_FLAG} ${RANKS} ${TRAIN_MLP} ${ARGS} --checksum --no-progress-bar)

function(summary out var)
    string(REGEX MATCH "final: [^\n]*" final "${out}")
    string(REGEX REPLACE " samples_per_s=[0-9]+" "" final "${final}")
    string(REGEX MATCH "checksum: [^\n]*" checksum "${out}")
    if(final STREQUAL "" OR checksum STREQUAL "")
        message(FATAL_ERROR "no final:/checksum: line in:\n${out}")
    endif()
    set(${var} "${final}\n${checksum}" PARENT_SCOPE)
endfunction()

execute_process(COMMAND ${run} --losses ${WORK_DIR}/reference.txt
                RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT result EQUAL 0)
    message(FATAL_ERROR "the uninterrupted run failed (${result}):\n${out}${err}")
endif()
summary("${out}" reference)

set(ENV{SHARDNET_TEST_KILL} "${KILL_RANK}:${KILL_STEP}")
execute_process(COMMAND ${run} --checkpoint-dir ${WORK_DIR}/checkpoints --checkpoint-every ${EVERY}
                RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
unset(ENV{SHARDNET_TEST_KILL})
if(result EQUAL 0)
    message(FATAL_ERROR "the run meant to be killed at step ${KILL_STEP} finished:\n${out}${err}")
endif()
math(EXPR expected "${KILL_STEP} / ${EVERY} * ${EVERY}")
file(GLOB left RELATIVE ${WORK_DIR}/checkpoints ${WORK_DIR}/checkpoints/step-*)
list(SORT left)
list(POP_BACK left newest)
if(NOT newest MATCHES "step-0*${expected}$")
    message(FATAL_ERROR "after the kill the newest checkpoint is '${newest}', expected step ${expected}")
endif()

execute_process(COMMAND ${run} --checkpoint-dir ${WORK_DIR}/checkpoints --checkpoint-every ${EVERY}
                        --resume --losses ${WORK_DIR}/resumed.txt
                RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT result EQUAL 0)
    message(FATAL_ERROR "the resumed run failed (${result}):\n${out}${err}")
endif()
if(NOT out MATCHES "resumed at step ${expected} ")
    message(FATAL_ERROR "the run did not resume at step ${expected}:\n${out}")
endif()
summary("${out}" resumed)
if(NOT resumed STREQUAL reference)
    message(FATAL_ERROR "resumed run differs:\n  uninterrupted: ${reference}\n  resumed:       ${resumed}")
endif()
file(READ ${WORK_DIR}/reference.txt reference_losses)
file(READ ${WORK_DIR}/resumed.txt resumed_losses)
if(NOT resumed_losses STREQUAL reference_losses)
    message(FATAL_ERROR "the loss sequences differ")
endif()
message(STATUS "resumed at step ${expected} and ended bitwise equal:\n${resumed}")
