#!/usr/bin/env python3
"""Capacity on paper: what a workload needs, from bench/results/*.json.

  tools/capacity.py [--results DIR] [--pipeline FILE] [--cores N] [--check] [--json]

The model is CPU-seconds per unit of work, each from a component benchmark
(stages: seg-loadgen, kafka-local, seg-ingest and the segmenters' work
beyond their kernels, as processes; store_traffic: seg-store's event
writes, flushes and compactions, evaluation reads and state puts;
segmenter, script_host, bots: the kernels; stats for Redis), times how much of each unit
a workload makes per event (its traffic shape), plus the CPU per second some
processes spend whatever the rate. docs/capacity.md explains every figure
and assumption.

Check (--check): the same model on this machine's traffic (seg-loadgen's
shape, counted by the pipeline benchmark) predicts the pipeline benchmark's
sustained rate as (cores - fixed CPU per second) / (CPU-seconds per event
summed over every process); exits 1 when the prediction is more than 20%
off the measured rate. The pipeline's rate is only compared against, never
an input.

Exit codes: 0 ok, 1 check outside 20%, 2 a result file missing or malformed.
Standard library only.
"""
import argparse
import json
import math
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOLERANCE = 0.20

# Keys each component benchmark must provide (bench/results/NAME.json, "figures").
REQUIRED = {
    "ingest": ["produce_events_per_cpu_s", "stored_sst_bytes_per_event"],
    "store": ["put_cells_per_cpu_s_thrift", "multiget_rows_per_cpu_s_thrift", "cells_per_row"],
    "store_traffic": ["event_put_server_us_per_cell", "flush_compaction_us_per_cell",
                      "read_server_us_per_user", "read_server_us_per_cell",
                      "read_client_us_per_user", "read_client_us_per_cell",
                      "state_put_server_us_per_evaluation", "state_put_client_us_per_evaluation"],
    "stages": ["ingest_loadgen_cpu_us_per_event", "ingest_ingest_cpu_us_per_event"],
    "segmenter": ["segmentations_per_s_per_core_with_decode", "hll_updates_per_redis_cpu_s"],
    "stats": ["redis_mb_s16"],
    "bots": ["new_observe_row_ns"],
    "pipeline": ["sustained_events_per_s"],
}
RESOURCES = ["kafka_partitions", "kafka_brokers", "hbase_region_servers",
             "storage_bytes_per_event", "storage_tb", "segmenter_cores", "redis_shards",
             "redis_memory_gb", "network_gbit_s"]


class ResultError(Exception):
    pass


def load_results(directory, pipeline=None):
    """{name: json} for every REQUIRED benchmark (and *_real.json when present);
    `pipeline`: another pipeline result to check against (a path)."""
    d = pathlib.Path(directory)
    out = {}
    for name, keys in REQUIRED.items():
        path = pathlib.Path(pipeline) if name == "pipeline" and pipeline else d / f"{name}.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ResultError(f"{path}: missing (run: tools/dev bench {name})")
        except (OSError, ValueError) as e:
            raise ResultError(f"{path}: not valid JSON ({e})")
        figures = data.get("figures") if isinstance(data, dict) else None
        if not isinstance(figures, dict):
            raise ResultError(f"{path}: no \"figures\" object")
        for k in keys:
            v = figures.get(k)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
                raise ResultError(f"{path}: figure \"{k}\" missing or not a positive number "
                                  f"(re-run: tools/dev bench {name})")
        out[name] = data
    for name in ("pipeline_real", "hbase_storage"):
        path = d / f"{name}.json"
        if path.exists():
            try:
                out[name] = json.loads(path.read_text())
            except ValueError as e:
                raise ResultError(f"{path}: not valid JSON ({e})")
    return out


def fig(results, name, key, default=None):
    v = results.get(name, {}).get("figures", {}).get(key)
    if v is None:
        v = results.get(name, {}).get("ratios", {}).get(key)
    return default if v is None else v


