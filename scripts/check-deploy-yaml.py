#!/usr/bin/python3
"""Checks the deployment files that no tool here can run (no Docker engine, no kubectl):
docker-compose.yml, deploy/k8s/*.yaml, deploy/prometheus/*.yml and deploy/grafana/provisioning
parse as YAML, and hold together:

  - compose: the five engines, Redis, PostgreSQL, Prometheus and Grafana; every engine has a
    database URL and a health check; every file it mounts exists; Prometheus scrapes each engine
    (job = engine name, as the rules and dashboards expect);
  - Kubernetes: every object has apiVersion, kind and a name in namespace ecrm; the
    kustomization lists files that exist; every engine runs as non-root on a read-only root
    filesystem, with gRPC readiness and liveness probes, CPU and memory requests and a memory
    limit; every volume mounted is declared; every ConfigMap and Secret key referred to is
    defined (Secrets in database-secret.example.yaml);
  - every dashboard provider path is where compose mounts the dashboards.

Exits 77 (ctest: skipped) when python3-yaml is not installed (scripts/install-deps.sh installs it).
"""
import glob
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINES = ["infostore", "segmentation", "personalisation", "broadcast", "transaction"]

try:
    import yaml
except ImportError:
    print("SKIPPED: python3's yaml module is not installed (Debian package python3-yaml); the deployment YAML is "
          "not checked")
    sys.exit(77)

problems = []


def fail(msg):
    problems.append(msg)


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def check_compose():
    path = os.path.join(ROOT, "docker-compose.yml")
    compose = load_all(path)[0]
    services = compose["services"]
    for s in ENGINES + ["redis", "postgres", "prometheus", "grafana"]:
        if s not in services:
            fail(f"docker-compose.yml: no service {s}")
    for e in ENGINES:
        svc = services.get(e, {})
        if "ECRM_DATABASE_URL" not in svc.get("environment", {}):
            fail(f"docker-compose.yml: {e} has no ECRM_DATABASE_URL")
        if "healthcheck" not in svc:
            fail(f"docker-compose.yml: {e} has no healthcheck")
        if not svc.get("command", [""])[0] == f"ecrm-{e}":
            fail(f"docker-compose.yml: {e} does not run ecrm-{e}")
    for name, svc in services.items():
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("."):
                if not os.path.exists(os.path.join(ROOT, src)):
                    fail(f"docker-compose.yml: {name} mounts {src}, which does not exist")
    prom = load_all(os.path.join(ROOT, "deploy", "prometheus", "prometheus.yml"))[0]
    jobs = {c["job_name"]: c for c in prom["scrape_configs"]}
    for e in ENGINES:
        targets = [t for sc in jobs.get(e, {}).get("static_configs", []) for t in sc["targets"]]
        if targets != [f"{e}:9100"]:
            fail(f"deploy/prometheus/prometheus.yml: job {e} scrapes {targets}, not the compose service {e}:9100")
    graf = services.get("grafana", {})
    mounts = {v.split(":")[1]: v.split(":")[0] for v in graf.get("volumes", []) if ":" in v}
    for p in glob.glob(os.path.join(ROOT, "deploy", "grafana", "provisioning", "dashboards", "*.yml")):
        for prov in load_all(p)[0]["providers"]:
            if prov["options"]["path"] not in mounts:
                fail(f"{os.path.relpath(p, ROOT)}: dashboards path {prov['options']['path']} is not mounted in compose")


