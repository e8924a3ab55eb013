# One consumption test in one ctest: prepares shardnet the way MODE says, then configures, builds
# and (if RUN is given) runs the outside project PROJECT in the scratch directory WORK.
#   MODE add_subdirectory  the project adds SOURCE (shardnet's source tree)
#   MODE fetchcontent      SOURCE is packed into a .tar.gz the project fetches by file:// URL;
#                          the program is the README's C++ example
#   MODE deb               `cpack -G DEB` with CPACK_CONFIG, the .deb's Depends are checked, it is
#                          unpacked with dpkg -x into a scratch root, the project finds it there
#   MODE prefix            the project finds the install prefix PREFIX
# RUN is a |-separated command (a ; would not survive add_test); its output must match EXPECT.
cmake_minimum_required(VERSION 3.25)

function(step what)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE out
                    ERROR_VARIABLE err)
    if(NOT result EQUAL 0)
        message(FATAL_ERROR "${what} failed (${result}):\n${out}${err}")
    endif()
    set(step_output "${out}${err}" PARENT_SCOPE)
    message(STATUS "${what}: ok")
endfunction()

file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

if(MODE STREQUAL "add_subdirectory")
    set(args -DSHARDNET_SOURCE_DIR=${SOURCE})
elseif(MODE STREQUAL "fetchcontent")
    # What a release archive holds for a consumer: the build script and the library.
    set(archive ${WORK}/shardnet-src.tar.gz)
    step("pack the source tree" ${CMAKE_COMMAND} -E chdir ${SOURCE}
         ${CMAKE_COMMAND} -E tar czf ${archive} CMakeLists.txt cmake include)
    # The program built is the README's example (its first C++ block), so the first code a
    # reader copies is known to compile and run against a fetched shardnet.
    file(READ ${SOURCE}/README.md readme)
    if(NOT readme MATCHES "```cpp\n([^`]*)```")
        message(FATAL_ERROR "README.md has no ```cpp block")
    endif()
    file(WRITE ${WORK}/readme_example.cpp "${CMAKE_MATCH_1}")
    set(args -DSHARDNET_URL=file://${archive} -DSHARDNET_PROGRAM=${WORK}/readme_example.cpp)
elseif(MODE STREQUAL "deb")
    step("cpack -G DEB" ${CMAKE_CPACK_COMMAND} -G DEB --config ${CPACK_CONFIG} -B ${WORK}/package)
    file(GLOB debs ${WORK}/package/*.deb)
    list(LENGTH debs count)
    if(NOT count EQUAL 1)
        message(FATAL_ERROR "expected one .deb in ${WORK}/package, got '${debs}'")
    endif()
    step("read the control fields" dpkg-deb --field ${debs} Package Architecture Depends)
    message(STATUS "${step_output}")
    foreach(dependency libboost-mpi-dev libboost-serialization-dev libxtensor-dev libxsimd-dev
                       libopenmpi-dev zlib1g-dev)
        if(NOT step_output MATCHES "Depends:.*${dependency}")
            message(FATAL_ERROR "the .deb does not declare ${dependency}:\n${step_output}")
        endif()
    endforeach()
    step("dpkg -x into a scratch root" dpkg -x ${debs} ${WORK}/root)
    set(args -DCMAKE_PREFIX_PATH=${WORK}/root/usr)
    set(FOUND_UNDER ${WORK}/root/usr)
elseif(MODE STREQUAL "prefix")
    set(args -DCMAKE_PREFIX_PATH=${PREFIX})
    set(FOUND_UNDER ${PREFIX})
else()
    message(FATAL_ERROR "unknown MODE '${MODE}'")
endif()

step("configure ${PROJECT}" ${CMAKE_COMMAND} -S ${PROJECT} -B ${WORK}/build
     -DCMAKE_BUILD_TYPE=Release ${args})
message(STATUS "${step_output}")
# A package found elsewhere (a system-wide install) would prove nothing.
if(DEFINED FOUND_UNDER)
    file(STRINGS ${WORK}/build/CMakeCache.txt found REGEX "^shardnet_DIR:")
    if(NOT found MATCHES "=${FOUND_UNDER}/")
        message(FATAL_ERROR "shardnet was found at '${found}', not under ${FOUND_UNDER}")
    endif()
    message(STATUS "${found}")
endif()
step("build" ${CMAKE_COMMAND} --build ${WORK}/build)
if(DEFINED RUN)
    string(REPLACE "|" ";" RUN "${RUN}")
    step("run" ${RUN})
    message(STATUS "${step_output}")
    if(DEFINED EXPECT AND NOT step_output MATCHES "${EXPECT}")
        message(FATAL_ERROR "the output does not match '${EXPECT}'")
    endif()
endif()
