#!/usr/bin/env python3
"""Writes the Grafana dashboard of every binary's metrics (docs/metrics.md).

  python3 tools/grafana/dashboard.py > tools/grafana/segengine.json

Edit the panels here, not the JSON; tests/metrics_doc_test.py checks the
JSON is this script's output and that every metric a panel queries is
registered in the code and listed in docs/metrics.md.
"""
import json
import sys

DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def rate(metric, by="", window="1m"):
    inner = f"rate({metric}[{window}])"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def p(q, metric, by="", window="5m"):
    keep = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({keep}) (rate({metric}_bucket[{window}])))"


# (row title, [(panel title, unit, [(expr, legend)])])
ROWS = [
    ("Ingest (seg-ingest)", [
        ("Events in / written", "ops", [
            (rate("seg_ingest_events_in_total"), "in"),
            (rate("seg_ingest_events_written_total"), "written")]),
        ("Dead letters by reason", "ops", [
            (rate("seg_ingest_deadletters_total", "reason", "5m"), "{{reason}}")]),
        ("Consumer lag (events)", "short", [
            ("sum(seg_ingest_consumer_lag_messages)", "messages")]),
        ("Batch latency p99", "s", [
            (p(0.99, "seg_ingest_batch_latency_seconds"), "batch"),
            (p(0.99, "seg_ingest_poll_latency_seconds"), "poll"),
            (p(0.99, "seg_ingest_decode_latency_seconds"), "decode"),
            (p(0.99, "seg_ingest_store_latency_seconds"), "store put"),
            (p(0.99, "seg_ingest_produce_latency_seconds", "what"), "produce {{what}}")]),
        ("Batch size p50", "short", [
            (p(0.5, "seg_ingest_batch_events"), "events"),
            (p(0.5, "seg_ingest_batch_rows"), "rows")]),
        ("Retries and pauses", "ops", [
            (rate("seg_ingest_store_retries_total", window="5m"), "store retries"),
            (rate("seg_ingest_kafka_retries_total", window="5m"), "kafka retries"),
            (rate("seg_ingest_commit_failures_total", window="5m"), "commit failures"),
            (rate("seg_ingest_consumer_pauses_total", window="5m"), "consumer pauses")]),
        ("Watermark lag", "s", [
            ("max(seg_ingest_watermark_lag_seconds)", "lag"),
            (rate("seg_ingest_watermark_failures_total", window="5m"), "failed rounds/s")]),
        ("Change notices (bridge)", "short", [
            ("sum(seg_bridge_pending_notices)", "pending"),
            (rate("seg_bridge_notices_produced_total"), "produced/s"),
            (rate("seg_bridge_notices_delivered_total"), "delivered/s"),
            (rate("seg_bridge_delivery_failures_total", window="5m"), "failures/s"),
            (rate("seg_bridge_notices_dropped_total", window="5m"), "dropped/s"),
            (p(0.99, "seg_bridge_publish_latency_seconds"), "publish p99 (s)")]),
    ]),
    ("Segmenters (seg-segmenter)", [
        ("Notices and results", "ops", [
            (rate("seg_segmenter_notices_total"), "notices"),
            (rate("seg_segmenter_results_total"), "results"),
            (rate("seg_segmenter_event_cells_read_total"), "event cells read")]),
        ("Decisions", "ops", [
            (rate("seg_segmenter_decisions_total", "decision"), "{{decision}}")]),
        ("Consumer lag (user-changes)", "short", [
            ("sum(seg_segmenter_consumer_lag)", "notices")]),
        ("Event to result", "s", [
            (p(0.5, "seg_segmenter_event_to_result_seconds"), "p50"),
            (p(0.99, "seg_segmenter_event_to_result_seconds"), "p99"),
            (p(0.99, "seg_segmenter_dwell_seconds"), "dwell p99")]),
        ("Read policy waits", "s", [
            ("max(seg_segmenter_read_delay_seconds)", "read delay"),
            (p(0.5, "seg_segmenter_follow_up_wait_seconds"), "follow-up wait p50"),
            (p(0.99, "seg_segmenter_follow_up_wait_seconds"), "follow-up wait p99")]),
        ("Batch latency p99", "s", [
            (p(0.99, "seg_segmenter_batch_seconds"), "batch"),
            (p(0.99, "seg_segmenter_store_seconds"), "store multi-get"),
            (p(0.99, "seg_segmenter_stats_seconds"), "stats write")]),
        ("Failures", "ops", [
            (rate("seg_segmenter_batch_failures_total", window="5m"), "batch failures"),
            (rate("seg_segmenter_bad_cells_total", window="5m"), "bad cells"),
            (rate("seg_segmenter_stale_memberships_total", window="5m"), "stale memberships")]),
        ("Skip cache", "ops", [
            (rate("seg_segmenter_skip_cache_hits_total"), "hits"),
            (rate("seg_segmenter_skip_cache_misses_total"), "misses"),
            (rate("seg_segmenter_skip_cache_evictions_total"), "evictions")]),
        ("Bots", "ops", [
            (rate("seg_segmenter_bot_blacklisted_total", window="5m"), "blacklisted (rate)"),
            (rate("seg_segmenter_bot_row_blacklisted_total", "signal", "5m"),
             "blacklisted ({{signal}})"),
            (rate("seg_segmenter_bot_skipped_notices_total"), "skipped notices"),
            (rate("seg_segmenter_bot_exits_total", window="5m"), "BOT results"),
            (rate("seg_segmenter_bot_evictions_total", window="5m"), "window evictions")]),
        ("Schedule (window exits)", "s", [
            ("max(seg_segmenter_due_hold_seconds)", "hold"),
            (p(0.99, "seg_segmenter_schedule_lateness_seconds"), "lateness p99"),
            (rate("seg_segmenter_due_hold_capped_total", window="5m"), "capped rounds/s"),
            (rate("seg_segmenter_due_scan_failures_total", window="5m"), "scan failures/s")]),
        ("Backfill", "short", [
            ("max(seg_segmenter_backfill_running)", "running"),
            ("max(seg_segmenter_backfill_job_users)", "job users"),
            (rate("seg_segmenter_backfill_rows_scanned_total"), "rows scanned/s"),
            (rate("seg_segmenter_backfill_users_published_total"), "users published/s")]),
    ]),
    ("Scripts", [
        ("Runtime p99 by script", "s", [
            (p(0.99, "seg_segmenter_script_runtime_seconds", "script"), "{{script}}")]),
        ("Errors by script and kind", "ops", [
            (rate("seg_segmenter_script_errors_total", "script, kind", "5m"),
             "{{script}} {{kind}}")]),
        ("Quarantines and reloads", "short", [
            ("sum by (script) (increase(seg_segmenter_script_quarantined_total[1h]))",
             "quarantined {{script}}"),
            ("sum by (result) (increase(seg_segmenter_script_reloads_total[1h]))",
             "reloads {{result}}")]),
    ]),
    ("Segment counts (HyperLogLog writer, Redis)", [
        ("Writer throughput", "ops", [
            (rate("seg_stats_writer_keys_total"), "HLL adds"),
            (rate("seg_stats_writer_calls_total"), "Redis calls")]),
        ("Writer problems", "ops", [
            (rate("seg_stats_writer_errors_total", window="5m"), "errors"),
            (rate("seg_stats_writer_retries_total", window="5m"), "retries"),
            (rate("seg_stats_writer_reloads_total", window="5m"), "function reloads"),
            (rate("seg_stats_writer_epoch_changes_total", window="5m"), "epoch changes"),
            (rate("seg_segmenter_stats_recounts_total", window="5m"), "recounted users")]),
        ("Writer batch latency p99", "s", [
            (p(0.99, "seg_stats_writer_batch_latency_seconds"), "batch")]),
        ("Redis latency p99", "s", [
            (p(0.99, "seg_redis_command_latency_seconds", "op"), "{{op}}")]),
        ("Redis errors", "ops", [
            (rate("seg_redis_errors_total", "kind", "5m"), "{{kind}}"),
            (rate("seg_redis_reconnects_total", window="5m"), "reconnects"),
            (rate("seg_redis_cluster_redirects_total", "kind", "5m"), "redirect {{kind}}"),
            (rate("seg_redis_cluster_slot_refreshes_total", window="5m"), "slot refreshes")]),
    ]),
    ("Store (seg-store, Thrift2 clients)", [
        ("Cells written / rows read", "ops", [
            (rate("seg_store_put_cells_total"), "cells written"),
            (rate("seg_store_get_rows_total"), "rows read"),
            (rate("seg_store_packed_folds_total", window="5m"), "packed folds")]),
        ("Write latency p99", "s", [
            (p(0.99, "seg_store_write_latency_seconds"), "commit")]),
        ("Server calls and errors", "ops", [
            (rate("seg_store_server_calls_total"), "calls"),
            (rate("seg_store_server_errors_total", window="5m"), "errors")]),
        ("Server connections", "short", [
            ("sum(seg_store_server_connections)", "open"),
            ("sum by (reason) (increase(seg_store_server_connections_closed_total[5m]))",
             "closed {{reason}} (5m)")]),
        ("Thrift client errors", "ops", [
            (rate("seg_store_thrift_errors_total", window="5m"), "transport errors"),
            (rate("seg_store_thrift_retries_total", window="5m"), "retries"),
            (rate("seg_store_thrift_scanner_reopens_total", window="5m"), "scans resumed")]),
    ]),
    ("Kafka (all clients)", [
        ("Produced / consumed", "ops", [
            (rate("seg_kafka_produced_messages_total"), "produced"),
            (rate("seg_kafka_consumed_messages_total", "group"), "consumed {{group}}")]),
        ("Consumer lag by group", "short", [
            ("sum by (group) (seg_kafka_consumer_lag_messages)", "{{group}}")]),
        ("Failures", "ops", [
            (rate("seg_kafka_delivery_failures_total", window="5m"), "delivery failures"),
            (rate("seg_kafka_consumer_errors_total", "group", "5m"), "consumer errors {{group}}")]),
        ("Producer queue-full wait p99", "s", [
            (p(0.99, "seg_kafka_produce_queue_full_wait_seconds"), "wait")]),
    ]),
    ("Analyst queries (seg-stats)", [
        ("Calls by method and code", "ops", [
            (rate("seg_stats_service_calls_total", "method, code"), "{{method}} {{code}}")]),
        ("Latency p99 by method", "s", [
            (p(0.99, "seg_stats_service_latency_seconds", "method"), "{{method}}")]),
        ("Query time by phase", "s", [
            (rate("seg_stats_query_phase_seconds_total", "phase"), "{{phase}} (s/s)")]),
    ]),
]


def build():
    panels, next_id, y = [], 1, 0
    for row_title, row_panels in ROWS:
        panels.append({"type": "row", "title": row_title, "id": next_id, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        next_id += 1
        y += 1
        for i, (title, unit, targets) in enumerate(row_panels):
            panels.append({
                "type": "timeseries", "title": title, "id": next_id, "datasource": DS,
                "gridPos": {"h": 8, "w": 8, "x": (i % 3) * 8, "y": y + (i // 3) * 8},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                "targets": [{"refId": chr(ord("A") + j), "datasource": DS, "expr": expr,
                             "legendFormat": legend}
                            for j, (expr, legend) in enumerate(targets)],
            })
            next_id += 1
        y += ((len(row_panels) + 2) // 3) * 8
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                      "pluginId": "prometheus", "pluginName": "Prometheus"}],
        "title": "segengine",
        "uid": "segengine",
        "description": "Every binary's metrics (docs/metrics.md); generated by "
                       "tools/grafana/dashboard.py",
        "tags": ["segengine"],
        "timezone": "utc",
        "schemaVersion": 37,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []},
        "panels": panels,
    }


if __name__ == "__main__":
    json.dump(build(), sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")