def unit_costs(r):
    """CPU-seconds per unit of work, each from one component benchmark."""
    c = {}
    st = lambda k: fig(r, "stages", k) / 1e6  # noqa: E731
    # The first stages as processes at fixed rates (bench stages, fitted
    # cores = a x rate + b): seg-loadgen; kafka-local taking the events,
    # serving them to ingest and taking its notices; seg-ingest.
    c["loadgen_event"] = st("ingest_loadgen_cpu_us_per_event")
    # (kafka-local's a may be 0: all its cost per second.)
    c["kafka_ingest_event"] = fig(r, "stages", "ingest_kafka_cpu_us_per_event", 0.0) / 1e6
    c["ingest_event"] = st("ingest_ingest_cpu_us_per_event")
    # seg-store's side of an event write, its flushes and compactions:
    # store_traffic's 2M events (the stage's 10-s windows catch a compaction
    # or miss it; its fit moved 6.6-10.2 us between runs).
    c["store_put_event"] = (fig(r, "store_traffic", "event_put_server_us_per_cell") +
                            fig(r, "store_traffic", "flush_compaction_us_per_cell")) / 1e6
    # Their CPU per second whatever the rate (b; a negative fit is taken as 0).
    c["fixed_cores"] = {p: max(0.0, fig(r, "stages", f"ingest_{p}_fixed_cores", 0.0))
                        for p in ("loadgen", "kafka", "ingest")}
    # One Kafka message produced and consumed, client + mock broker, for the
    # segmenters' notices and results (ingest_bench's producer).
    c["kafka_message"] = 1.0 / fig(r, "ingest", "produce_events_per_cpu_s")
    # An evaluation's store calls (store_traffic_bench: seg-loadgen's users
    # written in ingest batches): the two-row multi-get, server and client,
    # fitted per user and per event cell returned; the state put.
    tr = lambda k: fig(r, "store_traffic", k) / 1e6  # noqa: E731
    c["read_user_server"] = tr("read_server_us_per_user")
    c["read_cell_server"] = tr("read_server_us_per_cell")
    c["read_user_client"] = tr("read_client_us_per_user")
    c["read_cell_client"] = tr("read_client_us_per_cell")
    c["state_put_server"] = tr("state_put_server_us_per_evaluation")
    c["state_put_client"] = tr("state_put_client_us_per_evaluation")
    # A cell of an old, compacted row (store_bench: rows of 200 cells written
    # at once, client + server): production's 60-day rows are mostly this.
    c["store_read_cell_compacted"] = 1.0 / (fig(r, "store", "multiget_rows_per_cpu_s_thrift") *
                                            fig(r, "store", "cells_per_row"))
    # Scripts + decoding of one user's row (20 scripts, 200-event rows).
    c["segmentation_200"] = 1.0 / fig(r, "segmenter", "segmentations_per_s_per_core_with_decode")
    # One HLL add: the writer's CPU (grouping, FCALL) and Redis's.
    c["hll_add_redis"] = 1.0 / fig(r, "segmenter", "hll_updates_per_redis_cpu_s")
    c["hll_add_writer"] = 1.0 / fig(r, "segmenter", "hll_updates_per_writer_cpu_s", 13.85e6)
    # The bot blacklist's look at the row a segmentation read (bot_bench:
    # wall time per ObserveRow on shared cores, taken as CPU).
    c["bot_observe_row"] = fig(r, "bots", "new_observe_row_ns") / 1e9
    # What the segmenters and kafka-local spend per notice and per second
    # beyond the kernels above (bench stages, segment stage).
    c.update(segment_stage_fits(r, c))
    return c


