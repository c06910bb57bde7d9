"""generate-config: the file set, its options, --force, the committed assets, and the
queries' metric names (no external tools here; see test_interop_assets for those)."""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import unittest

from mgit_monitoring import (
    alert_rules,
    deploy_files,
    generate_config,
    grafana_dashboard,
    promql,
    yaml_text,
)
from mgit_monitoring.alert_rules import rule_groups, rule_tests
from mgit_monitoring.generate_config import (
    GenerateOptions,
    add_arguments,
    build_files,
    run,
    write_files,
)
from mgit_monitoring.grafana_dashboard import PANEL_TYPES
from mgit_monitoring.metric_definitions import METRICS
from mgit_monitoring.process_metrics import ProcessCollector
from mgit_monitoring.yaml_text import dump
from tests.support import ROOT, need_module

ASSETS = pathlib.Path(ROOT) / "monitoring_assets"
SEED_ALERTS = (
    "MgitUnhealthy",
    "MgitHealthDegraded",
    "MgitHighFailureRate",
    "MgitAPIErrors",
    "MgitRateLimitHit",
    "MgitSlowOperations",
    "MgitAuthenticationFailures",
)
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set:
    """The series names a PromQL expression selects (functions and labels removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range windows
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group(0).lower() in _KEYWORDS:
            continue
        names.add(match.group(0))
    return names


def dashboard_exprs(dashboard: dict) -> list:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            exprs.append(re.sub(r"^label_values\((.*), *\w+\)$", r"\1", var["definition"]))
    return exprs


def alert_exprs(groups: list) -> list:
    return [rule["expr"] for group in groups for rule in group["rules"]]


def defined_names() -> set:
    """Every series name the package exposes (metric table + process metrics) plus ``up``."""
    names = {"up"}
    for d in METRICS:
        names.add(d.name)
        if d.kind == "histogram":
            names.update(d.name + s for s in ("_bucket", "_count", "_sum"))
    if os.path.exists("/proc/self/stat"):
        for family in ProcessCollector().collect():
            names.update(family.sample_names())
    else:
        names.update(promql.PROCESS_METRICS)
    return names


def _args(output: str, *extra: str) -> argparse.Namespace:
    return add_arguments(argparse.ArgumentParser()).parse_args(["--output", output, *extra])


class TestYamlText(unittest.TestCase):
    def test_round_trips_through_pyyaml(self):
        """What dump writes, PyYAML reads back as the same data (tricky scalars included)."""
        yaml = need_module("yaml")
        data = {
            "strings": ["yes", "No", "on", "null", "~", "", " lead", "trail ", "1:20", "0x1f",
                        "1e3", "2001-01-01", "- x", "a: b", "x #y", "x#y", "'q'", '"d"',
                        "{{ $labels.x }}", "${VAR:?msg}", "tab\there", "ünï", "*x", "&x",
                        "!x", "%x", "@x", "`x", "|x", ">x", "?x", "a\nb", "a\nb\n", "a\n\n",
                        "\nlead", "2m", "15s", 'up{job="x"} == 0', "a,[b]{c}", "a:", "a:b",
                        "a\\b", "host.docker.internal:host-gateway"],
            "numbers": [0, -1, 1.5, 1e-9, 2e20, -3.5e-7, float("inf"), True, False, None],
            "nested": {"empty_map": {}, "empty_list": [], "list_of_lists": [[1, [2]], []],
                       "maps": [{"a": 1, "b": {"c": [{"d": "e"}]}}]},
            "key with: colon": 1, "on": "off", "1": "one",
        }  # fmt: skip
        self.assertEqual(data, yaml.safe_load(dump(data)))
        self.assertEqual(["x"], yaml.safe_load(dump(["x"])))
        self.assertEqual("s", yaml.safe_load(dump("s")))

    def test_header_becomes_comments(self):
        text = dump({"a": 1}, header="one\ntwo")
        self.assertTrue(text.startswith("# one\n# two\na: 1\n"), text)

    def test_refuses_other_types(self):
        with self.assertRaises(TypeError):
            dump({"a": object()})


class TestFileSet(unittest.TestCase):
    def test_files_and_determinism(self):
        """The same options give byte-identical files; the file set is the issue's list."""
        files = build_files()
        self.assertEqual(files, build_files(GenerateOptions()))
        self.assertEqual(
            {
                "README.md", "alertmanager.yml", "docker-compose.yml", "grafana-dashboard.json",
                "grafana/provisioning/dashboards/mgit.yml",
                "grafana/provisioning/datasources/mgit.yml", "kubernetes/cronjob.yaml",
                "kubernetes/deployment.yaml", "kubernetes/prometheusrule.yaml",
                "kubernetes/service.yaml", "kubernetes/servicemonitor.yaml",
                "mgit-monitoring.service", "prometheus-alerts.test.yml",
                "prometheus-alerts.yml", "prometheus.yml",
            },
            set(files),
        )  # fmt: skip
        for rel, text in files.items():
            self.assertTrue(text.endswith("\n"), rel)
            self.assertNotRegex(text, r"20\d\d-\d\d-\d\dT", rel)  # no timestamps

    def test_committed_assets_match_a_fresh_generation(self):
        """monitoring_assets/ is exactly build_files() with default options (`make assets`)."""
        files = build_files()
        on_disk = {
            p.relative_to(ASSETS).as_posix(): p.read_text(encoding="utf-8")
            for p in ASSETS.rglob("*")
            if p.is_file()
        }
        self.assertEqual(sorted(files), sorted(on_disk), "run `make assets`")
        for rel, text in files.items():
            self.assertEqual(text, on_disk[rel], f"{rel} drifted: run `make assets`")

    def test_options_reach_the_files(self):
        files = build_files(GenerateOptions("mgit-prod", "mgit-ci", 9109, "Mimir EU"))
        self.assertIn("namespace: mgit-prod", files["kubernetes/deployment.yaml"])
        self.assertIn("containerPort: 9109", files["kubernetes/deployment.yaml"])
        self.assertIn("job_name: mgit-ci", files["prometheus.yml"])
        self.assertIn("host.docker.internal:9109", files["prometheus.yml"])
        self.assertIn('expr: up{job="mgit-ci"} == 0\n', files["prometheus-alerts.yml"])
        self.assertIn("--port 9109", files["mgit-monitoring.service"])
        self.assertIn("name: Mimir EU", files["grafana/provisioning/datasources/mgit.yml"])
        dashboard = json.loads(files["grafana-dashboard.json"])
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        self.assertEqual("Mimir EU", variables["datasource"]["current"]["value"])
        self.assertEqual(["mgit-ci"], variables["job"]["current"]["value"])

    def test_bad_options_are_config_errors(self):
        for options in (
            GenerateOptions(namespace="Bad_NS"),
            GenerateOptions(job="bad job"),
            GenerateOptions(job='x"y'),
            GenerateOptions(port=0),
            GenerateOptions(port=70000),
            GenerateOptions(datasource=""),
            GenerateOptions(datasource="a\nb"),
        ):
            with self.subTest(options=options), self.assertRaises(ValueError):
                build_files(options)


