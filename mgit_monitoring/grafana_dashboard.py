"""The Grafana dashboard for mgit: a bare dashboard model built from the metric table.

:func:`build_dashboard` returns the model that Grafana's "Import dashboard" page and file
provisioning read (not the HTTP API's ``{"dashboard": ...}`` wrapper). It has a
``${datasource}`` variable and a ``job`` variable, a stable ``uid``, current panel types
and a unit on every panel, in the seed's six groups (overview, operations, performance,
providers, authentication, system health). Queries aggregate with ``sum by (...)``, take
rates over ``$__rate_interval`` and compute quantiles from summed buckets; ratios and
quantiles drop idle series (``> 0`` / ``>= 0``) so no panel shows NaN.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

from mgit_monitoring.promql import (
    PROCESS_CPU,
    PROCESS_MEMORY,
    PROCESS_OPEN_FDS,
    histogram_quantile,
    metric,
    rate,
    ratio,
    sum_by,
)

__all__ = ["DASHBOARD_UID", "GROUPS", "PANEL_TYPES", "build_dashboard"]

DASHBOARD_UID = "mgit-monitoring"
GROUPS: Tuple[str, ...] = (
    "Overview",
    "Operations",
    "Performance",
    "Providers",
    "Authentication",
    "System health",
)
PANEL_TYPES: Tuple[str, ...] = ("timeseries", "stat", "gauge", "heatmap", "bargauge", "table")
"""The panel plugins the dashboard uses (all built into Grafana 10 and later)."""

_W = "$__rate_interval"
_SEL = 'job=~"$job"'
_DS = {"type": "prometheus", "uid": "${datasource}"}
_GREEN = {"color": "green", "value": None}


def _steps(*steps: Tuple[str, float]) -> Dict[str, Any]:
    return {"mode": "absolute", "steps": [_GREEN] + [{"color": c, "value": v} for c, v in steps]}


def _steps_from_red(*steps: Tuple[str, float]) -> Dict[str, Any]:
    first = {"color": "red", "value": None}
    return {"mode": "absolute", "steps": [first] + [{"color": c, "value": v} for c, v in steps]}


_HEALTH_MAPPING = [
    {
        "type": "value",
        "options": {
            "-1": {"color": "text", "index": 3, "text": "Unknown"},
            "0": {"color": "red", "index": 2, "text": "Unhealthy"},
            "0.5": {"color": "orange", "index": 1, "text": "Degraded"},
            "1": {"color": "green", "index": 0, "text": "Healthy"},
        },
    }
]


class _Panel:
    """One visual panel: type, title, unit, queries and the rest of its field config."""

    def __init__(
        self,
        kind: str,
        title: str,
        unit: str,
        targets: Sequence[Tuple[str, str]],
        description: str,
        width: int = 8,
        height: int = 8,
        **field: Any,
    ) -> None:
        self.kind, self.title, self.unit = kind, title, unit
        self.targets, self.description = targets, description
        self.width, self.height, self.field = width, height, field

    def model(self, panel_id: int, x: int, y: int) -> Dict[str, Any]:
        defaults: Dict[str, Any] = {"unit": self.unit}
        defaults.update(self.field)
        defaults.setdefault("thresholds", _steps())
        defaults.setdefault("mappings", [])
        if self.kind == "timeseries":
            defaults["custom"] = {
                "drawStyle": "line",
                "fillOpacity": 10,
                "lineWidth": 1,
                "showPoints": "never",
                "spanNulls": False,
            }
            defaults.setdefault("color", {"mode": "palette-classic"})
        targets = []
        for index, (expr, legend) in enumerate(self.targets):
            target: Dict[str, Any] = {
                "datasource": dict(_DS),
                "editorMode": "code",
                "expr": expr,
                "legendFormat": legend,
                "range": self.kind != "table",
                "instant": self.kind == "table",
                "refId": chr(ord("A") + index),
            }
            if self.kind == "heatmap":
                target["format"] = "heatmap"
            if self.kind == "table":
                target["format"] = "table"
            targets.append(target)
        return {
            "datasource": dict(_DS),
            "description": self.description,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "id": panel_id,
            "options": _OPTIONS[self.kind],
            "targets": targets,
            "title": self.title,
            "type": self.kind,
        }


_REDUCE = {"calcs": ["lastNotNull"], "fields": "", "values": False}
_OPTIONS: Dict[str, Dict[str, Any]] = {
    "stat": {"colorMode": "value", "graphMode": "area", "justifyMode": "auto",
             "orientation": "auto", "reduceOptions": _REDUCE, "textMode": "auto"},
    "gauge": {"orientation": "auto", "reduceOptions": _REDUCE, "showThresholdLabels": False,
              "showThresholdMarkers": True},
    "bargauge": {"displayMode": "gradient", "orientation": "horizontal",
                 "reduceOptions": _REDUCE, "showUnfilled": True},
    "timeseries": {"legend": {"calcs": [], "displayMode": "list", "placement": "bottom",
                              "showLegend": True},
                   "tooltip": {"mode": "multi", "sort": "desc"}},
    "heatmap": {"calculate": False, "cellGap": 1,
                "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
                "legend": {"show": True}, "tooltip": {"show": True, "yHistogram": True},
                "yAxis": {"axisPlacement": "left", "unit": "s"}},
    "table": {"cellHeight": "sm", "showHeader": True},
}  # fmt: skip


def _groups() -> List[Tuple[str, List[_Panel]]]:
    ops = rate("mgit_operations_total", _W, _SEL)
    ok = rate("mgit_operations_success_total", _W, _SEL)
    failed = rate("mgit_operations_failure_total", _W, _SEL)
    duration = "mgit_operation_duration_seconds"
    api = rate("mgit_api_requests_total", _W, _SEL)
    auth = rate("mgit_auth_attempts_total", _W, _SEL)
    auth_ok = rate("mgit_auth_success_total", _W, _SEL)

    def quantile(q: float, name: str, labels: Sequence[str] = ()) -> str:
        return histogram_quantile(q, name, _W, labels, _SEL) + " >= 0"

    overview = [
        _Panel(
            "stat",
            "Health",
            "none",
            [(sum_by((), metric("mgit_health_overall", _SEL), "min"), "health")],
            "Worst overall health of the mgit servers: 1 healthy, 0.5 degraded, "
            "0 unhealthy, -1 unknown.",
            4,
            5,
            mappings=_HEALTH_MAPPING,
            thresholds=_steps_from_red(("orange", 0.5), ("green", 1)),
        ),
        _Panel(
            "gauge",
            "Health percentage",
            "percent",
            [(sum_by((), metric("mgit_health_percentage", _SEL) + " >= 0", "min"), "health %")],
            "Share of healthy checks (degraded counts half).",
            4,
            5,
            min=0,
            max=100,
            thresholds=_steps_from_red(("orange", 50), ("green", 80)),
        ),
        _Panel(
            "stat",
            "Operation rate",
            "ops",
            [(sum_by((), ops), "operations/s")],
            "Operations finished per second, all types.",
            4,
            5,
            decimals=2,
        ),
        _Panel(
            "stat",
            "Success rate",
            "percentunit",
            [(ratio(sum_by((), ok), sum_by((), ops)), "success")],
            "Share of operations that succeeded (no value while idle).",
            4,
            5,
            min=0,
            max=1,
            thresholds=_steps_from_red(("orange", 0.9), ("green", 0.98)),
        ),
        _Panel(
            "stat",
            "Concurrent operations",
            "short",
            [(sum_by((), metric("mgit_concurrent_operations", _SEL)), "running")],
            "Operations running now, all processes.",
            4,
            5,
        ),
        _Panel(
            "stat",
            "Repositories processed",
            "short",
            [(sum_by((), metric("mgit_repositories_processed", _SEL)), "repositories")],
            "Repositories processed by the current runs.",
            4,
            5,
        ),
    ]
    operations = [
        _Panel(
            "timeseries",
            "Operations by type",
            "ops",
            [(sum_by(("operation",), ops), "{{operation}}")],
            "Operations finished per second, by operation.",
            8,
        ),
        _Panel(
            "timeseries",
            "Success and failure",
            "ops",
            [(sum_by((), ok), "success"), (sum_by((), failed), "failure")],
            "Successful and failed operations per second.",
            8,
        ),
        _Panel(
            "timeseries",
            "Average duration by operation",
            "s",
            [
                (
                    ratio(
                        sum_by(("operation",), rate(duration + "_sum", _W, _SEL)),
                        sum_by(("operation",), rate(duration + "_count", _W, _SEL)),
                    ),
                    "{{operation}}",
                )
            ],
            "Mean operation duration over the rate interval.",
            8,
        ),
        _Panel(
            "timeseries",
            "Errors by type",
            "ops",
            [
                (
                    sum_by(("error_type", "operation"), rate("mgit_errors_total", _W, _SEL)),
                    "{{error_type}} ({{operation}})",
                )
            ],
            "Errors raised per second, by exception type and operation.",
            12,
        ),
        _Panel(
            "timeseries",
            "Git operations by status",
            "ops",
            [
                (
                    sum_by(("operation", "status"), rate("mgit_git_operations_total", _W, _SEL)),
                    "{{operation}} {{status}}",
                )
            ],
            "Git operations per second, by operation and outcome.",
            12,
        ),
    ]
    performance = [
        _Panel(
            "timeseries",
            "Operation duration percentiles",
            "s",
            [
                (quantile(0.5, duration), "p50"),
                (quantile(0.95, duration), "p95"),
                (quantile(0.99, duration), "p99"),
            ],
            "p50, p95 and p99 of operation durations, from the histogram buckets.",
            12,
        ),
        _Panel(
            "heatmap",
            "Operation duration distribution",
            "s",
            [(sum_by(("le",), rate(duration + "_bucket", _W, _SEL, fn="increase")), "{{le}}")],
            "How many operations finished in each duration bucket.",
            12,
        ),
        _Panel(
            "timeseries",
            "Git operation p95 by operation",
            "s",
            [
                (
                    quantile(0.95, "mgit_git_operation_duration_seconds", ("operation",)),
                    "{{operation}}",
                )
            ],
            "95th percentile duration of Git operations.",
            12,
        ),
        _Panel(
            "timeseries",
            "Performance anomalies",
            "ops",
            [
                (
                    sum_by(
                        ("operation", "type"), rate("mgit_performance_anomalies_total", _W, _SEL)
                    ),
                    "{{operation}} {{type}}",
                )
            ],
            "Operations slower than their baseline, per second.",
            12,
        ),
    ]
    providers = [
        _Panel(
            "timeseries",
            "API latency p95 by provider",
            "s",
            [(quantile(0.95, "mgit_api_request_duration_seconds", ("provider",)), "{{provider}}")],
            "95th percentile provider API response time.",
            12,
        ),
        _Panel(
            "timeseries",
            "API request rate by provider",
            "reqps",
            [(sum_by(("provider",), api), "{{provider}}")],
            "Provider API requests per second.",
            12,
        ),
        _Panel(
            "timeseries",
            "API errors by provider and status",
            "reqps",
            [
                (
                    sum_by(("provider", "status_code"), rate("mgit_api_errors_total", _W, _SEL)),
                    "{{provider}} {{status_code}}",
                )
            ],
            "Provider API responses with status >= 400, per second.",
            12,
        ),
        _Panel(
            "bargauge",
            "Rate-limit hits by provider",
            "short",
            [
                (
                    sum_by(
                        ("provider",),
                        rate("mgit_api_rate_limit_hits_total", _W, _SEL, fn="increase"),
                    ),
                    "{{provider}}",
                )
            ],
            "Rate-limit responses per provider over the rate interval.",
            12,
            thresholds=_steps(("orange", 1), ("red", 10)),
        ),
    ]
    authentication = [
        _Panel(
            "timeseries",
            "Authentication success rate",
            "percentunit",
            [(ratio(sum_by(("provider",), auth_ok), sum_by(("provider",), auth)), "{{provider}}")],
            "Share of authentication attempts that succeeded, by provider.",
            12,
            min=0,
            max=1,
        ),
        _Panel(
            "timeseries",
            "Authentication failures",
            "ops",
            [
                (
                    sum_by(
                        ("provider", "organization"), rate("mgit_auth_failures_total", _W, _SEL)
                    ),
                    "{{provider}} {{organization}}",
                )
            ],
            "Failed authentications per second, by provider and organization.",
            12,
        ),
    ]
    system = [
        _Panel(
            "table",
            "Health checks",
            "none",
            [(sum_by(("check",), metric("mgit_health_check_status", _SEL), "min"), "{{check}}")],
            "Each health check's status: 1 healthy, 0.5 degraded, 0 unhealthy, -1 unknown.",
            6,
            8,
            mappings=_HEALTH_MAPPING,
            thresholds=_steps_from_red(("orange", 0.5), ("green", 1)),
        ),
        _Panel(
            "timeseries",
            "Process CPU",
            "percentunit",
            [(sum_by(("instance",), rate(PROCESS_CPU, _W, _SEL)), "{{instance}}")],
            "CPU used by each mgit server process (1 = one core).",
            6,
        ),
        _Panel(
            "timeseries",
            "Process memory",
            "bytes",
            [(sum_by(("instance",), metric(PROCESS_MEMORY, _SEL)), "{{instance}}")],
            "Resident memory of each mgit server process.",
            6,
        ),
        _Panel(
            "timeseries",
            "Open file descriptors",
            "short",
            [(sum_by(("instance",), metric(PROCESS_OPEN_FDS, _SEL)), "{{instance}}")],
            "Open file descriptors of each mgit server process.",
            6,
        ),
    ]
    return list(zip(GROUPS, (overview, operations, performance, providers, authentication, system)))


def build_dashboard(datasource: str = "Prometheus", job: str = "mgit") -> Dict[str, Any]:
    """The dashboard model; ``datasource`` and ``job`` are the variables' defaults."""
    panels: List[Dict[str, Any]] = []
    next_id = 1
    y = 0
    for title, members in _groups():
        panels.append({
            "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
            "id": next_id,
            "panels": [],
            "title": title,
            "type": "row",
        })  # fmt: skip
        next_id += 1
        y += 1
        x = 0
        row_height = 0
        for panel in members:
            if x + panel.width > 24:
                x, y, row_height = 0, y + row_height, 0
            panels.append(panel.model(next_id, x, y))
            next_id += 1
            x += panel.width
            row_height = max(row_height, panel.height)
        y += row_height
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },  # fmt: skip
        "description": "mgit operations, performance, providers, authentication and health.",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "links": [],
        "panels": panels,
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["mgit", "git", "monitoring"],
        "templating": {
            "list": [
                {
                    "current": {"selected": False, "text": datasource, "value": datasource},
                    "hide": 0,
                    "includeAll": False,
                    "label": "Data source",
                    "multi": False,
                    "name": "datasource",
                    "options": [],
                    "query": "prometheus",
                    "refresh": 1,
                    "regex": "",
                    "skipUrlSync": False,
                    "type": "datasource",
                },
                {
                    "current": {"selected": True, "text": [job], "value": [job]},
                    "datasource": dict(_DS),
                    "definition": f"label_values({metric('mgit_health_overall')}, job)",
                    "hide": 0,
                    "includeAll": True,
                    "label": "Job",
                    "multi": True,
                    "name": "job",
                    "options": [],
                    "query": {
                        "qryType": 1,
                        "query": f"label_values({metric('mgit_health_overall')}, job)",
                        "refId": "PrometheusVariableQueryEditor-VariableQuery",
                    },
                    "refresh": 2,
                    "regex": "",
                    "skipUrlSync": False,
                    "sort": 1,
                    "type": "query",
                },
            ]
        },  # fmt: skip
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": "mgit monitoring",
        "uid": DASHBOARD_UID,
        "version": 1,
    }
