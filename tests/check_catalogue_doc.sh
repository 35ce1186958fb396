#!/bin/sh
# docs/gates.md carries the table of gates, bug classes and mutants that
# `attncheck list --catalogue-markdown` prints from the code, between the
# lines <!-- catalogue:begin --> and <!-- catalogue:end -->. The catalogue
# changes in engine/targets/mutant.hpp and properties/gates/gates.hpp, so a
# hand-kept copy would drift: this fails with the diff when the two differ,
# and --update rewrites the section from the command.
#
# Usage: tests/check_catalogue_doc.sh ATTNCHECK DOC [--update]
set -u
if [ $# -lt 2 ]; then
  echo "usage: $0 ATTNCHECK DOC [--update]" >&2
  exit 2
fi
bin="$1"
doc="$2"
mode="${3:-check}"
begin='<!-- catalogue:begin -->'
end='<!-- catalogue:end -->'

nb=$(grep -cxF "$begin" "$doc")
ne=$(grep -cxF "$end" "$doc")
if [ "$nb" -ne 1 ] || [ "$ne" -ne 1 ]; then
  echo "$doc: needs exactly one '$begin' line and one '$end' line (found $nb and $ne)" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! "$bin" list --catalogue-markdown > "$tmp/generated.md"; then
  echo "'$bin list --catalogue-markdown' failed" >&2
  exit 1
fi
awk -v b="$begin" -v e="$end" '$0 == e { inside = 0 } inside { print } $0 == b { inside = 1 }' \
  "$doc" > "$tmp/documented.md"

if [ "$mode" = "--update" ]; then
  awk -v b="$begin" -v e="$end" -v gen="$tmp/generated.md" '
    $0 == e { skip = 0 }
    !skip { print }
    $0 == b { while ((getline line < gen) > 0) print line; skip = 1 }' "$doc" > "$tmp/doc.md" &&
    cat "$tmp/doc.md" > "$doc"
  echo "$doc: catalogue section rewritten"
  exit 0
fi

if diff -u "$tmp/documented.md" "$tmp/generated.md"; then
  echo "$doc: catalogue section matches 'attncheck list --catalogue-markdown'"
  exit 0
fi
echo "$doc: the catalogue section (-) differs from 'attncheck list --catalogue-markdown' (+)." >&2
echo "Regenerate it: $0 $bin $doc --update" >&2
exit 1
