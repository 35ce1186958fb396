# Sourced by the adapter end-to-end tests (check_external_*.sh), after they
# set src: finds a python3 with numpy (py), or exits 77 (skipped); puts the
# attncheck_adapter package on PYTHONPATH; makes a work folder (work) that
# goes when the test does.
py=""
for c in python3 /usr/bin/python3; do
  if "$c" -c "import numpy" 2>/dev/null; then py="$c"; break; fi
done
[ -n "$py" ] || { echo "skipped: no python3 with numpy (apt-get install python3-numpy)"; exit 77; }
export PYTHONPATH="$src/python${PYTHONPATH:+:$PYTHONPATH}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
