#!/bin/sh
# The installed package works from an outside project: install this build
# into a fresh prefix, configure and build examples/own_kernel against it
# with find_package(attncheck), and run it (a naive kernel passes every gate;
# its scale-twice twin is caught, shrunk and replayed), then the same kernel
# as a plugin of the installed command line: `attncheck run --plugin` holds on
# the kernel (exit 0) and catches the twin (exit 1).
# Usage: check_installed_package.sh BUILD_DIR SOURCE_DIR
set -u
build="$1"
src="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
step() { # name, command...
  name="$1"; shift
  if ! "$@" > "$work/$name.log" 2>&1; then
    echo "check_installed_package: $name failed:"; cat "$work/$name.log"; exit 1
  fi
}
step install cmake --install "$build" --prefix "$work/prefix"
step configure cmake -S "$src/examples/own_kernel" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release
step build cmake --build "$work/build"
cd "$work"
"$work/build/check_my_kernel" || exit 1
plugin="$work/build/libmy_kernel_plugin.so"
"$work/prefix/bin/attncheck" run --backend cpu --plugin "$plugin" --target my_kernel --cases 100 --workers 2 \
  --out "$work/cx" > "$work/plugin_run.log" 2>&1 || { echo "plugin run on my_kernel failed:"; cat "$work/plugin_run.log"; exit 1; }
tail -n 3 "$work/plugin_run.log"
"$work/prefix/bin/attncheck" run --backend cpu --plugin "$plugin" --target my_kernel_scale_twice --cases 100 \
  --out "$work/cx" > "$work/plugin_twin.log" 2>&1
rc=$?
[ "$rc" -eq 1 ] || { echo "plugin run on the twin: exit $rc, expected 1:"; cat "$work/plugin_twin.log"; exit 1; }
grep -E "FAILED|replay:" "$work/plugin_twin.log" | head -n 3
# Its counterexample replays through the plugin (exit 1: the gate fails again).
cx=$(ls "$work"/cx/my_kernel_scale_twice-*.json | head -n 1)
"$work/prefix/bin/attncheck" repro "$cx" --plugin "$plugin" --expect-gate > "$work/plugin_repro.log" 2>&1
rc=$?
[ "$rc" -eq 1 ] || { echo "repro through the plugin: exit $rc, expected 1:"; cat "$work/plugin_repro.log"; exit 1; }
"$work/prefix/bin/attncheck" run --backend cpu --plugin "$work/nothing.so" > "$work/plugin_bad.log" 2>&1
rc=$?
[ "$rc" -eq 2 ] || { echo "a missing plugin: exit $rc, expected 2:"; cat "$work/plugin_bad.log"; exit 1; }
echo "plugin: held on my_kernel, caught the twin, refused a missing file"
