# mmpool_add_test(): one test executable, one ctest case of the same name.
#
#   mmpool_add_test(NAME <name> SOURCES <files...>
#                   [LIBS <targets...>] [LABELS <labels...>]
#                   [ENV <VAR=VALUE...>] [TIMEOUT <seconds>]
#                   [ARGS <args...>] [PRELOAD <target>] [NO_CMOCKA])
#
# - Builds executable <name> from SOURCES, linked with LIBS and, unless
#   NO_CMOCKA, with cmocka (PkgConfig::CMOCKA, found by the top-level
#   CMakeLists.txt when MMPOOL_BUILD_TESTS is ON).
# - Registers ctest <name> running `<name> ARGS...` in the current binary
#   directory, with LABELS (unit, integration, preload, tool, stress, lint,
#   example), ENV as its ENVIRONMENT and TIMEOUT (default 120 s).
# - PRELOAD <target>: the test runs with LD_PRELOAD set to that library.
# - Sanitizer flags (MMPOOL_SANITIZE; the top-level CMakeLists.txt,
#   "Sanitizers"): a PRELOAD test is built with mmpool_sanitize_ub (UBSan
#   only: ASan's malloc cannot sit under ours) and must link the API as
#   ${MMPOOL_PRELOAD_API}, never the ASan engine; any other test with
#   mmpool_sanitize_asan (ASan + UBSan).
#
# ENV is a CMake list, so a ';' inside a value splits it: write MMPOOL_CONFIG
# statements separated by newlines ("\n") instead, which the grammar accepts.
include_guard(GLOBAL)

function(mmpool_add_test)
  cmake_parse_arguments(PARSE_ARGV 0 T
    "NO_CMOCKA"
    "NAME;TIMEOUT;PRELOAD"
    "SOURCES;LIBS;LABELS;ENV;ARGS")

  if(T_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR
      "mmpool_add_test: unknown arguments: ${T_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT T_NAME)
    message(FATAL_ERROR "mmpool_add_test: NAME is required")
  endif()
  if(NOT T_SOURCES)
    message(FATAL_ERROR "mmpool_add_test(${T_NAME}): SOURCES is required")
  endif()
  if(NOT DEFINED T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()

  if(T_PRELOAD)
    set(asan_engine mmpool_core mmpool_shared mmpool_static mmpool_config
                    mmpool::mmpool mmpool::static)
    foreach(lib IN LISTS T_LIBS)
      if(MMPOOL_SANITIZE AND lib IN_LIST asan_engine)
        message(FATAL_ERROR "mmpool_add_test(${T_NAME}): a PRELOAD test "
          "cannot link ${lib} (built with ASan under MMPOOL_SANITIZE): link "
          "\${MMPOOL_PRELOAD_API} (${MMPOOL_PRELOAD_API}) instead")
      endif()
    endforeach()
    set(sanitize mmpool_sanitize_ub)
  else()
    set(sanitize mmpool_sanitize_asan)
  endif()

  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} ${sanitize})
  if(NOT T_NO_CMOCKA)
    if(NOT TARGET PkgConfig::CMOCKA)
      message(FATAL_ERROR "mmpool_add_test(${T_NAME}): cmocka was not found "
        "(configure with MMPOOL_BUILD_TESTS=ON, or pass NO_CMOCKA)")
    endif()
    target_link_libraries(${T_NAME} PRIVATE PkgConfig::CMOCKA)
  endif()

  add_test(NAME ${T_NAME}
    COMMAND ${T_NAME} ${T_ARGS}
    WORKING_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")

  set(env ${T_ENV})
  if(T_PRELOAD)
    list(APPEND env "LD_PRELOAD=$<TARGET_FILE:${T_PRELOAD}>")
  endif()

  set_tests_properties(${T_NAME} PROPERTIES TIMEOUT ${T_TIMEOUT})
  if(T_LABELS)
    set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}")
  endif()
  if(env)
    set_tests_properties(${T_NAME} PROPERTIES ENVIRONMENT "${env}")
  endif()
endfunction()
