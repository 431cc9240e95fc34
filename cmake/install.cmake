# install.cmake — `make install` for sbpc. Include it from the top-level
# CMakeLists.txt (anywhere after project()); everything here runs deferred, at the end of the top directory,
# so the targets it refers to exist whatever the include's position.
#
# Installs: bin/sbpc; lib/libsbpc.so (the plan reader, a small C API for
# external runtimes: format/plan.c + util arena/diag, linked to cJSON);
# include/sbpc/sbpc_plan.h; lib/pkgconfig/sbpc.pc; share/man/man1/sbpc.1;
# the docs under share/doc/sbpc.
include(GNUInstallDirs)

function(sbpc_install_rules)
  # libsbpc: read plans from C.
  add_library(sbpc_lib SHARED ${CMAKE_SOURCE_DIR}/format/plan.c
              ${CMAKE_SOURCE_DIR}/util/arena.c ${CMAKE_SOURCE_DIR}/util/diag.c)
  set_target_properties(sbpc_lib PROPERTIES OUTPUT_NAME sbpc VERSION 0.1.0 SOVERSION 0
                        C_VISIBILITY_PRESET default
                        PUBLIC_HEADER ${CMAKE_SOURCE_DIR}/format/sbpc_plan.h)
  target_include_directories(sbpc_lib PRIVATE ${CMAKE_SOURCE_DIR} ${CJSON_INCLUDE_DIRS})
  target_link_libraries(sbpc_lib PRIVATE ${CJSON_LINK_LIBRARIES} ${CJSON_LIBRARIES} m)

  # relocatable: the prefix is found from the .pc file's own place
  string(REGEX REPLACE "[^/]+" ".." SBPC_PC_UP "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
  set(SBPC_PC "prefix=\${pcfiledir}/${SBPC_PC_UP}
libdir=\${prefix}/${CMAKE_INSTALL_LIBDIR}
includedir=\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}

Name: sbpc
Description: read sbpc execution plans (sbpc_plan.h)
Version: 0.1.0
Requires.private: libcjson
Cflags: -I\${includedir}/sbpc
Libs: -L\${libdir} -lsbpc
")
  file(WRITE ${CMAKE_BINARY_DIR}/sbpc.pc "${SBPC_PC}")

  install(TARGETS sbpc RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(TARGETS sbpc_lib LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
          PUBLIC_HEADER DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/sbpc)
  install(FILES ${CMAKE_BINARY_DIR}/sbpc.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
  install(FILES ${CMAKE_SOURCE_DIR}/docs/sbpc.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
  file(GLOB SBPC_DOCS ${CMAKE_SOURCE_DIR}/docs/*.md ${CMAKE_SOURCE_DIR}/docs/*.svg)
  install(FILES ${SBPC_DOCS} DESTINATION ${CMAKE_INSTALL_DOCDIR})
endfunction()

cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL sbpc_install_rules)
