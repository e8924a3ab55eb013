# train_mlp runs of the same model on different grids give the same losses, step by step, up to
# float reduction order (a relative difference of at most TOLERANCE; 0: bit for bit). Inputs:
# REFERENCE and RUN, optionally RUN2 and RUN3 (|-lists: the commands; each RUN is compared with
# REFERENCE), WORK_DIR, and TOLERANCE or, instead, BASELINE and FACTOR: the tolerance is FACTOR
# times the worst relative difference between REFERENCE and the BASELINE run (a bf16 run's
# distance from fp32 sets how far bf16 runs on other grids may be from it).
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(runs)
# The relative difference of step losses, as awk: r = |run - ref| / (1 + |ref|).
set(relative_difference "
    NR == FNR { ref[FNR] = $1; n = FNR; next }
    { m = FNR; d = $1 - ref[FNR]; if (d < 0) d = -d; s = ref[FNR] < 0 ? -ref[FNR] : ref[FNR];
      r = d / (1 + s); if (r > worst) { worst = r; at = FNR } }")
foreach(which REFERENCE BASELINE RUN RUN2 RUN3)
    if(NOT DEFINED ${which})
        continue()
    endif()
    string(REPLACE "|" ";" command "${${which}}")
    string(TOLOWER ${which} name)
    execute_process(COMMAND ${command} --losses ${WORK_DIR}/${name}.txt RESULT_VARIABLE result
                    OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 240)
    if(NOT result EQUAL 0)
        message(FATAL_ERROR "${name} run failed (${result}):\n${out}${err}")
    endif()
    message(STATUS "${name}: ${out}")
    if(NOT name STREQUAL "reference" AND NOT name STREQUAL "baseline")
        list(APPEND runs ${name})
    endif()
endforeach()
if(DEFINED BASELINE)
    execute_process(
        COMMAND awk -v factor=${FACTOR} "${relative_difference}
            END { if (n != m || n == 0) exit 1; printf \"%.6g\", factor * worst }"
            ${WORK_DIR}/reference.txt ${WORK_DIR}/baseline.txt
        RESULT_VARIABLE counted OUTPUT_VARIABLE TOLERANCE)
    if(NOT counted EQUAL 0 OR TOLERANCE STREQUAL "" OR TOLERANCE EQUAL 0)
        message(FATAL_ERROR "the baseline gave no losses to compare, or the same ones: "
                            "'${TOLERANCE}'")
    endif()
    message(STATUS "tolerance: ${FACTOR} x the reference's distance from the baseline = "
                   "${TOLERANCE}")
endif()
# CMake has no floating-point arithmetic; awk (a required Debian package) compares.
foreach(run ${runs})
    execute_process(
        COMMAND awk -v tol=${TOLERANCE} "${relative_difference}
            END { printf \"steps %d and %d, worst relative difference %.3g at step %d\\n\", n, m, worst, at;
                  exit !(n == m && n > 0 && worst <= tol) }"
            ${WORK_DIR}/reference.txt ${WORK_DIR}/${run}.txt
        RESULT_VARIABLE same OUTPUT_VARIABLE summary)
    message(STATUS "${run}: ${summary}")
    if(NOT same EQUAL 0)
        message(FATAL_ERROR "the losses of ${run} differ beyond ${TOLERANCE}: ${summary}")
    endif()
endforeach()
