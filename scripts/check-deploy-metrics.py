#!/usr/bin/python3
"""Checks that deploy/'s dashboards and alert rules only name metrics the engines export.

    scripts/check-deploy-metrics.py BUILD_DIR

Starts Redis and the five engines of BUILD_DIR on free loopback ports (SQLite in a temporary
directory, every engine that follows the information store pointed at it), makes one health
check per engine (so the per-code RPC counter exists), scrapes each /metrics and then checks:

  - every dashboard (deploy/grafana/dashboards/*.json) is valid JSON, is what
    deploy/grafana/generate.py writes, and every query parses (promtool, as a recording rule);
  - every metric named by a dashboard query or an alert/recording rule (deploy/prometheus/rules)
    is exported — by the engine its job="…" matcher names, else by at least one engine. A
    histogram's _bucket/_sum/_count count as the histogram; names with a colon must be recorded
    by the rules; `up` is Prometheus's own.
  - every alert's runbook_url is a section of docs/operations.md;
  - the scrape-time gauges read what this machine says: the SQLite filesystem's size is
    statvfs's, the database file is not empty, the Redis breaker is closed while Redis is up.

The rules are read as Prometheus reads them: a Prometheus server (Debian's `prometheus`, in
scripts/install-deps.sh) loads them on a free loopback port and lists them on /api/v1/rules.
Exits 77 (ctest: skipped) only when promtool or prometheus is missing.
"""
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINES = ["infostore", "segmentation", "personalisation", "broadcast", "transaction"]
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
            "inf", "nan", "atan2"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
                "quantile"}


def skip(why):
    print(f"SKIPPED: {why}")
    sys.exit(77)


for tool in ("promtool", "prometheus"):
    if shutil.which(tool) is None:
        skip(f"{tool} is not installed (Debian package prometheus; scripts/install-deps.sh installs it)")


def matching(expr, i, open_c, close_c):
    """Index just past the bracket that closes the one at expr[i], skipping strings."""
    depth = 0
    while i < len(expr):
        c = expr[i]
        if c == '"' or c == "'":
            i = skip_string(expr, i)
            continue
        if c == open_c:
            depth += 1
        elif c == close_c:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError(f"unbalanced {open_c} in {expr!r}")


def skip_string(expr, i):
    quote = expr[i]
    i += 1
    while expr[i] != quote:
        i += 2 if expr[i] == "\\" else 1
    return i + 1


def selectors(expr):
    """The (metric name, label matchers text) of every selector in a PromQL expression."""
    out = []
    i = 0
    while i < len(expr):
        c = expr[i]
        if c in "\"'":
            i = skip_string(expr, i)
        elif c == "[":
            i = matching(expr, i, "[", "]")
        elif c == "{":  # a selector without a name ({__name__=~…}): not used here
            raise ValueError(f"selector without a metric name in {expr!r}")
        elif c.isdigit() or (c == "." and i + 1 < len(expr) and expr[i + 1].isdigit()):
            while i < len(expr) and (expr[i].isalnum() or expr[i] == "."):
                i += 1
        elif c.isalpha() or c in "_:":
            j = i
            while j < len(expr) and (expr[j].isalnum() or expr[j] in "_:"):
                j += 1
            word = expr[i:j]
            k = j
            while k < len(expr) and expr[k].isspace():
                k += 1
            nxt = expr[k] if k < len(expr) else ""
            if word in GROUPING and nxt == "(":
                i = matching(expr, k, "(", ")")  # label names
            elif nxt == "(" or word.lower() in KEYWORDS or word in AGGREGATIONS:
                i = j  # a function or aggregation, or an operator
            elif nxt == "{":
                end = matching(expr, k, "{", "}")
                out.append((word, expr[k + 1:end - 1]))
                i = end
            else:
                out.append((word, ""))
                i = j
        else:
            i += 1
    return out


def self_test():
    cases = {
        'sum by (job) (rate(a_total{x="b{c}"}[5m])) / on (job) group_left (z) b': [("a_total", 'x="b{c}"'), ("b", "")],
        'histogram_quantile(0.99, sum(rate(h_bucket[1m])) by (le)) > 1e3 and job:r:ratio_rate5m offset 5m':
            [("h_bucket", ""), ("job:r:ratio_rate5m", "")],
        '1 - up{job=~"a|b"} * 24 * 3600': [("up", 'job=~"a|b"')],
    }
    for expr, want in cases.items():
        got = selectors(expr)
        assert got == want, f"selectors({expr!r}) = {got}, want {want}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def read_ports(path):
    ports = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            ports[k] = int(v)
    return ports


