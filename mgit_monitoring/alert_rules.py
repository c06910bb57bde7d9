"""Prometheus alerting rules for mgit, and the ``promtool test rules`` file that proves them.

:func:`rule_groups` returns the groups of the plain rules file; the Kubernetes
PrometheusRule carries exactly these groups. Every alert has a ``for`` duration, a
``severity`` label and ``summary``/``description``/``runbook`` annotations (the runbook
says what to check first). Failure thresholds are ratios of rates whose denominator is
kept only while it is above zero, so an idle mgit neither fires nor divides by zero.

:func:`rule_tests` returns, for every alert, one test that makes it fire and one with
healthy (or idle) series that keeps it silent.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, NamedTuple, Tuple

from mgit_monitoring.promql import UP, histogram_quantile, metric, rate, ratio, sum_by

__all__ = ["ALERTS_FILE", "Alert", "alerts", "rule_groups", "rule_tests"]

ALERTS_FILE = "prometheus-alerts.yml"


class Alert(NamedTuple):
    """One alerting rule plus the series its promtool tests feed it."""

    group: str
    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    runbook: str
    firing: Tuple[Tuple[str, str], ...]
    """(series, values) that make the alert fire at ``eval_time``."""
    healthy: Tuple[Tuple[str, str], ...]
    """(series, values) that keep it silent at ``eval_time``."""
    eval_time: str
    expected_labels: Dict[str, str]
    """The firing alert's labels besides ``severity``."""
    value_text: str = ""
    """How the firing value prints in the annotations."""


