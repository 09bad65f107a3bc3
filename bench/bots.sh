#!/usr/bin/env bash
# tools/dev bench bots: the bot blacklist's precision and recall on
# seg-loadgen traffic (3,000 users, 1,500 events/s, 6 simulated minutes, seeds
# 1-3), the old rate rule against BotOptions' rate + row rules in the same run
# (bench/bot_bench.cc). Deterministic: the figures change only with the code.
# $1: output JSON path; SEG_BENCH_BIN: directory of the bench binaries.
set -euo pipefail
out="${1:?usage: bots.sh OUT.json}"
shift
bin="${SEG_BENCH_BIN:?SEG_BENCH_BIN not set}"
[[ -x "$bin/bots_bench" ]] || { echo "bots.sh: $bin/bots_bench not built" >&2; exit 2; }
timeout 600 "$bin/bots_bench" --users 3000 --rate 1500 --minutes 6 --seeds 1,2,3 \
  --json-out "$out" "$@" >/dev/null