def exported_names(text):
    """Metric names a scrape exposes, with a histogram's or summary's series names."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()[:4]
            names.add(name)
            if kind == "histogram":
                names |= {name + "_bucket", name + "_sum", name + "_count"}
            elif kind == "summary":
                names |= {name + "_sum", name + "_count"}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, 1)[0])
    return names


def proto_field(number, value):
    """A length-delimited protobuf field (strings and messages)."""
    data = value.encode() if isinstance(value, str) else value
    n, size = len(data), b""
    while True:
        size += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            break
    return bytes([number << 3 | 2]) + size + data


def create_segment(grpc_port, tmp):
    """CreateSegment over gRPC with curl (HTTP/2 without TLS, one length-prefixed message)."""
    segment = proto_field(2, "deploy-check") + proto_field(4, 'events.count("page_view", 30d) >= 1')
    request = proto_field(1, segment)  # CreateSegmentRequest.segment
    body = os.path.join(tmp, "create-segment.bin")
    with open(body, "wb") as f:
        f.write(b"\x00" + len(request).to_bytes(4, "big") + request)
    r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-X", "POST", "-H", "content-type: application/grpc",
                        "-H", "te: trailers", "--data-binary", "@" + body, "-D", "-", "-o", os.devnull,
                        f"http://127.0.0.1:{grpc_port}/ecrm.segmentation.v1.Segmentation/CreateSegment"],
                       capture_output=True, text=True, timeout=60)
    if "grpc-status: 0" not in r.stdout:
        raise RuntimeError(f"CreateSegment failed: {r.stdout} {r.stderr}")


def sample_values(text):
    """{series as written (name and labels): value} of a scrape."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out


VALUE_PROBLEMS = []


def check_values(engine, values, fs):
    """The scrape-time gauges against what this machine says (the engines' SQLite is in tmp)."""
    size = values.get("ecrm_sqlite_filesystem_size_bytes")
    if size != fs.f_blocks * fs.f_frsize:
        VALUE_PROBLEMS.append(f"ecrm-{engine}: ecrm_sqlite_filesystem_size_bytes is {size}, statvfs says "
                              f"{fs.f_blocks * fs.f_frsize}")
    database = values.get('ecrm_sqlite_file_size_bytes{file="database"}')
    if not database or database > size:
        VALUE_PROBLEMS.append(f"ecrm-{engine}: the SQLite database's size is {database}")
    if "ecrm_redis_breaker_state" in values and values["ecrm_redis_breaker_state"] != 0:
        VALUE_PROBLEMS.append(f"ecrm-{engine}: the Redis breaker reads {values['ecrm_redis_breaker_state']} with "
                              "Redis up")


def scrape_suite(build):
    tmp = tempfile.mkdtemp(prefix="ecrm-deploy-metrics-")
    procs = []
    try:
        redis_port = free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        procs.append(redis)
        health = os.path.join(build, "tools", "healthcheck", "ecrm-healthcheck")
        ports = {}

        def start(engine, extra):
            port_file = os.path.join(tmp, f"{engine}.ports")
            log = open(os.path.join(tmp, f"{engine}.log"), "w")
            p = subprocess.Popen([os.path.join(build, "services", f"ecrm-{engine}"), "--grpc-address=127.0.0.1:0",
                                  "--metrics-address=127.0.0.1:0", f"--port-file={port_file}",
                                  f"--database-url=sqlite://{tmp}/{engine}.db",
                                  f"--redis-url=redis://127.0.0.1:{redis_port}"] + extra, stdout=log, stderr=log)
            procs.append(p)
            return p, port_file

        def ready(engine, p, port_file):
            wait_for(lambda: os.path.exists(port_file) or p.poll() is not None, f"ecrm-{engine} to listen")
            if p.poll() is not None:
                raise RuntimeError(f"ecrm-{engine} exited {p.returncode}: "
                                   + open(os.path.join(tmp, f"{engine}.log")).read()[-2000:])
            ports[engine] = read_ports(port_file)
            subprocess.run([health, f"--target=127.0.0.1:{ports[engine]['grpc_port']}", "--wait=60s"], check=True,
                           stdout=subprocess.DEVNULL)

        p, f = start("infostore", [])
        ready("infostore", p, f)
        infostore = f"--infostore-address=127.0.0.1:{ports['infostore']['grpc_port']}"
        started = [("e", *start(e, [infostore])) for e in ENGINES[1:]]
        for engine, (_, p, f) in zip(ENGINES[1:], started):
            ready(engine, p, f)
        # A segment, so that the per-segment gauge has a series.
        create_segment(ports["segmentation"]["grpc_port"], tmp)
        exported = {}
        fs = os.statvfs(tmp)
        for engine in ENGINES:
            url = f"http://127.0.0.1:{ports[engine]['metrics_port']}/metrics"
            text = urllib.request.urlopen(url, timeout=30).read().decode()
            exported[engine] = exported_names(text)
            check_values(engine, sample_values(text), fs)
        return exported
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def grafana_exprs():
    """(dashboard file, panel title, expression) of every query, with Grafana's variables set."""
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "deploy", "grafana", "dashboards", "*.json"))):
        with open(path) as f:
            d = json.load(f)  # raises on invalid JSON
        for p in d.get("panels", []):
            for t in p.get("targets", []):
                expr = t["expr"].replace("$__rate_interval", "5m").replace("$__interval", "1m")
                out.append((os.path.basename(path), p["title"], expr))
    return out


