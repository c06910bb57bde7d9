"""Interop: the generated monitoring files are accepted by the real tools that consume them.

promtool, amtool, systemd-analyze, docker-compose, kubernetes-validate and
grafana-foundation-sdk each check the files they read; then a real Prometheus scrapes a
real ``mgit-monitoring server`` with the generated scrape and rule configuration while a
scripted workload runs through the integration decorators, and every dashboard query and
the alerts are checked through Prometheus's HTTP API.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional

from mgit_monitoring.alert_rules import ALERTS_FILE, rule_groups
from mgit_monitoring.deploy_files import SYSTEMD_EXEC
from mgit_monitoring.generate_config import build_files, write_files
from mgit_monitoring.grafana_dashboard import PANEL_TYPES
from tests.support import (
    ROOT,
    interop_required,
    need_executable,
    need_module,
    once_per_ci_run,
    start_prometheus,
)

ASSETS = os.path.join(ROOT, "monitoring_assets")
DEADLINE_S = 45.0  # Prometheus 2.42 lands its first scrape ~6 s after start
RATE_INTERVAL = "10s"  # what Grafana's $__rate_interval becomes at a 1 s scrape interval
DATA_GROUPS = ("Overview", "Operations", "Performance", "Providers")
HEALTHY_ALERTS = ("MgitUnhealthy", "MgitHealthDegraded", "MgitTargetDown", "MgitMetricsAbsent")


def _run(
    *argv: str,
    cwd: Optional[str] = None,
    env: Optional[Dict[str, str]] = None,
) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


@once_per_ci_run("the drift test proves every Python generates these same files")
class GeneratedFiles(unittest.TestCase):
    """Each test gets the default file set written to a fresh temporary folder."""

    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        self.out = os.path.join(self.tmp, "monitoring")
        self.files = build_files()
        write_files(self.files, self.out)

    def assertAccepted(self, proc: subprocess.CompletedProcess) -> None:  # noqa: N802
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)


class TestPrometheusTools(GeneratedFiles):
    def test_promtool_check_config_loads_the_rules(self):
        promtool = need_executable("promtool")
        proc = _run(promtool, "check", "config", "prometheus.yml", cwd=self.out)
        self.assertAccepted(proc)
        self.assertIn("1 rule files found", proc.stdout)

    def test_promtool_check_rules(self):
        promtool = need_executable("promtool")
        proc = _run(promtool, "check", "rules", ALERTS_FILE, cwd=self.out)
        self.assertAccepted(proc)
        count = sum(len(g["rules"]) for g in rule_groups())
        self.assertIn(f"SUCCESS: {count} rules found", proc.stdout)

    def test_promtool_test_rules_on_the_committed_file(self):
        """Every alert fires on its bad series and stays silent on healthy ones."""
        promtool = need_executable("promtool")
        self.assertAccepted(_run(promtool, "test", "rules", "prometheus-alerts.test.yml",
                                 cwd=ASSETS))  # fmt: skip

    def test_promtool_test_rules_notices_a_wrong_expectation(self):
        promtool = need_executable("promtool")
        path = os.path.join(self.out, "prometheus-alerts.test.yml")
        text = self.files["prometheus-alerts.test.yml"].replace(
            "exp_alerts: []", "exp_alerts:\n          - exp_labels: {}", 1
        )
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        self.assertNotEqual(0, _run(promtool, "test", "rules", path).returncode)

    def test_amtool_check_config(self):
        amtool = need_executable("amtool")
        self.assertAccepted(_run(amtool, "check-config", "alertmanager.yml", cwd=self.out))


class TestSystemdUnit(GeneratedFiles):
    def test_systemd_analyze_verify(self):
        analyze = need_executable("systemd-analyze")
        binary = os.path.join(self.tmp, "bin", "mgit-monitoring")
        os.makedirs(os.path.dirname(binary))
        with open(binary, "w", encoding="utf-8") as handle:
            handle.write("#!/bin/sh\nexit 0\n")
        os.chmod(binary, 0o755)
        unit_dir = os.path.join(self.tmp, "units")
        os.makedirs(unit_dir)
        unit = os.path.join(unit_dir, "mgit-monitoring.service")
        text = self.files["mgit-monitoring.service"]
        self.assertIn(f"ExecStart={SYSTEMD_EXEC} server", text)
        with open(unit, "w", encoding="utf-8") as handle:
            handle.write(text.replace(f"ExecStart={SYSTEMD_EXEC}", f"ExecStart={binary}"))
        proc = _run(analyze, "verify", "--man=no", unit)
        self.assertAccepted(proc)
        self.assertNotIn("Unknown", proc.stderr)
        # and it does reject a unit with a typo
        with open(unit, "a", encoding="utf-8") as handle:
            handle.write("[Service]\nProtectSystm=strict\n")
        proc = _run(analyze, "verify", "--man=no", unit)
        self.assertIn("ProtectSystm", proc.stderr)


class TestCompose(GeneratedFiles):
    def test_docker_compose_config(self):
        compose = need_executable("docker-compose")
        env = dict(os.environ, GRAFANA_ADMIN_PASSWORD="not-a-default")
        self.assertAccepted(_run(compose, "-f", "docker-compose.yml", "config", "-q",
                                 cwd=self.out, env=env))  # fmt: skip
        # no default admin password: the stack refuses to start without one
        env.pop("GRAFANA_ADMIN_PASSWORD")
        proc = _run(compose, "-f", "docker-compose.yml", "config", "-q", cwd=self.out, env=env)
        self.assertNotEqual(0, proc.returncode)
        self.assertIn("GRAFANA_ADMIN_PASSWORD", proc.stderr)


class TestKubernetes(GeneratedFiles):
    def _load(self) -> Dict[str, Any]:
        yaml = need_module("yaml")
        docs = {}
        for rel, text in self.files.items():
            if rel.startswith("kubernetes/"):
                doc = yaml.safe_load(text)
                docs[doc["kind"]] = doc
        return docs

    def test_core_kinds_validate_strictly(self):
        kv = need_module("kubernetes_validate")
        docs = self._load()
        self.assertEqual(
            {"CronJob", "Deployment", "PrometheusRule", "Service", "ServiceMonitor"}, set(docs)
        )
        version = kv.latest_version()
        for kind in ("Deployment", "Service", "CronJob"):
            with self.subTest(kind=kind):
                kv.validate(docs[kind], version, True)
        bad = json.loads(json.dumps(docs["Deployment"]))
        bad["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
        with self.assertRaises(kv.ValidationError):
            kv.validate(bad, version, True)
        with self.assertRaises(kv.SchemaNotFoundError):  # hence the checks below
            kv.validate(docs["ServiceMonitor"], version, True)

    def test_deployment_hardening_and_probes(self):
        docs = self._load()
        pod = docs["Deployment"]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertTrue(container["securityContext"]["readOnlyRootFilesystem"])
        self.assertFalse(container["securityContext"]["allowPrivilegeEscalation"])
        self.assertEqual({"requests", "limits"}, set(container["resources"]))
        self.assertEqual("/health/ready", container["readinessProbe"]["httpGet"]["path"])
        self.assertEqual("/health/live", container["livenessProbe"]["httpGet"]["path"])
        self.assertIn("startupProbe", container)
        state = next(e["value"] for e in container["env"]
                     if e["name"] == "MGIT_MONITORING_STATE_DIR")  # fmt: skip
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        self.assertIn("emptyDir", volumes[mounts[state]])

    def test_service_monitor_and_prometheus_rule_structure(self):
        """The CRDs (no bundled schema) are checked by their own structure."""
        docs = self._load()
        service, monitor, rule = docs["Service"], docs["ServiceMonitor"], docs["PrometheusRule"]
        deployment = docs["Deployment"]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        port_names = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]
                      ["ports"]}  # fmt: skip
        self.assertLessEqual(service["spec"]["selector"].items(), pod_labels.items())
        self.assertIn(service["spec"]["ports"][0]["targetPort"], port_names)
        for doc in (monitor, rule):
            self.assertEqual("monitoring.coreos.com/v1", doc["apiVersion"])
            self.assertEqual({"name", "namespace", "labels"}, set(doc["metadata"]))
            self.assertEqual({"apiVersion", "kind", "metadata", "spec"}, set(doc))
        self.assertLessEqual(monitor["spec"]["selector"]["matchLabels"].items(),
                             service["metadata"]["labels"].items())  # fmt: skip
        service_ports = {p["name"] for p in service["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            self.assertIn(endpoint["port"], service_ports)
            self.assertEqual("/metrics", endpoint["path"])
            self.assertRegex(endpoint["interval"], r"^\d+[smh]$")
        self.assertEqual({"groups"}, set(rule["spec"]))
        yaml = need_module("yaml")
        self.assertEqual(yaml.safe_load(self.files[ALERTS_FILE])["groups"], rule["spec"]["groups"])
        for group in rule["spec"]["groups"]:
            self.assertEqual({"name", "rules"}, set(group))
            for item in group["rules"]:
                self.assertLessEqual(set(item), {"alert", "expr", "for", "labels", "annotations"})
                self.assertIsInstance(item["expr"], str)
                self.assertTrue(all(isinstance(v, str) for v in item["annotations"].values()))


class TestGrafanaDashboard(GeneratedFiles):
    def test_dashboard_loads_into_the_foundation_sdk(self):
        if sys.version_info < (3, 11) and not interop_required():
            self.skipTest("grafana-foundation-sdk needs Python >= 3.11")
        need_module("grafana_foundation_sdk")
        from grafana_foundation_sdk.cog import plugins, runtime
        from grafana_foundation_sdk.models import dashboard, prometheus

        plugins.register_default_plugins()
        data = json.loads(self.files["grafana-dashboard.json"])
        model = dashboard.Dashboard.from_json(data)
        self.assertEqual("mgit-monitoring", model.uid)
        self.assertEqual(len(data["panels"]), len(model.panels))
        visual = [p for p in model.panels if not isinstance(p, dashboard.RowPanel)]
        self.assertTrue(visual)
        for panel in visual:
            with self.subTest(panel=panel.title):
                self.assertIn(panel.type_val, PANEL_TYPES)
                self.assertIsNotNone(runtime.panelcfg_config(panel.type_val), panel.type_val)
                self.assertIsInstance(panel.datasource, dashboard.DataSourceRef)
                self.assertTrue(panel.field_config.defaults.unit)
                for target in panel.targets:
                    self.assertIsInstance(target, prometheus.Dataquery)
                    self.assertTrue(target.expr)


# -- end to end -------------------------------------------------------------------------

WORKLOAD = r"""
import sys, threading, time
from mgit_monitoring.collector import get_metrics_collector
from mgit_monitoring.integration import (
    monitor_authentication, monitor_git_operation, monitor_mgit_operation,
    monitor_provider_api_call, setup_monitoring_integration)
