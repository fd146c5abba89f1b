#!/usr/bin/env bash
# `make test-slurm`: a single-node Slurm cluster, a real `rlip zoo train --executor slurm`
# (tests/engines/slurm_check.py), then the cluster is shut down again, also on failure.
# Skips (exit 0, "SKIP: ...") only where Slurm cannot run: not root, or no apt-get to install it.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-python3}
"$here/slurm_cluster.sh" start
rc=$?
if [ $rc -eq 2 ]; then exit 0; fi
if [ $rc -ne 0 ]; then exit $rc; fi
trap '"$here/slurm_cluster.sh" stop' EXIT
"$PY" "$here/slurm_check.py"
