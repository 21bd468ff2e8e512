#!/usr/bin/env python3
"""Writes ecrm's Grafana dashboards (dashboards/*.json) from the panel lists below.

    deploy/grafana/generate.py           rewrite the JSON files
    deploy/grafana/generate.py --check   fail if a JSON file differs from what this writes

Edit the panels here, not the JSON. Every metric a query names must be exported by the
engines: the test "deploy: dashboards and rules name exported metrics"
(scripts/check-deploy-metrics.py) scrapes a running suite and checks. Queries use the
Prometheus job names of deploy/prometheus/prometheus.yml (one job per engine).
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "prometheus", "uid": "${datasource}"}
ENGINES = ["infostore", "segmentation", "personalisation", "broadcast", "transaction"]
CACHED = ["infostore", "personalisation", "broadcast"]  # engines that open the Redis profile cache
OUTBOX = ["segmentation", "broadcast", "transaction"]  # engines with an event outbox and relay
# The SLIs' scope (deploy/prometheus/rules/slo.yml): the engines' API, no health checks,
# reflection or long-lived streams.
API = ('grpc_service!~"grpc[.]health[.]v1[.]Health|grpc[.]reflection[.]v1alpha[.]ServerReflection|unknown",'
       'grpc_method!~"WatchChanges|RecordEvents|StreamSegmentMembers"')
ERRORS = 'grpc_code=~"UNKNOWN|INTERNAL|UNAVAILABLE|DATA_LOSS|DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED"'


def target(expr, legend=""):
    return {"expr": expr, "legendFormat": legend}


def panel(title, targets, unit="short", kind="timeseries", description="", stack=False):
    p = {"type": kind, "title": title, "datasource": DS, "targets": targets,
         "fieldConfig": {"defaults": {"unit": unit}, "overrides": []}}
    if description:
        p["description"] = description
    if kind == "timeseries" and stack:
        p["fieldConfig"]["defaults"]["custom"] = {"stacking": {"mode": "normal"}, "fillOpacity": 30}
    return p


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def rpc_panels(job):
    sel = f'job="{job}",{API}'
    return [
        row("RPCs"),
        panel("RPC rate by method", [target(
            f'sum by (grpc_method) (rate(grpc_server_handled_total{{{sel}}}[$__rate_interval]))', "{{grpc_method}}")],
            "reqps"),
        panel("Errors by method and code (server-side)", [target(
            f'sum by (grpc_method, grpc_code) (rate(grpc_server_handled_total{{{sel},{ERRORS}}}[$__rate_interval]))',
            "{{grpc_method}} {{grpc_code}}")], "reqps"),
        panel("Client errors by method and code", [target(
            f'sum by (grpc_method, grpc_code) (rate(grpc_server_handled_total{{{sel},grpc_code!="OK",{ERRORS.replace("=~", "!~")}}}[$__rate_interval]))',
            "{{grpc_method}} {{grpc_code}}")], "reqps",
            description="Answers that are the caller's to act on: INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, …"),
        panel("Latency p99 by method", [target(
            f'histogram_quantile(0.99, sum by (grpc_method, le) (rate(grpc_server_handling_seconds_bucket{{{sel}}}[$__rate_interval])))',
            "{{grpc_method}}")], "s"),
        panel("Latency p50 by method", [target(
            f'histogram_quantile(0.5, sum by (grpc_method, le) (rate(grpc_server_handling_seconds_bucket{{{sel}}}[$__rate_interval])))',
            "{{grpc_method}}")], "s"),
        panel("SLO: server errors and RPCs over 250 ms (5m)", [
            target(f'job:ecrm_rpc_errors:ratio_rate5m{{job="{job}"}}', "errors (objective 0.1%)"),
            target(f'job:ecrm_rpc_slow:ratio_rate5m{{job="{job}"}}', "slower than 250 ms (objective 1%)")],
            "percentunit"),
        panel("In flight, worker queue and refusals", [
            target(f'sum(grpc_server_requests_in_flight{{job="{job}"}})', "RPCs in flight"),
            target(f'sum(ecrm_executor_queue_depth{{job="{job}"}})', "waiting for a worker"),
            target(f'sum(rate(ecrm_executor_rejected_total{{job="{job}"}}[$__rate_interval]))', "refused (queue full) /s")]),
    ]


def process_panels(job):
    return [
        row("Process and storage"),
        panel("CPU", [target(f'rate(process_cpu_seconds_total{{job="{job}"}}[$__rate_interval])', "{{instance}}")],
              "percentunit"),
        panel("Resident memory", [target(f'process_resident_memory_bytes{{job="{job}"}}', "{{instance}}")], "bytes"),
        panel("SQLite files and free disk", [
            target(f'ecrm_sqlite_file_size_bytes{{job="{job}"}}', "{{instance}} {{file}}"),
            target(f'ecrm_sqlite_filesystem_avail_bytes{{job="{job}"}}', "{{instance}} free")], "bytes",
            description="Only with an embedded SQLite database; PostgreSQL's disk is its server's to watch."),
    ]


def cache_panels(job):
    return [
        row("Profile cache (Redis)"),
        panel("Cache hit ratio", [target(
            f'sum(rate(ecrm_profile_cache_hits_total{{job="{job}"}}[$__rate_interval])) / '
            f'(sum(rate(ecrm_profile_cache_hits_total{{job="{job}"}}[$__rate_interval])) + '
            f'sum(rate(ecrm_profile_cache_misses_total{{job="{job}"}}[$__rate_interval])))', "hit ratio"),
            target(
            f'sum(rate(ecrm_profile_cache_local_hits_total{{job="{job}"}}[$__rate_interval])) / '
            f'(sum(rate(ecrm_profile_cache_hits_total{{job="{job}"}}[$__rate_interval])) + '
            f'sum(rate(ecrm_profile_cache_misses_total{{job="{job}"}}[$__rate_interval])))', "answered in-process")],
            "percentunit"),
        panel("Cache errors and breaker", [
            target(f'sum(rate(ecrm_profile_cache_errors_total{{job="{job}"}}[$__rate_interval]))', "errors /s"),
            target(f'max(ecrm_redis_breaker_state{{job="{job}"}})', "breaker (0 closed, 1 open, 2 half-open)")]),
    ]


def outbox_panels(job):
    return [
        row("Event outbox (to the information store)"),
        panel("Outbox depth", [target(f'ecrm_{job}_outbox_pending{{job="{job}"}}', "{{instance}} pending")]),
        panel("Outbox age (oldest pending event)",
              [target(f'ecrm_{job}_outbox_oldest_pending_age_seconds{{job="{job}"}}', "{{instance}}")], "s"),
        panel("Outbox delivery", [
            target(f'sum(rate(ecrm_{job}_outbox_delivered_total{{job="{job}"}}[$__rate_interval]))', "delivered /s"),
            target(f'sum(rate(ecrm_{job}_outbox_delivery_failures_total{{job="{job}"}}[$__rate_interval]))',
                   "failed calls /s"),
            target(f'sum(increase(ecrm_{job}_outbox_parked_total{{job="{job}"}}[$__rate_interval]))', "parked")]),
    ]


def engine_panels(job):
    if job == "infostore":
        return [row("Background tasks"),
                panel("Periodic task runs", [target(
                    f'sum by (task) (rate(ecrm_periodic_task_runs_total{{job="{job}"}}[$__rate_interval]))',
                    "{{task}}")], "ops")]
    if job == "segmentation":
        return [
            row("Change feed and segments"),
            panel("Feed lag", [target(f'ecrm_segmentation_feed_lag_seconds{{job="{job}"}}', "{{instance}}")], "s",
                  description="Seconds since the last instant before which every change the information store "
                              "committed is saved here; up to the heartbeat interval (5 s) while idle."),
            panel("Feed throughput", [
                target(f'sum(rate(ecrm_segmentation_feed_changes_total{{job="{job}"}}[$__rate_interval]))',
                       "changes /s"),
                target(f'sum(rate(ecrm_segmentation_feed_messages_total{{job="{job}"}}[$__rate_interval]))',
                       "messages /s"),
                target(f'sum(increase(ecrm_segmentation_feed_resyncs_total{{job="{job}"}}[$__rate_interval]))',
                       "resyncs")]),
            panel("Segment sizes", [target(f'max by (segment) (ecrm_segmentation_segment_members{{job="{job}"}})',
                                           "{{segment}}")]),
            panel("Segment entries and exits", [target(
                f'sum by (change) (rate(ecrm_segmentation_membership_changes_total{{job="{job}"}}[$__rate_interval]))',
                "{{change}}")], "ops"),
            panel("Triggered campaign messages", [
                target(f'sum by (outcome) (rate(ecrm_segmentation_triggered_messages_total{{job="{job}"}}'
                       f'[$__rate_interval]))', "{{outcome}}"),
                target(f'sum(rate(ecrm_segmentation_triggered_handover_failures_total{{job="{job}"}}'
                       f'[$__rate_interval]))', "hand-overs failed for now")], "ops",
                  description="Messages (one a customer) handed over to broadcast, refused by it for good (never "
                              "sent), dropped (campaign stopped); and hand-over rounds that failed and wait."),
            panel("Scored customers", [target(f'max by (score) (ecrm_segmentation_scored_customers{{job="{job}"}})',
                                              "{{score}}")]),
            panel("Score refit time", [target(f'max(ecrm_segmentation_score_refit_seconds{{job="{job}"}})', "refit"),
                                       target(f'max(ecrm_segmentation_score_fit_seconds{{job="{job}"}})', "model fit")],
                  "s"),
        ] + outbox_panels(job)
    if job == "personalisation":
        return [
            row("Rendering"),
            panel("Messages rendered", [target(
                f'sum(rate(ecrm_personalisation_messages_rendered_total{{job="{job}"}}[$__rate_interval]))',
                "rendered /s")], "ops"),
            panel("Render failures by reason", [target(
                f'sum by (reason) (rate(ecrm_personalisation_render_failures_total{{job="{job}"}}[$__rate_interval]))',
                "{{reason}}")], "ops"),
            panel("Customer reads by source", [target(
                f'sum by (source) (rate(ecrm_personalisation_customer_reads_total{{job="{job}"}}[$__rate_interval]))',
                "{{source}}")], "ops"),
        ]
    if job == "broadcast":
        return [
            row("Deliveries"),
            panel("Throughput by channel and state", [target(
                f'sum by (channel, state) (rate(ecrm_broadcast_deliveries_total{{job="{job}"}}[$__rate_interval]))',
                "{{channel}} {{state}}")], "ops", stack=True),
            panel("Suppressions by reason", [target(
                f'sum by (reason) (rate(ecrm_broadcast_suppressed_total{{job="{job}"}}[$__rate_interval]))',
                "{{reason}}")], "ops", stack=True),
            panel("Deliveries outbox: due now", [target(f'ecrm_broadcast_deliveries_due{{job="{job}"}}',
                                                        "{{instance}}")]),
            panel("Deliveries outbox: oldest due delivery", [target(
                f'ecrm_broadcast_deliveries_oldest_due_age_seconds{{job="{job}"}}', "{{instance}}")], "s"),
            panel("Channel send time p99", [target(
                f'histogram_quantile(0.99, sum by (channel, le) (rate(ecrm_broadcast_send_seconds_bucket{{job="{job}"}}[$__rate_interval])))',
                "{{channel}}")], "s"),
            panel("Retries and possible duplicates", [
                target(f'sum(rate(ecrm_broadcast_retries_total{{job="{job}"}}[$__rate_interval]))', "retries /s"),
                target(f'sum(increase(ecrm_broadcast_possible_duplicates_total{{job="{job}"}}[$__rate_interval]))',
                       "possible duplicates")]),
        ] + outbox_panels(job)
    if job == "transaction":
        return [
            row("Commerce"),
            panel("Orders placed and carts abandoned", [
                target(f'sum(rate(ecrm_transaction_orders_placed_total{{job="{job}"}}[$__rate_interval]))', "orders /s"),
                target(f'sum(rate(ecrm_transaction_abandoned_carts_total{{job="{job}"}}[$__rate_interval]))',
                       "abandoned carts /s")], "ops"),
            panel("Service inquiries: first response and resolution p90", [
                target(f'histogram_quantile(0.9, sum by (le) (rate(ecrm_transaction_inquiry_first_response_seconds_bucket{{job="{job}"}}[1h])))',
                       "first response"),
                target(f'histogram_quantile(0.9, sum by (le) (rate(ecrm_transaction_inquiry_resolution_seconds_bucket{{job="{job}"}}[1h])))',
                       "resolution")], "s"),
        ] + outbox_panels(job)
    raise ValueError(job)


def overview_panels():
    engines = "|".join(ENGINES)
    outbox_age = " or ".join(f'ecrm_{e}_outbox_oldest_pending_age_seconds' for e in OUTBOX)
    return [
        row("Engines"),
        panel("Up", [target(f'up{{job=~"{engines}"}}', "{{job}} {{instance}}")], kind="stat"),
        panel("RPC rate by engine", [target(
            f'sum by (job) (rate(grpc_server_handled_total{{job=~"{engines}",{API}}}[$__rate_interval]))', "{{job}}")],
            "reqps"),
        panel("Server errors by engine (5m, objective 0.1%)",
              [target('job:ecrm_rpc_errors:ratio_rate5m', "{{job}}")], "percentunit"),
        panel("RPCs over 250 ms by engine (5m, objective 1%)",
              [target('job:ecrm_rpc_slow:ratio_rate5m', "{{job}}")], "percentunit"),
        panel("Latency p99 by engine", [target(
            f'histogram_quantile(0.99, sum by (job, le) (rate(grpc_server_handling_seconds_bucket{{job=~"{engines}",{API}}}[$__rate_interval])))',
            "{{job}}")], "s"),
        panel("Error budget left (30 days, availability)", [target(
            '1 - job:ecrm_rpc_errors:ratio_rate3d / 0.001', "{{job}} (at the last 3 days' rate)")], "percentunit",
            description="How much of the 30-day budget would remain if the last 3 days' error ratio held for 30 days."),
        row("The loop"),
        panel("Feed lag", [target('ecrm_segmentation_feed_lag_seconds', "{{job}} {{instance}}")], "s"),
        panel("Outbox age (oldest pending event)", [target(outbox_age, "{{job}} {{instance}}")], "s"),
        panel("Broadcast: deliveries due and oldest due", [
            target('sum(ecrm_broadcast_deliveries_due)', "due"),
            target('max(ecrm_broadcast_deliveries_oldest_due_age_seconds)', "oldest due (s)")]),
        panel("Broadcast throughput by state", [target(
            'sum by (state) (rate(ecrm_broadcast_deliveries_total[$__rate_interval]))', "{{state}}")], "ops",
            stack=True),
        panel("Suppressions by reason", [target(
            'sum by (reason) (rate(ecrm_broadcast_suppressed_total[$__rate_interval]))', "{{reason}}")], "ops",
            stack=True),
        panel("Orders placed", [target('sum(rate(ecrm_transaction_orders_placed_total[$__rate_interval]))',
                                       "orders /s")], "ops"),
        row("Shared resources"),
        panel("Profile cache hit ratio by engine", [target(
            'sum by (job) (rate(ecrm_profile_cache_hits_total[$__rate_interval])) / (sum by (job) '
            '(rate(ecrm_profile_cache_hits_total[$__rate_interval])) + sum by (job) '
            '(rate(ecrm_profile_cache_misses_total[$__rate_interval])))', "{{job}}")], "percentunit"),
        panel("Redis breaker by engine", [target('max by (job) (ecrm_redis_breaker_state)', "{{job}}")],
              description="0 closed, 1 open, 2 half-open"),
        panel("SQLite filesystem free", [target(
            'ecrm_sqlite_filesystem_avail_bytes / ecrm_sqlite_filesystem_size_bytes', "{{job}} {{instance}}")],
            "percentunit"),
    ]


def layout(panels):
    """Places panels on Grafana's 24-column grid: rows full width, others 8 wide, 3 a line."""
    x, y, pid = 0, 0, 1
    for p in panels:
        p["id"] = pid
        pid += 1
        for t, ref in zip(p.get("targets", []), "ABCDEFGH"):
            t["refId"] = ref
            t["datasource"] = DS
        if p["type"] == "row":
            if x:
                y += 8
            x = 0
            p["gridPos"] = {"x": 0, "y": y, "w": 24, "h": 1}
            y += 1
            continue
        p["gridPos"] = {"x": x, "y": y, "w": 8, "h": 8}
        x += 8
        if x >= 24:
            x, y = 0, y + 8
    return panels


