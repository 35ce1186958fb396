#!/bin/sh
# The installed package works from an outside project: install this build
# into a fresh prefix, configure and build examples/own_kernel against it
# with find_package(attncheck), and run it (a naive kernel passes every gate;
# its scale-twice twin is caught, shrunk and replayed).
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
cd "$work" && exec "$work/build/check_my_kernel"
