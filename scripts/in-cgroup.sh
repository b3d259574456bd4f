#!/usr/bin/env bash
# in-cgroup.sh CGROUP_DIR CMD...: moves this shell into the cgroup (v1 or v2) and runs CMD there, so
# CMD and everything it starts live under the cgroup's CPU quota. Used by the cold-start
# benchmark to give a function the CPU share Lambda gives it.
set -euo pipefail
echo $$ >"$1/cgroup.procs"
shift
exec "$@"