def dashboard(uid, title, panels, tags):
    return {
        "uid": uid,
        "title": title,
        "tags": ["ecrm"] + tags,
        "timezone": "utc",
        "schemaVersion": 38,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{
            "name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
            "current": {"text": "Prometheus", "value": "ecrm-prometheus"}, "hide": 0}]},
        "links": [{"title": "ecrm", "type": "dashboards", "tags": ["ecrm"], "asDropdown": True}],
        "annotations": {"list": []},
        "panels": layout(panels),
    }


def dashboards():
    out = {"ecrm-overview.json": dashboard("ecrm-overview", "ecrm: suite overview", overview_panels(), ["overview"])}
    for job in ENGINES:
        panels = rpc_panels(job) + (cache_panels(job) if job in CACHED else []) + engine_panels(job) + process_panels(job)
        out[f"ecrm-{job}.json"] = dashboard(f"ecrm-{job}", f"ecrm: {job}", panels, [job])
    return out


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, d in dashboards().items():
        path = os.path.join(HERE, "dashboards", name)
        text = json.dumps(d, indent=2) + "\n"
        if check:
            if not os.path.exists(path) or open(path).read() != text:
                stale.append(name)
        else:
            with open(path, "w") as f:
                f.write(text)
    if stale:
        print("deploy/grafana/dashboards differ from deploy/grafana/generate.py (run it): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
