#!/usr/bin/env bash
# tools/dev bench stages: seg-loadgen into kafka-local, then also through
# seg-ingest into seg-store, at fixed rates: CPU per event of each process
# (bench/stages.py has the method; for tools/capacity.py). tools/dev passes
# the JSON path as $1 and the release tree as SEG_BUILD_DIR.
set -euo pipefail
out="${1:?usage: stages.sh OUT.json [--rates R1,R2,...] [--seconds S]}"
shift
exec timeout 900 python3 "$(dirname "${BASH_SOURCE[0]}")/stages.py" \
  --build-dir "${SEG_BUILD_DIR:?}" --out "$out" "$@"
