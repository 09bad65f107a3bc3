#!/usr/bin/env bash
# tools/dev bench pipeline_real [--quick]: the pipeline benchmark (pipeline.sh,
# bench/pipeline.py) with the stack on a real Kafka broker and a real HBase
# with its Thrift2 gateway (local-stack.sh --real).
set -euo pipefail
out="${1:?usage: pipeline_real.sh OUT.json [--quick] [--users N] [--only product,...]}"
shift
exec python3 "$(dirname "${BASH_SOURCE[0]}")/pipeline.py" --build-dir "${SEG_BUILD_DIR:?}" \
  --out "$out" --real "$@"
