# seg_require: find a dependency or fail configure with the Debian package
# that provides it (tools/setup-deps.sh installs them all), so a fresh clone
# missing one stops here instead of silently building less.
#
#   seg_require(PACKAGE RocksDB CONFIG DEBIAN librocksdb-dev)
#       find_package(RocksDB CONFIG)
#   seg_require(PKGCONFIG RDKAFKA rdkafka rdkafka++ DEBIAN librdkafka-dev)
#       pkg_check_modules(RDKAFKA IMPORTED_TARGET rdkafka rdkafka++)
#   seg_require(PROGRAM THRIFT_COMPILER thrift DEBIAN thrift-compiler)
#       find_program(THRIFT_COMPILER thrift)
#
# Failing: "RocksDB not found: apt-get install librocksdb-dev". Words after
# the name (before DEBIAN) go to the underlying call. A macro, so the
# variables the find module sets (e.g. RDKAFKA_LIBRARIES) reach the caller.
macro(seg_require kind name)
  cmake_parse_arguments(_SEG_REQ "" "" "DEBIAN" ${ARGN})
  if(NOT _SEG_REQ_DEBIAN)
    message(FATAL_ERROR "seg_require(${kind} ${name}): DEBIAN <package> is missing")
  endif()
  string(REPLACE ";" " " _SEG_REQ_DEBIAN "${_SEG_REQ_DEBIAN}")
  if("${kind}" STREQUAL "PACKAGE")
    find_package(${name} ${_SEG_REQ_UNPARSED_ARGUMENTS} QUIET)
    set(_SEG_REQ_FOUND ${${name}_FOUND})
    set(_SEG_REQ_WHAT ${name})
  elseif("${kind}" STREQUAL "PKGCONFIG")
    pkg_check_modules(${name} QUIET IMPORTED_TARGET ${_SEG_REQ_UNPARSED_ARGUMENTS})
    set(_SEG_REQ_FOUND ${${name}_FOUND})
    string(REPLACE ";" " " _SEG_REQ_WHAT "${_SEG_REQ_UNPARSED_ARGUMENTS}")
  elseif("${kind}" STREQUAL "PROGRAM")
    find_program(${name} ${_SEG_REQ_UNPARSED_ARGUMENTS})
    set(_SEG_REQ_FOUND ${${name}})
    list(GET _SEG_REQ_UNPARSED_ARGUMENTS 0 _SEG_REQ_WHAT)
  else()
    message(FATAL_ERROR "seg_require: kind is PACKAGE, PKGCONFIG or PROGRAM, not '${kind}'")
  endif()
  if(NOT _SEG_REQ_FOUND)
    message(FATAL_ERROR "${_SEG_REQ_WHAT} not found: apt-get install ${_SEG_REQ_DEBIAN}")
  endif()
endmacro()
