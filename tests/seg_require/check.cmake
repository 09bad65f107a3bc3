# seg_require (cmake/SegDependencies.cmake) run as a configure would: a
# missing package, pkg-config module or program fails configure with a
# message naming it and its Debian package; a present one configures and
# leaves its results to the caller. cmake -P script, one configure of
# tests/seg_require/probe per case (LANGUAGES NONE: well under a second each).
#   cmake -DSEG_SOURCE_DIR=... -DWORK_DIR=... -DGENERATOR=... -P check.cmake
set(failures 0)

# seg_check(<case> <SUCCEEDS|FAILS> <regex> -D...): configure the probe with
# the -D arguments; the result and the output must match.
function(seg_check case outcome regex)
  set(dir ${WORK_DIR}/${case})
  file(REMOVE_RECURSE ${dir})
  execute_process(
    COMMAND ${CMAKE_COMMAND} -G ${GENERATOR} -S ${SEG_SOURCE_DIR}/tests/seg_require/probe
            -B ${dir} -DSEG_SOURCE_DIR=${SEG_SOURCE_DIR} ${ARGN}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
  set(ok TRUE)
  if(outcome STREQUAL "SUCCEEDS" AND NOT rc EQUAL 0)
    set(ok FALSE)
  elseif(outcome STREQUAL "FAILS" AND rc EQUAL 0)
    set(ok FALSE)
  endif()
  if(NOT "${out}${err}" MATCHES "${regex}")
    set(ok FALSE)
  endif()
  if(ok)
    message(STATUS "ok   ${case}")
  else()
    message(STATUS "FAIL ${case}: expected configure ${outcome} with /${regex}/, exit ${rc}:\n${out}${err}")
    math(EXPR n "${failures} + 1")
    set(failures ${n} PARENT_SCOPE)
  endif()
endfunction()

seg_check(missing_package FAILS
  "SegNoSuchPackage not found: apt-get install libsegnosuch-dev"
  -DKIND=PACKAGE -DNAME=SegNoSuchPackage -DWHAT=CONFIG -DDEBIAN=libsegnosuch-dev)
seg_check(missing_module FAILS
  "segnosuch not found: apt-get install libsegnosuch1-dev"
  -DKIND=PKGCONFIG -DNAME=SEGNOSUCH -DWHAT=segnosuch -DDEBIAN=libsegnosuch1-dev)
seg_check(missing_program FAILS
  "seg-no-such-tool not found: apt-get install seg-no-such-tools"
  -DKIND=PROGRAM -DNAME=SEG_NO_SUCH_TOOL -DWHAT=seg-no-such-tool -DDEBIAN=seg-no-such-tools)
# Present ones: a module and a program every build of this repo requires.
seg_check(present_module SUCCEEDS "seg_require_probe: found HIREDIS with target and libraries"
  -DKIND=PKGCONFIG -DNAME=HIREDIS -DWHAT=hiredis -DDEBIAN=libhiredis-dev)
seg_check(present_program SUCCEEDS "seg_require_probe: found SEG_CMAKE at /"
  -DKIND=PROGRAM -DNAME=SEG_CMAKE -DWHAT=cmake -DDEBIAN=cmake)

if(failures GREATER 0)
  message(FATAL_ERROR "seg_require: ${failures} case(s) failed")
endif()