def check_k8s():
    k8s = os.path.join(ROOT, "deploy", "k8s")
    objects = []
    for path in sorted(glob.glob(os.path.join(k8s, "*.yaml"))):
        for d in load_all(path):
            objects.append((os.path.basename(path), d))
    kust = [d for f, d in objects if d.get("kind") == "Kustomization"]
    if len(kust) != 1:
        fail("deploy/k8s: expected one kustomization.yaml")
    else:
        for r in kust[0]["resources"]:
            if not os.path.exists(os.path.join(k8s, r)):
                fail(f"deploy/k8s/kustomization.yaml: {r} does not exist")
        for e in ENGINES + ["postgres", "redis", "config"]:
            if f"{e}.yaml" not in kust[0]["resources"]:
                fail(f"deploy/k8s/kustomization.yaml: {e}.yaml is not listed")
    configmaps, secrets = {}, {}
    for f, d in objects:
        kind = d.get("kind")
        if kind == "Kustomization":
            continue
        for key in ("apiVersion", "kind"):
            if key not in d:
                fail(f"deploy/k8s/{f}: an object without {key}")
        meta = d.get("metadata", {})
        if "name" not in meta:
            fail(f"deploy/k8s/{f}: a {kind} without a name")
        if kind != "Namespace" and meta.get("namespace") != "ecrm":
            fail(f"deploy/k8s/{f}: {kind} {meta.get('name')} is not in namespace ecrm")
        if kind == "ConfigMap":
            configmaps[meta["name"]] = set(d.get("data", {}))
        if kind == "Secret":
            secrets[meta["name"]] = set(d.get("stringData", {})) | set(d.get("data", {}))
    workloads = {d["metadata"]["name"]: (f, d) for f, d in objects if d.get("kind") in ("Deployment", "StatefulSet")}
    services = {d["metadata"]["name"] for f, d in objects if d.get("kind") == "Service"}
    for name in ENGINES + ["postgres", "redis"]:
        if name not in workloads:
            fail(f"deploy/k8s: no Deployment or StatefulSet {name}")
        if name not in services:
            fail(f"deploy/k8s: no Service {name}")
    if workloads.get("postgres", ("", {}))[1].get("kind") != "StatefulSet":
        fail("deploy/k8s: PostgreSQL is not a StatefulSet (it keeps data)")
    for name, (f, d) in workloads.items():
        spec = d["spec"]["template"]["spec"]
        where = f"deploy/k8s/{f}: {name}"
        if spec.get("securityContext", {}).get("runAsNonRoot") is not True:
            fail(f"{where}: the pod does not require a non-root user")
        volumes = {v["name"] for v in spec.get("volumes", [])}
        volumes |= {t["metadata"]["name"] for t in d["spec"].get("volumeClaimTemplates", [])}
        for v in spec.get("volumes", []):
            if "configMap" in v and v["configMap"]["name"] not in configmaps:
                fail(f"{where}: volume {v['name']} uses ConfigMap {v['configMap']['name']}, defined nowhere")
        for c in spec["containers"]:
            cw = f"{where} container {c['name']}"
            sc = c.get("securityContext", {})
            if sc.get("readOnlyRootFilesystem") is not True:
                fail(f"{cw}: the root filesystem is not read-only")
            if sc.get("allowPrivilegeEscalation") is not False:
                fail(f"{cw}: privilege escalation is allowed")
            res = c.get("resources", {})
            if not {"cpu", "memory"} <= set(res.get("requests", {})) or "memory" not in res.get("limits", {}):
                fail(f"{cw}: needs CPU and memory requests and a memory limit")
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c:
                    fail(f"{cw}: no {probe}")
                elif name in ENGINES and c[probe].get("grpc", {}).get("port") != 50051:
                    fail(f"{cw}: {probe} is not the gRPC health check on 50051")
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes:
                    fail(f"{cw}: mounts {m['name']}, which is not a volume of the pod")
            for ef in c.get("envFrom", []):
                ref = ef.get("configMapRef", {}).get("name")
                if ref and ref not in configmaps:
                    fail(f"{cw}: envFrom ConfigMap {ref}, defined nowhere")
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["key"] not in secrets.get(ref["name"], set()):
                    fail(f"{cw}: {env['name']} reads Secret {ref['name']} key {ref['key']}, defined nowhere")
            if name in ENGINES and c.get("command") != [f"ecrm-{name}"]:
                fail(f"{cw}: does not run ecrm-{name}")


def check_parse_all():
    files = [os.path.join(ROOT, "docker-compose.yml")]
    for pattern in ("deploy/k8s/*.yaml", "deploy/prometheus/*.yml", "deploy/prometheus/rules/*.yml",
                    "deploy/prometheus/tests/*.yml", "deploy/grafana/provisioning/*/*.yml"):
        files += glob.glob(os.path.join(ROOT, pattern))
    for path in files:
        try:
            load_all(path)
        except yaml.YAMLError as e:
            fail(f"{os.path.relpath(path, ROOT)}: not valid YAML: {e}")
    return len(files)


def main():
    n = check_parse_all()
    if not problems:
        check_compose()
        check_k8s()
    print(f"{n} YAML files parsed")
    for p in problems:
        print("FAIL:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
