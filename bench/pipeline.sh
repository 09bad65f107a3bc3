#!/usr/bin/env bash
# tools/dev bench pipeline [--quick]: the whole local stack under seg-loadgen
# (bench/pipeline.py has the method). tools/dev passes the JSON path as $1 and
# the release tree as SEG_BUILD_DIR.
set -euo pipefail
out="${1:?usage: pipeline.sh OUT.json [--quick] [--users N] [--only product,no_skips,...]}"
shift
exec python3 "$(dirname "${BASH_SOURCE[0]}")/pipeline.py" --build-dir "${SEG_BUILD_DIR:?}" \
  --out "$out" "$@"