class TestRun(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.out = os.path.join(tmp.name, "monitoring")

    def _run(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        code = run(_args(self.out, *argv), stdout=out, stderr=err)
        return code, out.getvalue(), err.getvalue()

    def test_writes_every_file(self):
        code, out, err = self._run()
        self.assertEqual((0, ""), (code, err))
        for rel, text in build_files().items():
            with open(os.path.join(self.out, rel), encoding="utf-8") as handle:
                self.assertEqual(text, handle.read(), rel)
        self.assertIn("wrote 15 files", out)
        self.assertEqual(
            [], [n for n in os.listdir(self.out) if n.startswith(".tmp-")], "temp files left"
        )

    def test_rerun_with_same_options_succeeds(self):
        self.assertEqual(0, self._run()[0])
        self.assertEqual(0, self._run()[0])

    def test_refuses_to_overwrite_without_force(self):
        """A changed file is listed, nothing is written, exit 1; --force overwrites."""
        self.assertEqual(0, self._run()[0])
        edited = os.path.join(self.out, "prometheus.yml")
        with open(edited, "a", encoding="utf-8") as handle:
            handle.write("# my edit\n")
        code, out, err = self._run("--port", "9100")
        self.assertEqual(1, code)
        self.assertIn("--force", err)
        self.assertIn(edited, err)
        self.assertIn(os.path.join(self.out, "kubernetes", "deployment.yaml"), err)
        with open(edited, encoding="utf-8") as handle:
            self.assertTrue(handle.read().endswith("# my edit\n"), "file was overwritten")
        code, out, err = self._run("--port", "9100", "--force")
        self.assertEqual((0, ""), (code, err))
        with open(edited, encoding="utf-8") as handle:
            self.assertIn("host.docker.internal:9100", handle.read())

    def test_bad_option_is_one_line_and_exit_2(self):
        for argv in (("--port", "0"), ("--namespace", "Not Valid"), ("--job", "a b")):
            with self.subTest(argv=argv):
                code, out, err = self._run(*argv)
                self.assertEqual(2, code)
                self.assertEqual(1, len(err.strip().splitlines()), err)
                self.assertTrue(err.startswith("generate-config: error: "), err)
                self.assertFalse(os.path.exists(self.out))

    def test_write_files_reports_conflicts(self):
        write_files({"a.txt": "one\n"}, self.out)
        with self.assertRaises(FileExistsError) as caught:
            write_files({"a.txt": "two\n", "b/c.txt": "x\n"}, self.out)
        self.assertEqual(["a.txt"], caught.exception.args[1])
        self.assertFalse(os.path.exists(os.path.join(self.out, "b")))

    def test_main_in_a_subprocess(self):
        code = subprocess.run(
            [sys.executable, "-c",
             "import sys; from mgit_monitoring.generate_config import main; sys.exit(main())",
             "--output", self.out],
            cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        self.assertEqual(0, code.returncode, code.stderr)
        self.assertTrue(os.path.isfile(os.path.join(self.out, "grafana-dashboard.json")))

    def test_cli_subcommand(self):
        """`python3 -m mgit_monitoring generate-config --output DIR` (the seed's step 3)."""
        proc = subprocess.run(
            [sys.executable, "-m", "mgit_monitoring", "generate-config", "--output", self.out],
            cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        self.assertEqual(0, proc.returncode, proc.stderr)
        self.assertEqual(build_files(), {
            rel: pathlib.Path(self.out, rel).read_text(encoding="utf-8") for rel in build_files()
        })  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-m", "mgit_monitoring", "generate-config", "--output", self.out,
             "--job", "other"],
            cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        self.assertEqual(1, proc.returncode, proc.stderr)


class TestDashboardModel(unittest.TestCase):
    def setUp(self):
        self.dashboard = json.loads(build_files()["grafana-dashboard.json"])

    def test_bare_model_with_variables_and_uid(self):
        d = self.dashboard
        self.assertNotIn("dashboard", d)
        self.assertEqual("mgit-monitoring", d["uid"])
        self.assertIsNone(d.get("id"))
        variables = {v["name"]: v for v in d["templating"]["list"]}
        self.assertEqual("datasource", variables["datasource"]["type"])
        self.assertEqual("prometheus", variables["datasource"]["query"])

    def test_panels(self):
        """Current types, a unit on every panel, object datasources, unique ids, in-grid."""
        ids = set()
        titles = []
        for panel in self.dashboard["panels"]:
            self.assertNotIn(panel["id"], ids)
            ids.add(panel["id"])
            pos = panel["gridPos"]
            self.assertLessEqual(pos["x"] + pos["w"], 24, panel["title"])
            if panel["type"] == "row":
                titles.append(panel["title"])
                continue
            self.assertIn(panel["type"], PANEL_TYPES)
            self.assertTrue(panel["fieldConfig"]["defaults"].get("unit"), panel["title"])
            self.assertEqual({"type": "prometheus", "uid": "${datasource}"}, panel["datasource"])
            self.assertTrue(panel["targets"], panel["title"])
            for target in panel["targets"]:
                self.assertEqual(panel["datasource"], target["datasource"])
        self.assertEqual(
            ["Overview", "Operations", "Performance", "Providers", "Authentication",
             "System health"],
            titles,
        )  # fmt: skip

    def test_queries_aggregate_correctly(self):
        for expr in dashboard_exprs(self.dashboard)[:-1]:
            with self.subTest(expr=expr):
                # `by (...)` only right after an aggregation operator
                for match in re.finditer(r"(\w+) by \(", expr):
                    self.assertIn(match.group(1), ("sum", "min", "max", "avg", "count"))
                for window in re.findall(r"\[([^\]]+)\]", expr):
                    self.assertEqual("$__rate_interval", window)
                if "histogram_quantile" in expr:
                    self.assertRegex(
                        expr, r"^histogram_quantile\(0\.\d+, sum by \(le[,)].*_bucket\{.*\) >= 0$"
                    )
                if " / " in expr:
                    self.assertRegex(expr, r" / \(.*> 0\)$")  # no NaN while idle

    def test_every_metric_name_is_defined_by_the_package(self):
        defined = defined_names()
        exprs = dashboard_exprs(self.dashboard) + alert_exprs(rule_groups())
        seen = set()
        for expr in exprs:
            names = metric_names(expr)
            self.assertTrue(names, expr)
            self.assertLessEqual(names, defined, expr)
            seen |= names
        # and the names come from the table: each group of the table is on the dashboard
        groups = {d.group for d in METRICS if any(n.startswith(d.name) for n in seen)}
        self.assertLessEqual({"overview", "operations", "performance", "providers",
                              "authentication", "health"}, groups)  # fmt: skip

    def test_process_metric_names_are_the_process_collectors(self):
        if not os.path.exists("/proc/self/stat"):
            self.skipTest("no /proc: ProcessCollector exports nothing here")
        names = set()
        for family in ProcessCollector().collect():
            names.update(family.sample_names())
        self.assertLessEqual(set(promql.PROCESS_METRICS), names)

    def test_unknown_metric_is_refused(self):
        with self.assertRaises(ValueError):
            promql.metric("mgit_no_such_metric_total")


class TestAlertRules(unittest.TestCase):
    def test_alerts_have_for_severity_and_annotations(self):
        groups = rule_groups()
        names = [r["alert"] for g in groups for r in g["rules"]]
        self.assertEqual(len(names), len(set(names)))
        self.assertLessEqual(set(SEED_ALERTS), set(names))
        self.assertLessEqual({"MgitTargetDown", "MgitMetricsAbsent"}, set(names))
        for group in groups:
            for rule in group["rules"]:
                with self.subTest(alert=rule["alert"]):
                    self.assertRegex(rule["for"], r"^\d+[smh]$")
                    self.assertIn(rule["labels"]["severity"], ("critical", "warning", "info"))
                    self.assertEqual({"summary", "description", "runbook"},
                                     set(rule["annotations"]))  # fmt: skip
        exprs = {r["alert"]: r["expr"] for g in groups for r in g["rules"]}
        self.assertRegex(exprs["MgitTargetDown"], r'^up\{job="mgit"\} == 0$')
        self.assertTrue(exprs["MgitMetricsAbsent"].startswith("absent("))
        for name in ("MgitHighFailureRate", "MgitAPIErrors", "MgitRateLimitHit",
                     "MgitAuthenticationFailures"):  # fmt: skip
            self.assertRegex(exprs[name], r"/ \(sum by \(.*\) > 0\) > 0\.\d+$", name)

    def test_every_alert_has_a_firing_and_a_silent_test(self):
        doc = rule_tests()
        self.assertEqual([alert_rules.ALERTS_FILE], doc["rule_files"])
        firing, silent = set(), set()
        for test in doc["tests"]:
            for case in test["alert_rule_test"]:
                (firing if case["exp_alerts"] else silent).add(case["alertname"])
        names = {a.name for a in alert_rules.alerts()}
        self.assertEqual(names, firing)
        self.assertEqual(names, silent)

    def test_prometheus_rule_carries_the_alerts_file_groups(self):
        yaml = need_module("yaml")
        files = build_files()
        rules_file = yaml.safe_load(files["prometheus-alerts.yml"])
        manifest = yaml.safe_load(files["kubernetes/prometheusrule.yaml"])
        self.assertEqual(rules_file["groups"], manifest["spec"]["groups"])
        self.assertEqual(rule_groups(), rules_file["groups"])


class TestComposeAndPrometheus(unittest.TestCase):
    def test_mounts_exist_and_rule_files_match_the_mount(self):
        yaml = need_module("yaml")
        files = build_files()
        compose = yaml.safe_load(files["docker-compose.yml"])
        self.assertNotIn("name", compose)
        targets = {}
        for service in compose["services"].values():
            self.assertRegex(service["image"], r":v?\d+\.\d+\.\d+$")  # pinned
            for volume in service.get("volumes", []):
                source, target = volume.split(":")[:2]
                if source.startswith("./"):
                    self.assertIn(source[2:], files, volume)
                    targets[source[2:]] = target
                else:
                    self.assertIn(source, compose["volumes"], volume)  # named volume
        prometheus = yaml.safe_load(files["prometheus.yml"])
        config_dir = os.path.dirname(targets["prometheus.yml"])
        for rule_file in prometheus["rule_files"]:
            mounted = rule_file if rule_file.startswith("/") else f"{config_dir}/{rule_file}"
            self.assertEqual(targets[alert_rules.ALERTS_FILE], mounted)
        provider = yaml.safe_load(files["grafana/provisioning/dashboards/mgit.yml"])
        self.assertEqual(
            provider["providers"][0]["options"]["path"],
            os.path.dirname(targets["grafana-dashboard.json"]),
        )
        grafana = compose["services"]["grafana"]
        self.assertNotIn("admin", str(grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]))
        password = grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
        self.assertTrue(password.startswith("${GRAFANA_ADMIN_PASSWORD:?"), password)
        jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
        self.assertTrue(jobs["pushgateway"]["honor_labels"])
        self.assertIn("host.docker.internal:host-gateway",
                      compose["services"]["prometheus"]["extra_hosts"])  # fmt: skip
        self.assertEqual(
            ["alertmanager:9093"],
            prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"],
        )
        self.assertEqual(deploy_files.COMPOSE_MOUNTS, targets)


class TestLayering(unittest.TestCase):
    def test_generator_modules_import_only_lower_modules(self):
        """The generator imports the metric table and helpers, never the runtime modules."""
        allowed = {
            "metric_definitions", "process_metrics", "version", "errors", "yaml_text",
            "promql", "grafana_dashboard", "alert_rules", "deploy_files",
        }  # fmt: skip
        for module in (
            generate_config,
            deploy_files,
            alert_rules,
            promql,
            grafana_dashboard,
            yaml_text,
        ):
            tree = ast.parse(pathlib.Path(module.__file__).read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        self.assertFalse(alias.name.startswith("mgit_monitoring"))
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mgit_"):
                    self.assertIn(node.module.split(".")[-1], allowed, module.__name__)
                    self.assertNotEqual("mgit_monitoring", node.module, module.__name__)
                    for alias in node.names:
                        self.assertFalse(alias.name.startswith("_"), module.__name__)


if __name__ == "__main__":
    unittest.main()