def rule_exprs():
    """(file, rule name, expression) of every rule, and the names recorded, from Prometheus itself."""
    tmp = tempfile.mkdtemp(prefix="ecrm-deploy-rules-")
    port = free_port()
    config = os.path.join(tmp, "prometheus.json")  # JSON is YAML
    with open(config, "w") as f:
        json.dump({"rule_files": [os.path.join(ROOT, "deploy", "prometheus", "rules", "*.yml")]}, f)
    log = open(os.path.join(tmp, "prometheus.log"), "w")
    server = subprocess.Popen(["prometheus", f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
                               f"--storage.tsdb.path={tmp}/data"], stdout=log, stderr=log)
    try:
        def rules():
            if server.poll() is not None:
                raise RuntimeError("prometheus exited: " + open(os.path.join(tmp, "prometheus.log")).read()[-2000:])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=5) as r:
                    return json.load(r)["data"]["groups"]
            except OSError:
                return None
        wait_for(lambda: rules(), "prometheus to load the rules")
        out, recorded, runbooks = [], set(), {}
        for g in rules():
            for r in g["rules"]:
                if r["type"] == "recording":
                    recorded.add(r["name"])
                else:
                    runbooks[r["name"]] = r.get("annotations", {}).get("runbook_url", "")
                out.append((os.path.basename(g["file"]), r["name"], r["query"]))
        return out, recorded, runbooks
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    self_test()
    problems = []
    gen = subprocess.run([sys.executable, os.path.join(ROOT, "deploy", "grafana", "generate.py"), "--check"],
                         capture_output=True, text=True)
    if gen.returncode != 0:
        problems.append(gen.stdout.strip() or gen.stderr.strip())
    dashboards = grafana_exprs()
    rules, recorded, runbooks = rule_exprs()
    # Every alert links to its section of docs/operations.md (GitHub's heading anchors).
    with open(os.path.join(ROOT, "docs", "operations.md")) as f:
        anchors = {re.sub(r"[^a-z0-9 _-]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
                   for line in f if line.startswith("#")}
    for alert, url in sorted(runbooks.items()):
        doc, _, anchor = url.partition("#")
        if doc != "docs/operations.md" or anchor not in anchors:
            problems.append(f"{alert}: runbook_url {url!r} is no section of docs/operations.md")
    # Every dashboard query parses: promtool checks them as recording rules.
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:  # JSON is YAML
        json.dump({"groups": [{"name": "dashboards", "rules": [
            {"record": f"dashboard_query_{i}", "expr": e} for i, (_, _, e) in enumerate(dashboards)]}]}, f)
    checked = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
    os.unlink(f.name)
    if checked.returncode != 0:
        problems.append("a dashboard query does not parse:\n" + checked.stdout + checked.stderr)

    exported = scrape_suite(sys.argv[1])
    everything = set().union(*exported.values())
    named = 0
    for source, title, expr in dashboards + rules:
        found = selectors(expr)
        if not found:
            problems.append(f"{source}: {title}: no metric found in {expr!r}")
        for name, matchers in found:
            named += 1
            if ":" in name:
                if name not in recorded:
                    problems.append(f"{source}: {title}: {name} is recorded by no rule")
                continue
            if name in PROMETHEUS_OWN:
                continue
            job = re.search(r'\bjob\s*=\s*"([a-z]+)"', matchers)
            if job and job.group(1) in exported:
                if name not in exported[job.group(1)]:
                    problems.append(f"{source}: {title}: ecrm-{job.group(1)} does not export {name}")
            elif name not in everything:
                problems.append(f"{source}: {title}: no engine exports {name}")
    print(f"{len(dashboards)} dashboard queries and {len(rules)} rules name {named} metrics; "
          f"the engines export {len(everything)} names")
    problems += VALUE_PROBLEMS
    for p in problems:
        print("FAIL:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
