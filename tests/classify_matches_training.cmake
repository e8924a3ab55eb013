# classify reproduces train_mlp's test accuracy from its checkpoint, on other rank counts, grids
# and partitions: the same weights and the same (standardized) images give the same predictions,
# so the accuracy must match digit for digit. Then --grid draws a PNG (when GNUPLOT is set).
# Inputs: TRAIN (|-list: the train_mlp command, without checkpoint options), CLASSIFY_RUNS
# (^-separated |-lists: classify commands, without --checkpoint-dir), WORK_DIR, GNUPLOT.
string(REPLACE "|" ";" TRAIN "${TRAIN}")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
execute_process(COMMAND ${TRAIN} --checkpoint-dir ${WORK_DIR}/checkpoints --checkpoint-every 100000
                RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 240)
if(NOT result EQUAL 0)
    message(FATAL_ERROR "train_mlp failed (${result}):\n${out}${err}")
endif()
if(NOT out MATCHES "final: epochs=[0-9]+ train_loss=[^ ]+ test_loss=[^ ]+ test_accuracy=([0-9.e-]+) ")
    message(FATAL_ERROR "train_mlp printed no final line:\n${out}")
endif()
set(expected "${CMAKE_MATCH_1}")
message(STATUS "train_mlp: test_accuracy=${expected}")

string(REPLACE "^" ";" runs "${CLASSIFY_RUNS}")
set(index 0)
foreach(run IN LISTS runs)
    math(EXPR index "${index} + 1")
    string(REPLACE "|" ";" command "${run}")
    # The first run draws the grid; a run with replicas draws it again, from predictions that
    # came from both replicas, and must draw the same picture.
    set(extra)
    if(index EQUAL 1 AND GNUPLOT)
        set(extra --grid ${WORK_DIR}/grid.png --grid-count 25)
    elseif(run MATCHES "--data-parallel" AND GNUPLOT)
        set(extra --grid ${WORK_DIR}/grid_${index}.png --grid-count 25)
    endif()
    execute_process(COMMAND ${command} --checkpoint-dir ${WORK_DIR}/checkpoints ${extra}
                    RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 240)
    if(NOT result EQUAL 0)
        message(FATAL_ERROR "classify run ${index} failed (${result}):\n${out}${err}")
    endif()
    if(NOT out MATCHES "classified: samples=([0-9]+) correct=[0-9]+ accuracy=([0-9.e-]+) ranks=([0-9]+) replicas=([0-9]+)\n")
        message(FATAL_ERROR "classify run ${index} printed no classified line:\n${out}${err}")
    endif()
    message(STATUS "classify run ${index}: ${CMAKE_MATCH_3} ranks, ${CMAKE_MATCH_4} replicas, "
                   "accuracy=${CMAKE_MATCH_2}")
    if(NOT CMAKE_MATCH_2 STREQUAL expected)
        message(FATAL_ERROR "classify run ${index} (${run}) reports accuracy ${CMAKE_MATCH_2}, "
                            "train_mlp ${expected}:\n${out}")
    endif()
endforeach()

if(GNUPLOT)
    # A PNG file starts with the 8-byte signature 89 50 4E 47 0D 0A 1A 0A.
    file(READ ${WORK_DIR}/grid.png signature LIMIT 8 HEX)
    if(NOT signature STREQUAL "89504e470d0a1a0a")
        message(FATAL_ERROR "--grid wrote no PNG (first bytes: '${signature}')")
    endif()
    file(SIZE ${WORK_DIR}/grid.png size)
    message(STATUS "grid.png: ${size} bytes")
    file(GLOB replicated_grids ${WORK_DIR}/grid_*.png)
    file(SHA256 ${WORK_DIR}/grid.png drawn)
    foreach(other IN LISTS replicated_grids)
        file(SHA256 ${other} again)
        if(NOT again STREQUAL drawn)
            message(FATAL_ERROR "${other}, drawn by a run with replicas, differs from grid.png")
        endif()
        message(STATUS "${other}: the same picture")
    endforeach()
endif()
