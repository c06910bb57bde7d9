"""Health check results, how they add up, and how they are rendered.

A :class:`HealthCheckResult` is the outcome of one check (:mod:`mgit_monitoring.health` runs
the checks; everything here is a pure function of results, so a server or the CLI can render
them without running anything). Everything is also importable from
:mod:`mgit_monitoring.health`.

Aggregation (:func:`overall_status`, :func:`health_percentage`), with ``unknown`` results
left out so a check that cannot measure (no cgroup, a disabled check) never makes a healthy
system look broken:

1. no result other than ``unknown`` -> ``unknown``;
2. a critical check ``unhealthy``, or every known result ``unhealthy`` -> ``unhealthy``;
3. any known result ``degraded`` or ``unhealthy`` -> ``degraded`` (a non-critical failure,
   such as one unreachable provider, degrades but does not fail the whole);
4. otherwise ``healthy``.

``health_percentage`` = 100 x (healthy + 0.5 x degraded) / known results (0.0 when none),
rounded to one decimal: healthy, degraded, unhealthy, unknown gives 100 x 1.5 / 3 = 50.0.

Output: :func:`health_to_dict` (the original mgit JSON shape: ``status``, ``timestamp`` in
UTC, ``summary`` with counts and ``health_percentage``, ``checks`` with ``status``,
``message``, ``duration_ms``, ``details``, ``issues``) and :func:`to_health_json` (the IETF
``application/health+json`` draft: pass/warn/fail, ``checks`` keyed
``component:measurement``, ``observedValue``/``observedUnit``), served with
:func:`http_status_for`. Messages and details are masked on the way out (token patterns,
URL userinfo, secret-named keys).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from typing import Any, Dict, Iterable, List, Mapping, Sequence

from mgit_monitoring.errors import ConfigError
from mgit_monitoring.masking import mask_credentials, mask_structure

__all__ = [
    "DEGRADED",
    "HEALTHY",
    "HEALTH_JSON_CONTENT_TYPE",
    "STATUSES",
    "STATUS_VALUES",
    "UNHEALTHY",
    "UNKNOWN",
    "HealthCheckResult",
    "ProbeResult",
    "health_percentage",
    "health_to_dict",
    "http_status_for",
    "mask_text",
    "normalise_status",
    "overall_status",
    "to_health_json",
    "utc_now",
]

HEALTHY = "healthy"
DEGRADED = "degraded"
UNHEALTHY = "unhealthy"
UNKNOWN = "unknown"
STATUSES = (HEALTHY, DEGRADED, UNHEALTHY, UNKNOWN)
"""The status vocabulary, best first."""

STATUS_VALUES: Mapping[str, float] = {HEALTHY: 1.0, DEGRADED: 0.5, UNHEALTHY: 0.0, UNKNOWN: -1.0}
"""Gauge value of each status in ``mgit_health_overall`` and ``mgit_health_check_status``."""

HEALTH_JSON_CONTENT_TYPE = "application/health+json"
"""Media type of :func:`to_health_json` output (draft-inadarei-api-health-check)."""

# Accepted on input so checks can speak the IETF draft's or Spring's words.
_ALIASES = {
    "pass": HEALTHY,
    "ok": HEALTHY,
    "up": HEALTHY,
    "warn": DEGRADED,
    "warning": DEGRADED,
    "fail": UNHEALTHY,
    "error": UNHEALTHY,
    "down": UNHEALTHY,
}
_IETF = {HEALTHY: "pass", DEGRADED: "warn", UNHEALTHY: "fail", UNKNOWN: "warn"}


def utc_now() -> datetime.datetime:
    """The current time, timezone-aware in UTC (what result timestamps carry)."""
    return datetime.datetime.now(datetime.timezone.utc)


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"


def normalise_status(status: Any) -> str | None:
    """One of :data:`STATUSES` for a status or an accepted alias (pass, warn, fail, ok, up,
    down, error, ...; any case), None for anything else."""
    if not isinstance(status, str):
        return None
    text = status.strip().lower()
    return text if text in STATUSES else _ALIASES.get(text)


def mask_text(text: str) -> str:
    """``text`` with credentials masked; ``<unprintable>`` if masking fails (never raises)."""
    try:
        return mask_credentials(text)
    except Exception:  # masking must never break a health answer
        return "<unprintable>"


def _masked(details: Any) -> Any:
    """``details`` made JSON-ready, with secret-named keys and secret-looking text masked."""
    try:
        return mask_structure(_clean(details))
    except Exception:
        return {}


def _clean(value: Any, depth: int = 0) -> Any:
    """A JSON-ready copy of ``value`` (masking is applied afterwards, by key and by pattern)."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth > 6:
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean(v, depth + 1) for v in value]
    if isinstance(value, datetime.datetime):
        return _iso(value)
    return str(value)