def fit_line(points):
    """Least squares y = a * x + b over [(x, y)], a >= 0 (as bench/stages.py)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    a = max(0.0, sum((x - mx) * (y - my) for x, y in points) / var) if var else 0.0
    return a, my - a * mx


def fit_plane(points):
    """Least squares y = a1 * x1 + a2 * x2 + b over [(x1, x2, y)] (normal
    equations, Cramer's rule); None when x1 and x2 do not vary apart."""
    n = len(points)
    m1 = sum(p[0] for p in points) / n
    m2 = sum(p[1] for p in points) / n
    my = sum(p[2] for p in points) / n
    s11 = sum((p[0] - m1) ** 2 for p in points)
    s22 = sum((p[1] - m2) ** 2 for p in points)
    s12 = sum((p[0] - m1) * (p[1] - m2) for p in points)
    s1y = sum((p[0] - m1) * (p[2] - my) for p in points)
    s2y = sum((p[1] - m2) * (p[2] - my) for p in points)
    det = s11 * s22 - s12 * s12
    if n < 4 or det <= 1e-9 * s11 * s22:
        return None
    a1 = (s1y * s22 - s2y * s12) / det
    a2 = (s2y * s11 - s1y * s12) / det
    return a1, a2, my - a1 * m1 - a2 * m2


def fit_notice_and_segmentation(points):
    """cores = a_notice x notices/s + a_seg x segmentations/s + b over
    [(notices, segmentations, cores)], both a >= 0: a negative one is
    dropped and the other fitted alone."""
    plane = fit_plane(points)
    if plane and plane[0] >= 0 and plane[1] >= 0:
        return plane
    if plane and plane[0] < 0:
        a, b = fit_line([(s, y) for _, s, y in points])
        return 0.0, a, b
    a, b = fit_line([(n, y) for n, _, y in points])
    return a, 0.0, b


def segment_stage_fits(r, c):
    """The segment stage of bench stages ran the seg-segmenters in the local
    stack at fixed rates, counting notices, segmentations and cells read, in
    two configurations with different segmentations per notice. Of the
    segmenters' CPU, the kernels other benchmarks measure (scripts,
    blacklist, HLL writer, store client) are taken out; the rest (polling,
    notices, batching, results, offsets, metrics) is fitted per notice, per
    segmentation and per second. Of kafka-local's, what the ingest stage's
    fit and the results produced account for is taken out; the rest (serving
    the segmenters' group its notices) likewise. None of the pipeline
    benchmark's figures."""
    rows = r.get("stages", {}).get("steps", {}).get("segment") or []
    keys = ("events_per_s", "notices_per_s", "segmentations_per_s", "cells_read_per_s",
            "segmenter_cores", "kafka_cores")
    rows = [x for x in rows if all(isinstance(x.get(k), (int, float)) for k in keys)]
    if len({x["notices_per_s"] for x in rows}) < 2:
        raise ResultError("stages.json: no segment stage with two rates or more "
                          "(re-run: tools/dev bench stages)")
    seg_pts, kafka_pts = [], []
    for x in rows:
        sg, cells = x["segmentations_per_s"], x["cells_read_per_s"]
        kernels = (sg * (c["read_user_client"] + c["state_put_client"] + c["bot_observe_row"] +
                         5 * c["hll_add_writer"]) +
                   cells * (c["read_cell_client"] +
                            c["segmentation_200"] * LOCAL_SCRIPTS / 20.0 / 200.0))
        seg_pts.append((x["notices_per_s"], sg, x["segmenter_cores"] - kernels))
        kafka_known = (c["kafka_ingest_event"] * x["events_per_s"] + c["fixed_cores"]["kafka"] +
                       c["kafka_message"] * sg)
        kafka_pts.append((x["notices_per_s"], sg, x["kafka_cores"] - kafka_known))
    seg_n, seg_s, seg_b = fit_notice_and_segmentation(seg_pts)
    kafka_n, kafka_s, kafka_b = fit_notice_and_segmentation(kafka_pts)
    return {"segmenter_notice": seg_n, "segmenter_segmentation": seg_s,
            "segmenter_fixed_cores": max(0.0, seg_b),
            "kafka_notice": kafka_n, "kafka_segmentation": kafka_s,
            "kafka_segmenters_fixed_cores": max(0.0, kafka_b)}


# The pipeline runs the shipped scripts/ (10 scripts); the row length its
# segmenters read per evaluation, counted in a product-configuration run
# (bench/pipeline.py, cells_read_per_s / segmented_per_s; docs/capacity.md).
LOCAL_SCRIPTS = 10
LOCAL_CELLS_PER_READ = 23  # 22.0 and 23.9 at the sustained steps, 2026-12-05


def local_shape(r):
    """seg-loadgen's traffic as the pipeline benchmark counted it (its product
    configuration at the sustained step): notices and segmentations per event.
    Counts, not timings: the rate itself is not used."""
    steps = r["pipeline"].get("detail", {}).get("product", {}).get("steps", [])
    best = [s for s in steps if s.get("sustained")]
    if not best:
        raise ResultError("pipeline.json: no sustained step in detail.product.steps")
    s = max(best, key=lambda x: x["rate"])
    events = max(s["ingest_per_s"], 1.0)
    notices = max(s["notices_per_s"], 1.0)
    segmented = max(s["segmented_per_s"], 1.0)
    # Cells per read: counted by the segmenters (seg_segmenter_event_cells_read_total)
    # when the run has it; else LOCAL_CELLS_PER_READ, measured so (docs/capacity.md).
    cells = s.get("cells_read_per_s")
    return {
        "notices_per_event": notices / events,
        "segmentations_per_event": segmented / events,
        "cells_per_read": cells / segmented if cells else LOCAL_CELLS_PER_READ,
        "scripts": LOCAL_SCRIPTS,
        "hll_adds_per_segmentation": 5,  # segmenter_bench's draw (5 segment-days)
        "results_per_segmentation": 1,
    }


def cpu_per_event(c, shape, read_cell=None):
    """CPU-seconds per event, by process part, for a traffic shape.
    read_cell: the server's CPU per event cell read (default: young rows,
    store_traffic's; production passes compacted rows' from store_bench)."""
    seg = shape["segmentations_per_event"]
    cells = shape["cells_per_read"]
    # script_host_bench: 20 scripts over 200-event rows; the cost scales with both.
    scripts = (c["segmentation_200"] * shape["scripts"] / 20.0 * min(cells, 2000) / 200.0)
    cell_server = c["read_cell_server"] if read_cell is None else read_cell
    per = {
        "loadgen": c["loadgen_event"],
        # kafka-local's events in and out and the notices in (bench stages).
        "kafka_events": c["kafka_ingest_event"],
        "ingest": c["ingest_event"],
        "store_event_writes": c["store_put_event"],
        # kafka-local serving the segmenters their notices (segment stage),
        # and a result produced (a Kafka message, ingest_bench).
        "kafka_notices_results": (c["kafka_notice"] * shape["notices_per_event"] +
                                  c.get("kafka_segmentation", 0.0) * seg +
                                  c["kafka_message"] * seg * shape["results_per_segmentation"]),
        # The segmenters' work per notice and per segmentation beyond the
        # kernels (segment stage).
        "segmenter_notices": (c["segmenter_notice"] * shape["notices_per_event"] +
                              c.get("segmenter_segmentation", 0.0) * seg),
        "store_evaluation_reads": seg * (c["read_user_server"] + cell_server * cells),
        "store_state_puts": seg * c["state_put_server"],
        "segmenter_store_client": seg * (c["read_user_client"] + c["read_cell_client"] * cells +
                                         c["state_put_client"]),
        "segmenter_scripts": scripts * seg,
        "bot_observe_row": c["bot_observe_row"] * seg,
        "hll_writer": c["hll_add_writer"] * shape["hll_adds_per_segmentation"] * seg,
        "redis": c["hll_add_redis"] * shape["hll_adds_per_segmentation"] * seg,
    }
    return per


def check(r, cores):
    c = unit_costs(r)
    shape = local_shape(r)
    per = cpu_per_event(c, shape)
    fixed_cores = dict(c["fixed_cores"], segmenter=c["segmenter_fixed_cores"],
                       kafka_segmenters=c["kafka_segmenters_fixed_cores"])
    total = sum(per.values())
    fixed = sum(fixed_cores.values())
    # On a shared machine, the cores other work took during the pipeline's
    # sustained step (measured beside it, not the pipeline's own CPU) are
    # not the pipeline's to use.
    neighbours = fig(r, "pipeline", "sustained_neighbour_cores", 0.0)
    # cores = rate x CPU per event + CPU per second whatever the rate.
    predicted = (cores - neighbours - fixed) / total
    measured = fig(r, "pipeline", "sustained_events_per_s")
    # Diagnosis only (not an input): the pipeline's own CPU per event by
    # process at half its sustained rate.
    pf = r["pipeline"].get("figures", {})
    half = pf.get("half_rate_events_per_s")
    seen = {k[len("cpu_share_"):]: round(v / half * 1e6, 2) for k, v in pf.items()
            if k.startswith("cpu_share_") and isinstance(v, (int, float)) and half}
    # Diagnosis only: the model's cores at the pipeline's half rate and at
    # its sustained rate beside the pipeline's own (its CPU shares, and the
    # cores its processes used at the sustained step when recorded).
    at = {}
    if half:
        at["half_rate"] = {"model_cores": round(half * total + fixed, 3),
                           "pipeline_cores": round(sum(
                               v for k, v in pf.items() if k.startswith("cpu_share_")), 3)}
    if pf.get("sustained_pipeline_cores"):
        at["sustained"] = {"model_cores": round(measured * total + fixed, 3),
                           "pipeline_cores": pf["sustained_pipeline_cores"]}
    return {"cores_at_the_pipeline_rates": at,"cpu_us_per_event": {k: round(v * 1e6, 2) for k, v in per.items()},
            "fixed_cores": {k: round(v, 3) for k, v in fixed_cores.items()},
            "pipeline_cpu_us_per_event_at_half_rate": seen,
            "cpu_us_per_event_total": round(total * 1e6, 2), "cores": cores,
            "neighbour_cores": neighbours,
            "shape": {k: round(v, 3) for k, v in shape.items()},
            "predicted_events_per_s": round(predicted), "measured_events_per_s": measured,
            "predicted_over_measured": round(predicted / measured, 3)}


# ------------------------------------------------------------ production sizing

# ASSUMPTIONS for production hardware and operating margins (docs/capacity.md).
HW = {
    "utilisation": 0.6,          # plan CPU at 60% of cores at peak
    "rs_cores": 16,              # cores per HBase region server
    "rs_tb": 8.0,                # TB of HFiles (after replication) per region server
    "hbase_cpu_factor": 1.0,     # HBase CPU per cell vs seg-store (replaced by the real run)
    "hdfs_replication": 3,
    "region_gb": 10,             # HBase region size
    "broker_cores": 16,
    "broker_mb_s": 150,          # MB/s of produce+replication writes per broker disk set
    "kafka_rf": 3,
    "kafka_retention_days": 3,
    "partition_mb_s": 5,         # sustained MB/s per partition (consumer-side headroom)
    "redis_shard_gb": 25,        # memory per Redis Cluster shard (primary)
    "redis_shard_cpu": 0.5,      # one core per shard, planned at 50%
    "event_bytes": 300,          # an event on the wire / in Kafka (protobuf + key)
    "notice_bytes": 40,
    "result_bytes": 120,
    "cell_read_bytes": 150,      # a stored event read back (Thrift2 cell, value + qualifier)
    "hll_shards": 16,            # stats.shards (production-example.yaml)
    "hll_dense_bytes": 14384,    # MEMORY USAGE of a dense key (docs/hyperloglog.md)
}

WORKLOADS = {
    # The system this product follows: 5.5B events/day, 100k/s peak, 60 days
    # kept, hundreds of segments (300), 100M users (assumed).
    "follows_5.5B_per_day": {"events_per_day": 5.5e9, "peak_events_per_s": 100e3,
                             "retention_days": 60, "segments": 300, "users": 100e6,
                             "hll_days": 60},
    # 1M events/s sustained peak (~43B/day at a 2x peak/mean), same shape.
    "1M_events_per_s": {"events_per_day": 43.2e9, "peak_events_per_s": 1e6,
                        "retention_days": 60, "segments": 300, "users": 300e6,
                        "hll_days": 60},
    # 1B users, 10 events per user per day, 3x peak/mean, 1,000 segments.
    "1B_users": {"events_per_day": 10e9, "peak_events_per_s": 350e3, "retention_days": 60,
                 "segments": 1000, "users": 1e9, "hll_days": 60},
}

# Production traffic shape (ASSUMPTION; docs/capacity.md): ingest batches
# dedupe a page load's burst into one notice per user and batch (~1/3 of
# events, as seg-loadgen's), the skip cache and read policy leave ~1/2 of
# notices to segment (the pipeline's product configuration), rows of ~200
# events are read, 5 segment-day adds per segmentation.
PROD_SHAPE = {"notices_per_event": 0.35, "segmentations_per_event": 0.175,
              "cells_per_read": 200, "hll_adds_per_segmentation": 5,
              "results_per_segmentation": 1}


def prod_shape(w):
    """One script per segment (ASSUMPTION), the rest as PROD_SHAPE."""
    return dict(PROD_SHAPE, scripts=w["segments"])


def hbase_factor(r):
    """HBase+Thrift2 CPU per event over seg-store's, from the real and mock
    pipeline runs' CPU shares (same harness) when both exist, else None."""
    real, mock = r.get("pipeline_real", {}), r.get("pipeline", {})
    rf, mf = real.get("figures", {}), mock.get("figures", {})
    hb = (rf.get("cpu_share_hbase") or 0) + (rf.get("cpu_share_hbase_thrift") or 0)
    rr, mr = rf.get("half_rate_events_per_s"), mf.get("half_rate_events_per_s")
    st = mf.get("cpu_share_store")
    if hb and rr and mr and st:
        return (hb / rr) / (st / mr)
    return None


def storage_bytes_per_event(r):
    hb = fig(r, "hbase_storage", "hbase_hfile_bytes_per_event")
    if isinstance(hb, (int, float)) and hb > 0:
        return hb, "real HBase HFiles (hbase_storage.json)"
    return (fig(r, "ingest", "stored_sst_bytes_per_event"),
            "seg-store SSTs (ingest.json); ASSUMED for HBase, not measured there")


def size(r, w, shape):
    c = unit_costs(r)
    # 60-day rows are mostly compacted: their cells cost what store_bench's do.
    per = cpu_per_event(c, shape, read_cell=c["store_read_cell_compacted"])
    peak = w["peak_events_per_s"]
    u = HW["utilisation"]
    factor = hbase_factor(r) or HW["hbase_cpu_factor"]
    store_cpu = (per["store_event_writes"] + per["store_evaluation_reads"] +
                 per["store_state_puts"]) * factor
    seg_cpu = (per["segmenter_notices"] + per["segmenter_scripts"] + per["hll_writer"] +
               per["bot_observe_row"] + per["segmenter_store_client"])
    out = {}
    # Storage: bytes per event after compaction; HBase's HFiles when measured
    # (bench hbase_storage), else seg-store's SSTs as an assumption for HBase.
    bpe = storage_bytes_per_event(r)[0]
    stored = w["events_per_day"] * w["retention_days"] * bpe * HW["hdfs_replication"]
    out["storage_bytes_per_event"] = round(bpe, 1)
    out["storage_tb"] = round(stored / 1e12, 1)
    # The same with seg-store's compressed bytes (HBase with ZSTD/LZ4 and a
    # block encoding should land near it; not measured on HBase).
    out["storage_tb_compressed"] = round(stored / bpe * fig(
        r, "ingest", "stored_sst_bytes_per_event") / 1e12, 1)
    out["hbase_regions"] = math.ceil(stored / HW["hdfs_replication"] / (HW["region_gb"] * 1e9))
    out["hbase_region_servers"] = max(
        math.ceil(store_cpu * peak / (HW["rs_cores"] * u)),
        math.ceil(stored / 1e12 / HW["rs_tb"]), 3)
    out["store_cores"] = round(store_cpu * peak / u, 1)
    out["segmenter_cores"] = math.ceil(seg_cpu * peak / u)
    out["ingest_cores"] = math.ceil(c["ingest_event"] * peak / u)
    # Kafka: events, notices, results.
    mb_s = peak * (HW["event_bytes"] + shape["notices_per_event"] * HW["notice_bytes"] +
                   shape["segmentations_per_event"] * HW["result_bytes"]) / 1e6
    out["kafka_mb_s_in"] = round(mb_s, 1)
    kafka_cpu = c["kafka_message"] * (1 + shape["notices_per_event"] +
                                      shape["segmentations_per_event"]) * peak
    out["kafka_partitions"] = max(math.ceil(peak * HW["event_bytes"] / 1e6 / HW["partition_mb_s"]),
                                  out["segmenter_cores"], 12)
    out["kafka_brokers"] = max(math.ceil(mb_s * HW["kafka_rf"] / HW["broker_mb_s"]),
                               math.ceil(kafka_cpu / (HW["broker_cores"] * u)), 3)
    out["kafka_disk_tb"] = round(mb_s * 1e6 * 86400 * HW["kafka_retention_days"] *
                                 HW["kafka_rf"] / 1e12, 1)
    # Redis: one key per (segment, day, user shard); large segments are dense.
    users_per_key = w["users"] / HW["hll_shards"]
    key_bytes = HW["hll_dense_bytes"] if users_per_key >= 1700 else 2 * users_per_key + 80
    mem = w["segments"] * w["hll_days"] * HW["hll_shards"] * key_bytes
    redis_cpu = c["hll_add_redis"] * shape["hll_adds_per_segmentation"] * \
        shape["segmentations_per_event"] * peak
    out["redis_memory_gb"] = round(mem / 1e9, 1)
    out["redis_shards"] = max(math.ceil(mem / 1e9 / HW["redis_shard_gb"]),
                              math.ceil(redis_cpu / HW["redis_shard_cpu"]), 1)
    # Network at peak: Kafka in + replication + consumers, store writes (x3 on
    # HDFS), row reads, HLL adds (~40 B each).
    seg = shape["segmentations_per_event"]
    bytes_s = peak * (HW["event_bytes"] * (1 + HW["kafka_rf"] - 1 + 1) +  # in, replicas, ingest
                      HW["event_bytes"] * HW["hdfs_replication"] +
                      seg * shape["cells_per_read"] * HW["cell_read_bytes"] +
                      seg * shape["hll_adds_per_segmentation"] * 40 +
                      shape["notices_per_event"] * HW["notice_bytes"] * (HW["kafka_rf"] + 1) +
                      seg * HW["result_bytes"] * (HW["kafka_rf"] + 1))
    out["network_gbit_s"] = round(bytes_s * 8 / 1e9, 2)
    out["hbase_cpu_factor"] = round(factor, 2)
    return out


def render(chk, sizing, notes):
    lines = ["Check on this machine (model from the stages, store_traffic, ingest, segmenter, "
             "script_host, bots benches):"]
    for k, v in chk["cpu_us_per_event"].items():
        lines.append(f"  {k:<24} {v:8.2f} us CPU per event")
    lines.append(f"  {'total':<24} {chk['cpu_us_per_event_total']:8.2f} us CPU per event")
    lines.append("  fixed (cores whatever the rate): " +
                 ", ".join(f"{k} {v}" for k, v in chk["fixed_cores"].items()) +
                 f"; total {round(sum(chk['fixed_cores'].values()), 3)}")
    lines.append(f"  shape: {chk['shape']}")
    seen = chk["pipeline_cpu_us_per_event_at_half_rate"]
    if seen:
        lines.append("  pipeline's own CPU per event at half rate (diagnosis, not an input): " +
                     ", ".join(f"{k} {v}" for k, v in seen.items()) +
                     f"; total {round(sum(seen.values()), 2)} us")
    for k, v in chk["cores_at_the_pipeline_rates"].items():
        lines.append(f"  at the pipeline's {k.replace('_', ' ')} (diagnosis): model "
                     f"{v['model_cores']} cores, pipeline {v['pipeline_cores']}")
    lines.append(f"  predicted {chk['predicted_events_per_s']:,} events/s on {chk['cores']} cores "
                 f"less {chk['neighbour_cores']} taken by other work beside the run; "
                 f"pipeline measured {chk['measured_events_per_s']:,} "
                 f"(predicted/measured {chk['predicted_over_measured']})")
    lines.append("")
    names = list(sizing)
    lines.append(f"{'resource':<26}" + "".join(f"{n:>24}" for n in names))
    keys = list(next(iter(sizing.values())).keys())
    for k in keys:
        lines.append(f"{k:<26}" + "".join(f"{sizing[n][k]:>24,}" for n in names))
    lines += [""] + notes
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--cores", type=float, default=2.0, help="cores the pipeline run had")
    ap.add_argument("--pipeline", help="check against this pipeline result instead of "
                    "RESULTS/pipeline.json (e.g. bench/results/pipeline_shared.json)")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when the prediction is more than 20%% off the pipeline's")
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = ap.parse_args(argv)
    try:
        r = load_results(args.results, args.pipeline)
        chk = check(r, args.cores)
        sizing = {name: size(r, w, prod_shape(w)) for name, w in WORKLOADS.items()}
        notes = [f"storage bytes per event: {storage_bytes_per_event(r)[1]}",
                 "hbase_cpu_factor: " + ("real/mock pipeline CPU per event"
                                         if hbase_factor(r) else "ASSUMED 1.0 (no real run)")]
    except ResultError as e:
        print(f"capacity: {e}", file=sys.stderr)
        return 2
    except (KeyError, TypeError, ZeroDivisionError) as e:
        print(f"capacity: malformed results: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"check": chk, "workloads": sizing, "notes": notes}, indent=2))
    else:
        print(render(chk, sizing, notes))
    off = abs(chk["predicted_over_measured"] - 1.0)
    if args.check and off > TOLERANCE:
        print(f"capacity: prediction {off:.0%} off the measured pipeline rate "
              f"(limit {TOLERANCE:.0%})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