from mgit_monitoring.performance import get_performance_monitor

class Response:
    def __init__(self, status):
        self.status_code = status
        self.headers = {}

class ApiError(Exception):
    def __init__(self, status):
        super().__init__(f"HTTP {status}")
        self.response = Response(status)

@monitor_mgit_operation(operation_name="clone-all", provider="github")
def clone_all(fail):
    if fail:
        raise RuntimeError("clone failed")

@monitor_mgit_operation(operation_name="sync", provider="github")
def sync():
    time.sleep(0.05)  # a slow operation: past its 1 ms baseline, an anomaly

@monitor_git_operation(operation_type="clone")
def git_clone(repo_url, destination):
    return destination

@monitor_provider_api_call(provider_name="github", endpoint="/repos", method="GET")
def list_repositories(status):
    if status >= 500:
        raise ApiError(status)
    return Response(status)

@monitor_authentication(provider_name="github")
def authenticate(organization, ok):
    return ok

setup_monitoring_integration()
get_performance_monitor().set_performance_baseline("sync", {"avg_duration": 0.001})
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
rounds = 0
while not stop.is_set():
    for i in range(4):  # one in four fails: 25% > the alert's 10%
        try:
            clone_all(i == 3)
        except RuntimeError:
            pass
    sync()
    git_clone("https://example.com/acme/app.git", "/tmp/app")
    for status in (200, 200, 429, 404):
        list_repositories(status)
    try:
        list_repositories(502)
    except ApiError:
        pass
    authenticate("acme", True)
    authenticate("acme", rounds % 2 == 0)  # an authentication failure every other round
    get_metrics_collector().update_repositories_processed(rounds + 1)
    rounds += 1
    if rounds == 1:
        print("running", flush=True)
    stop.wait(0.2)
