# DebGzipMan.cmake - a CPack pre-build script (CPACK_PRE_BUILD_SCRIPTS,
# see Packaging.cmake): compresses the man pages in the staging directory
# with 'gzip -9n' before the package is made, as Debian policy (12.1)
# wants; 'cmake --install' itself installs them uncompressed.
#
# CPACK_TEMPORARY_DIRECTORY is the staging directory of the package being
# made (the same as CPACK_TEMPORARY_INSTALL_DIRECTORY).
find_program(GZIP gzip REQUIRED)
file(GLOB_RECURSE files "${CPACK_TEMPORARY_DIRECTORY}/*")
set(pages "")
foreach(f IN LISTS files)
  if(f MATCHES "/share/man/man[1-9]/[^/]+\\.[1-9]$")
    list(APPEND pages ${f})
  endif()
endforeach()
if(NOT pages)
  message(FATAL_ERROR "DebGzipMan: no man page in ${CPACK_TEMPORARY_DIRECTORY}")
endif()
foreach(page IN LISTS pages)
  execute_process(COMMAND ${GZIP} -9nf ${page} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "DebGzipMan: gzip -9n ${page} failed")
  endif()
endforeach()