@dataclasses.dataclass
class HealthCheckResult:
    """The outcome of one check.

    ``status`` is one of healthy, degraded, unhealthy, unknown (pass/warn/fail, ok/up/down
    and error are accepted and normalised). ``duration_ms`` and ``critical`` are filled in by
    the runner. ``observed_value``/``observed_unit``/``measurement`` feed the
    ``component:measurement`` entries of :func:`to_health_json` (e.g. disk ``utilization``
    87.5 ``%``). ``timestamp`` is the UTC time the reading was taken.
    """

    name: str
    status: str
    message: str = ""
    details: Dict[str, Any] = dataclasses.field(default_factory=dict)
    duration_ms: float = 0.0
    timestamp: datetime.datetime = dataclasses.field(default_factory=utc_now)
    critical: bool = False
    observed_value: Any = None
    observed_unit: str | None = None
    measurement: str = "status"
    component_type: str = "component"

    def __post_init__(self) -> None:
        status = normalise_status(self.status)
        if status is None:
            msg = f"health status {self.status!r}: expected one of {', '.join(STATUSES)}"
            raise ConfigError(msg)
        self.status = status

    @property
    def healthy(self) -> bool:
        """True when the status is ``healthy``."""
        return self.status == HEALTHY

    def to_dict(self) -> Dict[str, Any]:
        """This result in the original mgit JSON shape (a fresh dict every call)."""
        return {
            "status": self.status,
            "message": mask_text(str(self.message)),
            "duration_ms": round(float(self.duration_ms), 3),
            "timestamp": _iso(self.timestamp),
            "critical": bool(self.critical),
            "details": _masked(self.details),
        }


@dataclasses.dataclass
class ProbeResult:
    """The answer of a liveness or readiness probe: ``ok`` plus why."""

    ok: bool
    message: str
    checks: List[HealthCheckResult] = dataclasses.field(default_factory=list)

    @property
    def status(self) -> str:
        """``pass`` or ``fail`` (IETF words; HTTP 200 or 503)."""
        return "pass" if self.ok else "fail"

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready: ``{"status", "message", "checks": {name: {...}}}``."""
        return {
            "status": self.status,
            "message": mask_text(self.message),  # it quotes the failing checks' messages
            "checks": {r.name: r.to_dict() for r in self.checks},
        }


# --------------------------------------------------------------------------- aggregation


def overall_status(results: Iterable[HealthCheckResult]) -> str:
    """The overall status of ``results`` by the rule in the module docstring."""
    known = [r for r in results if r.status != UNKNOWN]
    if not known:
        return UNKNOWN
    if any(r.critical and r.status == UNHEALTHY for r in known) or all(
        r.status == UNHEALTHY for r in known
    ):
        return UNHEALTHY
    if any(r.status != HEALTHY for r in known):
        return DEGRADED
    return HEALTHY


def health_percentage(results: Iterable[HealthCheckResult]) -> float:
    """100 x (healthy + 0.5 x degraded) / results that are not ``unknown``; 0.0 when none."""
    known = [r for r in results if r.status != UNKNOWN]
    if not known:
        return 0.0
    score = sum(STATUS_VALUES[r.status] for r in known)
    return round(100.0 * score / len(known), 1)


def http_status_for(status: str) -> int:
    """HTTP code for an overall status: 503 for unhealthy/fail, else 200 (degraded is up)."""
    return 503 if normalise_status(status) == UNHEALTHY else 200


def health_to_dict(
    results: Sequence[HealthCheckResult], timestamp: datetime.datetime | None = None
) -> Dict[str, Any]:
    """The original mgit ``get_overall_health()`` shape, with honest counts.

    ``summary`` keeps the original keys (``total_checks``, ``healthy_checks``,
    ``unhealthy_checks`` = checks not healthy, as before) next to exact per-status counts.
    ``issues`` lists the checks whose status is not healthy.
    """
    counts = {status: 0 for status in STATUSES}
    for result in results:
        counts[result.status] += 1
    total = len(results)
    return {
        "status": overall_status(results),
        "timestamp": _iso(timestamp or utc_now()),
        "summary": {
            "total": total,
            "healthy": counts[HEALTHY],
            "degraded": counts[DEGRADED],
            "unhealthy": counts[UNHEALTHY],
            "unknown": counts[UNKNOWN],
            "health_percentage": health_percentage(results),
            "total_checks": total,
            "healthy_checks": counts[HEALTHY],
            "unhealthy_checks": total - counts[HEALTHY],
        },
        "checks": {r.name: r.to_dict() for r in results},
        "issues": [r.name for r in results if r.status != HEALTHY],
    }


def to_health_json(
    results: Sequence[HealthCheckResult],
    *,
    service_id: str | None = None,
    version: str | None = None,
    description: str | None = None,
) -> Dict[str, Any]:
    """The results as an ``application/health+json`` document (IETF draft shape).

    Root ``status`` is pass/warn/fail from :func:`overall_status` (unknown -> warn); serve
    it with :func:`http_status_for`. Each result becomes ``checks["<name>:<measurement>"]``,
    a one-element list with ``componentType``, ``status``, ``time`` (when the reading was
    taken: readings are cached), ``observedValue``/``observedUnit`` when the check measured
    something, and ``output`` (the message) unless it passed.
    """
    overall = overall_status(results)
    doc: Dict[str, Any] = {"status": _IETF[overall]}
    for key, value in (("serviceId", service_id), ("version", version)):
        if value is not None:
            doc[key] = value
    if description is not None:
        doc["description"] = description
    failing = [f"{r.name}:{r.measurement} {_IETF[r.status]}" for r in results if not r.healthy]
    if overall != HEALTHY and failing:
        doc["output"] = "; ".join(failing)
    checks: Dict[str, List[Dict[str, Any]]] = {}
    for r in results:
        entry: Dict[str, Any] = {
            "componentId": r.name,
            "componentType": r.component_type,
            "status": _IETF[r.status],
            "time": _iso(r.timestamp),
        }
        if r.observed_value is not None:
            entry["observedValue"] = _masked(r.observed_value)
            if r.observed_unit:
                entry["observedUnit"] = r.observed_unit
        if not r.healthy and r.message:
            entry["output"] = mask_text(str(r.message))
        checks.setdefault(f"{r.name}:{r.measurement}", []).append(entry)
    doc["checks"] = checks
    return doc