"""


class TestEndToEndWithPrometheus(unittest.TestCase):
    """A real Prometheus runs the generated scrape and rule configuration against us."""

    def setUp(self) -> None:
        self.prometheus = need_executable("prometheus")
        self.yaml = need_module("yaml")
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        os.makedirs(os.path.join(self.tmp, "state"))  # a reader needs the named dir to exist
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MGIT_")}
        self.env.update(
            PYTHONPATH=ROOT,
            HOME=self.tmp,
            MGIT_MONITORING_STATE_DIR=os.path.join(self.tmp, "state"),
            MGIT_MONITORING_NETWORK_HOSTS="none",
            MGIT_MONITORING_PROVIDER_ENDPOINTS="none",
            MGIT_MONITORING_FLUSH_INTERVAL="0.2",
        )
        self.files = build_files()
        self.out = os.path.join(self.tmp, "monitoring")
        write_files(self.files, self.out)

    # -- processes --------------------------------------------------------------------

    def _start_server(self) -> str:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mgit_monitoring", "server", "--host", "127.0.0.1",
             "--port", "0"],
            env=self.env, cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        self.addCleanup(self._stop_server, proc)
        line = proc.stdout.readline() if proc.stdout else ""
        self.assertTrue(line.startswith("serving on http://127.0.0.1:"), line)
        return line.split()[-1].rsplit(":", 1)[1]

    @staticmethod
    def _stop_server(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()

    def _start_workload(self) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKLOAD], env=self.env, cwd=self.tmp,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

        def stop() -> None:
            if proc.stdin:
                proc.stdin.close()  # the workload stops at end of input
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()

        self.addCleanup(stop)
        line = proc.stdout.readline() if proc.stdout else ""
        if line != "running\n":
            proc.wait(timeout=30)
            self.fail(f"workload did not start: {proc.stderr.read() if proc.stderr else ''}")

    def _prometheus_config(self, server_port: str) -> str:
        """The generated prometheus.yml, pointed at our server with a 1 s interval.

        Kept as generated: the rule file reference (relative, next to it), the job name and
        the metrics path. Changed for a loopback test: the intervals, the target address,
        no Alertmanager and no Pushgateway/self jobs to scrape.
        """
        config = self.yaml.safe_load(self.files["prometheus.yml"])
        config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s",
                            "evaluation_interval": "1s"}  # fmt: skip
        config.pop("alerting")
        job = config["scrape_configs"][0]
        job["static_configs"] = [{"targets": [f"127.0.0.1:{server_port}"]}]
        config["scrape_configs"] = [job]
        path = os.path.join(self.out, "prometheus-e2e.yml")
        with open(path, "w", encoding="utf-8") as handle:
            self.yaml.safe_dump(config, handle)
        return path

    def _start_prometheus(self, config: str) -> str:
        return start_prometheus(self, self.prometheus, config, self.tmp)

    # -- Prometheus API ---------------------------------------------------------------

    @staticmethod
    def _get(api: str, path: str, **params: str) -> Dict[str, Any]:
        url = f"{api}{path}?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:  # 400 bad_data: the error is in the body
            return json.loads(exc.read())  # type: ignore[no-any-return]

    def _query(self, api: str, promql: str) -> List[Any]:
        doc = self._get(api, "/api/v1/query", query=promql)
        self.assertEqual("success", doc["status"], f"{promql}: {doc.get('error')}")
        return doc["data"]["result"]  # type: ignore[no-any-return]

    def _until(self, what: str, check: Any) -> Any:
        """Poll ``check()`` until it returns a true value, up to the shared deadline."""
        pause = threading.Event()
        last: Any = None
        while time.monotonic() < self.deadline:
            try:
                last = check()
            except (OSError, ValueError):
                last = None  # Prometheus not up yet
            if last:
                return last
            pause.wait(0.25)  # polling other processes: there is no event to wait on
        self.fail(f"{what} within {DEADLINE_S} s (last: {last})")

    def _alert_states(self, api: str) -> Dict[str, str]:
        doc = self._get(api, "/api/v1/rules", type="alert")
        states = {}
        for group in doc["data"]["groups"]:
            for rule in group["rules"]:
                states[rule["name"]] = rule["state"]
        return states

    # -- the test ---------------------------------------------------------------------

    def test_dashboard_and_alerts_against_a_real_prometheus(self):
        server_port = self._start_server()
        self._start_workload()
        api = self._start_prometheus(self._prometheus_config(server_port))
        self.deadline = time.monotonic() + DEADLINE_S
        job = self.yaml.safe_load(self.files["prometheus.yml"])["scrape_configs"][0]["job_name"]

        self._until("the mgit target is up",
                    lambda: self._query(api, f'up{{job="{job}"}} == 1'))  # fmt: skip

        dashboard = json.loads(self.files["grafana-dashboard.json"])
        group = ""
        panels = []
        for panel in dashboard["panels"]:
            if panel["type"] == "row":
                group = panel["title"]
                continue
            exprs = [
                t["expr"].replace("$__rate_interval", RATE_INTERVAL).replace("$job", job)
                for t in panel["targets"]
            ]
            for expr in exprs:  # every query parses (a parse error is HTTP 400 bad_data)
                self._query(api, expr)
            panels.append((group, panel["title"], exprs))

        def empty_panels() -> List[str]:
            return [
                f"{group}/{title}"
                for group, title, exprs in panels
                if group in DATA_GROUPS and not any(self._query(api, e) for e in exprs)
            ]

        self._until("every overview/operations/performance/providers panel has data",
                    lambda: not empty_panels() or None)  # fmt: skip

        states = self._until(
            "MgitHighFailureRate pending or firing",
            lambda: (lambda s: s if s.get("MgitHighFailureRate") in ("pending", "firing")
                     else None)(self._alert_states(api)),
        )  # fmt: skip
        for name in HEALTHY_ALERTS:
            self.assertEqual("inactive", states[name], name)
        self.assertEqual({a["alert"] for g in rule_groups() for a in g["rules"]}, set(states))
        # The health gauges are real: the server's health checks ran (degraded or better).
        health = self._query(api, f'mgit_health_overall{{job="{job}"}}')
        self.assertIn(health[0]["value"][1], ("1", "0.5"))


if __name__ == "__main__":
    unittest.main()
