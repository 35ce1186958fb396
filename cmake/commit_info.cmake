# Writes OUT, a translation unit defining attncheck::build_commit(), from the
# checkout at SRC; rewritten only when the commit changes, so a rebuild that
# changes nothing recompiles nothing. Run at every build (CMakeLists.txt).
execute_process(COMMAND git -C "${SRC}" describe --always --dirty --abbrev=12
                OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR commit STREQUAL "")
  set(commit "unknown")
endif()
file(WRITE "${OUT}.tmp" "namespace attncheck { const char* build_commit() { return \"${commit}\"; } }\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