def _series(name: str, **labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{metric(name)}{{{inner}}}"


def alerts(job: str = "mgit") -> Tuple[Alert, ...]:
    """The alerts, in file order; ``job`` is the scrape job of the mgit server."""
    target = {"job": job, "instance": "mgit:8080"}
    op = {"operation": "clone-all", "provider": "github"}
    idle_op = {"operation": "pull-all", "provider": "gitlab"}

    def failing_ratio(
        numerator: str, denominator: str, labels: Tuple[str, ...], window: str, threshold: float
    ) -> str:
        return (
            ratio(
                sum_by(labels, rate(numerator, window)), sum_by(labels, rate(denominator, window))
            )
            + f" > {threshold}"
        )

    bucket = "mgit_operation_duration_seconds_bucket"
    return (
        Alert(
            "mgit-health", "MgitUnhealthy",
            sum_by(("job", "instance"), metric("mgit_health_overall"), "min") + " == 0",
            "2m", "critical",
            "mgit server {{ $labels.instance }} is unhealthy",
            "The overall health of {{ $labels.job }} on {{ $labels.instance }} has been "
            "unhealthy for 2 minutes.",
            "Open /health/detailed on the instance and fix the checks reported unhealthy "
            "first (credentials, disk space, Git, provider reachability).",
            ((_series("mgit_health_overall", **target), "0x10"),),
            ((_series("mgit_health_overall", **target), "1x10"),
             (_series("mgit_health_overall", job=job, instance="b:8080"), "0.5x10"),
             (_series("mgit_health_overall", job=job, instance="c:8080"), "-1x10")),
            "5m", dict(target),
        ),
        Alert(
            "mgit-health", "MgitHealthDegraded",
            sum_by(("job", "instance"), metric("mgit_health_percentage"), "min") + " < 80",
            "5m", "warning",
            "mgit server {{ $labels.instance }} health is degraded",
            "Only {{ printf \"%.0f\" $value }}% of the health checks of {{ $labels.job }} on "
            "{{ $labels.instance }} are healthy (threshold 80%).",
            "Open /health/detailed on the instance and look at the degraded checks first.",
            ((_series("mgit_health_percentage", **target), "50x15"),),
            ((_series("mgit_health_percentage", **target), "100x15"),
             (_series("mgit_health_percentage", job=job, instance="b:8080"), "80x15")),
            "10m", dict(target), "50",
        ),
        Alert(
            "mgit-operations", "MgitHighFailureRate",
            failing_ratio("mgit_operations_failure_total", "mgit_operations_total",
                          ("operation", "provider"), "5m", 0.1),
            "5m", "warning",
            "mgit {{ $labels.operation }} operations are failing",
            "{{ $value | humanizePercentage }} of {{ $labels.operation }} operations for "
            "{{ $labels.provider }} failed over the last 5 minutes (threshold 10%).",
            "Check the error_type of mgit_errors_total for this operation and the mgit logs "
            "for its failures first; then the provider's status and the credentials.",
            ((_series("mgit_operations_total", **op), "0+60x20"),
             (_series("mgit_operations_failure_total", **op), "0+30x20")),
            ((_series("mgit_operations_total", **op), "0+60x20"),
             (_series("mgit_operations_failure_total", **op), "0+3x20"),
             (_series("mgit_operations_total", **idle_op), "100x20"),
             (_series("mgit_operations_failure_total", **idle_op), "10x20")),
            "15m", dict(op), "50%",
        ),
        Alert(
            "mgit-operations", "MgitSlowOperations",
            histogram_quantile(0.95, "mgit_operation_duration_seconds", "10m",
                               ("operation",)) + " > 300",
            "10m", "warning",
            "mgit {{ $labels.operation }} operations are slow",
            "The 95th percentile duration of {{ $labels.operation }} is "
            "{{ printf \"%.0f\" $value }}s over the last 10 minutes (threshold 300s).",
            "Compare the operation's duration with its history in the dashboard's "
            "Performance row, then check the provider API latency and the network to the "
            "Git hosts.",
            ((_series(bucket, operation="clone-all", le="300"), "0x40"),
             (_series(bucket, operation="clone-all", le="600"), "0+10x40"),
             (_series(bucket, operation="clone-all", le="+Inf"), "0+10x40")),
            ((_series(bucket, operation="clone-all", le="1"), "0+10x40"),
             (_series(bucket, operation="clone-all", le="300"), "0+10x40"),
             (_series(bucket, operation="clone-all", le="600"), "0+10x40"),
             (_series(bucket, operation="clone-all", le="+Inf"), "0+10x40"),
             (_series(bucket, operation="pull-all", le="300"), "5x40"),
             (_series(bucket, operation="pull-all", le="+Inf"), "5x40")),
            "30m", {"operation": "clone-all"}, "585",
        ),
        Alert(
            "mgit-providers", "MgitAPIErrors",
            failing_ratio("mgit_api_errors_total", "mgit_api_requests_total", ("provider",),
                          "5m", 0.1),
            "5m", "warning",
            "mgit API calls to {{ $labels.provider }} are failing",
            "{{ $value | humanizePercentage }} of the API requests to {{ $labels.provider }} "
            "returned an error status over the last 5 minutes (threshold 10%).",
            "Look at mgit_api_errors_total by status_code first: 401/403 point at the token, "
            "5xx at the provider's status page, 429 at rate limits.",
            ((_series("mgit_api_requests_total", provider="github"), "0+60x20"),
             (_series("mgit_api_errors_total", provider="github", status_code="502"),
              "0+15x20")),
            ((_series("mgit_api_requests_total", provider="github"), "0+60x20"),
             (_series("mgit_api_errors_total", provider="github", status_code="404"),
              "0+1x20"),
             (_series("mgit_api_requests_total", provider="gitlab"), "50x20"),
             (_series("mgit_api_errors_total", provider="gitlab", status_code="500"),
              "50x20")),
            "15m", {"provider": "github"}, "25%",
        ),
        Alert(
            "mgit-providers", "MgitRateLimitHit",
            failing_ratio("mgit_api_rate_limit_hits_total", "mgit_api_requests_total",
                          ("provider",), "5m", 0.01),
            "1m", "warning",
            "mgit is rate limited by {{ $labels.provider }}",
            "{{ $value | humanizePercentage }} of the API requests to {{ $labels.provider }} "
            "were rate limited over the last 5 minutes (threshold 1%).",
            "Check which mgit jobs run at the same time and share a token; spread them out "
            "or use a token with a higher quota.",
            ((_series("mgit_api_requests_total", provider="github"), "0+60x20"),
             (_series("mgit_api_rate_limit_hits_total", provider="github"), "0+6x20")),
            ((_series("mgit_api_requests_total", provider="github"), "0+60x20"),
             (_series("mgit_api_rate_limit_hits_total", provider="github"), "3x20")),
            "15m", {"provider": "github"}, "10%",
        ),
        Alert(
            "mgit-authentication", "MgitAuthenticationFailures",
            failing_ratio("mgit_auth_failures_total", "mgit_auth_attempts_total",
                          ("provider",), "15m", 0.1),
            "5m", "warning",
            "mgit authentication with {{ $labels.provider }} is failing",
            "{{ $value | humanizePercentage }} of the authentication attempts with "
            "{{ $labels.provider }} failed over the last 15 minutes (threshold 10%).",
            "Check the token or credentials configured for this provider first (expired, "
            "revoked or missing scopes), then mgit_auth_failures_total by organization.",
            ((_series("mgit_auth_attempts_total", provider="github", organization="acme"),
              "0+2x40"),
             (_series("mgit_auth_failures_total", provider="github", organization="acme"),
              "0+2x40")),
            ((_series("mgit_auth_attempts_total", provider="github", organization="acme"),
              "0+2x40"),
             (_series("mgit_auth_failures_total", provider="github", organization="acme"),
              "0x40")),
            "30m", {"provider": "github"}, "100%",
        ),
        Alert(
            "mgit-availability", "MgitTargetDown",
            f'{metric(UP, f"job={_quote(job)}")} == 0',
            "5m", "critical",
            "Prometheus cannot scrape mgit at {{ $labels.instance }}",
            "The {{ $labels.job }} target {{ $labels.instance }} has been down for 5 minutes.",
            "Check that `mgit-monitoring server` runs on the instance and listens on an "
            "address Prometheus reaches (not 127.0.0.1 when Prometheus runs in a container), "
            "then the firewall.",
            ((f'{metric(UP)}{{instance="mgit:8080",job={_quote(job)}}}', "0x15"),),
            ((f'{metric(UP)}{{instance="mgit:8080",job={_quote(job)}}}', "1x15"),),
            "10m", dict(target),
        ),
        Alert(
            "mgit-availability", "MgitMetricsAbsent",
            f'absent({metric("mgit_health_overall", f"job={_quote(job)}")})',
            "10m", "warning",
            "No mgit metrics from job {{ $labels.job }}",
            "Prometheus has had no mgit_health_overall series from job {{ $labels.job }} "
            "for 10 minutes.",
            "Check that the job's targets point at `mgit-monitoring server` (not another "
            "service on that port) and that the scrape configuration still has the job.",
            ((f'{metric(UP)}{{instance="mgit:8080",job={_quote(job)}}}', "1x30"),),
            ((_series("mgit_health_overall", **target), "1x30"),),
            "15m", {"job": job},
        ),
    )  # fmt: skip


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rule_groups(job: str = "mgit") -> List[Dict[str, Any]]:
    """The ``groups`` list of the rules file (and of the PrometheusRule)."""
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for alert in alerts(job):
        groups.setdefault(alert.group, []).append({
            "alert": alert.name,
            "expr": alert.expr,
            "for": alert.for_,
            "labels": {"severity": alert.severity},
            "annotations": {
                "description": alert.description,
                "runbook": alert.runbook,
                "summary": alert.summary,
            },
        })  # fmt: skip
    return [{"name": name, "rules": rules} for name, rules in groups.items()]


_LABEL = re.compile(r"\{\{ \$labels\.([a-z_]+) \}\}")
_VALUE = re.compile(r'\{\{ (?:\$value \| humanizePercentage|printf "%\.0f" \$value) \}\}')


def _expand(template: str, labels: Dict[str, str], value_text: str) -> str:
    text = _LABEL.sub(lambda m: labels[m.group(1)], template)
    return _VALUE.sub(lambda m: value_text, text)


def rule_tests(job: str = "mgit") -> Dict[str, Any]:
    """The ``promtool test rules`` document for :data:`ALERTS_FILE` (in the same folder)."""
    tests = []
    for alert in alerts(job):
        labels = dict(alert.expected_labels, severity=alert.severity)
        tests.append({
            "name": f"{alert.name} fires",
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in alert.firing],
            "alert_rule_test": [{
                "eval_time": alert.eval_time,
                "alertname": alert.name,
                "exp_alerts": [{
                    "exp_labels": labels,
                    "exp_annotations": {
                        "description": _expand(alert.description, labels, alert.value_text),
                        "runbook": alert.runbook,
                        "summary": _expand(alert.summary, labels, alert.value_text),
                    },
                }],
            }],
        })  # fmt: skip
        tests.append(
            {
                "name": f"{alert.name} stays silent on healthy series",
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in alert.healthy],
                "alert_rule_test": [
                    {"eval_time": alert.eval_time, "alertname": alert.name, "exp_alerts": []}
                ],
            }
        )
    return {"rule_files": [ALERTS_FILE], "evaluation_interval": "1m", "tests": tests}
