#!/usr/bin/env bash
# tools/dev bench script_host: script_host_bench (Google Benchmark) into the
# {"figures": ...} form the report reads: segmentations/s of 20 scripts over
# 200-event users, budget instrumentation on/off, with and without decoding.
# $1: output JSON path; SEG_BENCH_BIN: directory of the bench binaries.
set -euo pipefail
out="${1:?usage: script_host.sh OUT.json}"
bin="${SEG_BENCH_BIN:?SEG_BENCH_BIN not set}"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
timeout 300 "$bin/script_host_bench" --benchmark_format=json >"$tmp"
python3 - "$tmp" "$out" <<'PY'
import json, re, sys
runs = json.load(open(sys.argv[1]))["benchmarks"]
figures, ratios = {}, {}
for b in runs:
    if "segmentations/s" in b:
        key = re.sub(r"[^a-z0-9]+", "_", b["name"].lower()).strip("_")
        figures[key + "_per_s"] = round(b["segmentations/s"])
    elif "ns/iteration" in b:
        key = re.sub(r"[^a-z0-9]+", "_", b["name"].lower()).strip("_")
        # kIsRate|kInvert: seconds per Lua loop iteration in the JSON.
        figures[key + "_ns_per_loop_iteration"] = round(b["ns/iteration"] * 1e9, 2)
on = figures.get("bm_segmentation_budget_1_users_8_per_s")
off = figures.get("bm_segmentation_budget_0_users_8_per_s")
if on and off:
    ratios["budget_on_over_off"] = on / off
notes = ("script_host_bench: 20 scripts (the shipped ones twice) over 200-event users, CPU time "
         "per segmentation; budget:1 = CPU-budget checks compiled in; users:8 = rows in cache.")
json.dump({"figures": figures, "ratios": ratios, "notes": notes}, open(sys.argv[2], "w"), indent=1)
PY
