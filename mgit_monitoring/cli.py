"""The ``mgit-monitoring`` command line: server, health, metrics and performance.

``mgit-monitoring``, ``python3 -m mgit_monitoring`` and ``python3 -m mgit_monitoring.cli``
all run :func:`main`. A host CLI (mgit itself) mounts the same commands under its own
argparse parser with :func:`register_monitoring_commands` and dispatches with
:func:`run_command`, so ``mgit monitoring health --json`` behaves exactly like
``mgit-monitoring health --json``.

Output discipline: results go to stdout (``--json`` prints one JSON document and nothing
else); logs and errors go to stderr. Errors are one line (``error: ...``) with exit code 2;
``health`` exits 1 when the system is unhealthy so cron jobs and scripts can act on it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any, Callable, Dict, Iterable, List, Mapping, Sequence, TextIO, Tuple, Type

from mgit_monitoring.errors import ConfigError, MonitoringError
from mgit_monitoring.version import __version__

__all__ = ["build_parser", "main", "register_monitoring_commands", "run_command"]

_FORMATS = ("prometheus", "openmetrics", "json")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the examples' line breaks (help strings state their defaults themselves)."""


# --------------------------------------------------------------------------- parser


def build_parser(prog: str = "mgit-monitoring") -> argparse.ArgumentParser:
    """The standalone parser: ``prog`` followed by one of the monitoring commands."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Production observability for mgit: metrics, health, performance.",
        epilog="example:\n  %(prog)s server --simple --port 8080\n  %(prog)s health --json",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    register_monitoring_commands(parser)
    return parser


def register_monitoring_commands(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``server``/``health``/``metrics``/``performance`` subcommands to ``parser``.

    A host CLI calls this on its own ``monitoring`` subparser and then
    :func:`run_command` with the parsed namespace::

        sub = mgit_parser.add_subparsers(dest="command")
        register_monitoring_commands(sub.add_parser("monitoring", help="observability"))
        args = mgit_parser.parse_args()
        if args.command == "monitoring":
            sys.exit(run_command(args))
    """
    prog = parser.prog
    commands = parser.add_subparsers(
        dest="monitoring_command",
        metavar="COMMAND",
        parser_class=_lazy_parser_class(type(parser)),
    )
    commands.required = True

    server = commands.add_parser(
        "server",
        help="serve /metrics and the health endpoints over HTTP",
        description="Serve /metrics, /metrics/json, /health, /health/ready, /health/live, "
        "/health/detailed, /info and /status until SIGTERM or SIGINT.",
        epilog=f"example:\n  {prog} server --simple --port 8080\n"
        f"  {prog} server --port 0            # picks a free port and prints it",
        formatter_class=_Formatter,
    )
    _add_server_arguments(server)
    _add_state_dir_argument(server)
    server.set_defaults(monitoring_handler=_cmd_server)

    health = commands.add_parser(
        "health",
        help="run the health checks once and report",
        description="Run the health checks and print the result. Exit status: 0 healthy or "
        "degraded, 1 unhealthy, 2 error.",
        epilog=f"example:\n  {prog} health --detailed\n  {prog} health --json | jq .status",
        formatter_class=_Formatter,
    )
    health.add_argument(
        "--detailed", "-d", action="store_true", help="show every check's result and details"
    )
    health.add_argument("--json", action="store_true", help="print JSON only (for scripts)")
    health.set_defaults(monitoring_handler=_cmd_health)

    metrics = commands.add_parser(
        "metrics",
        help="print or export the metrics every mgit process recorded",
        description="Export the merged metrics of every mgit process that flushed to the "
        "shared state store (MGIT_MONITORING_STATE_DIR).",
        epilog=f"example:\n  {prog} metrics --format openmetrics\n"
        f"  {prog} metrics --output /var/lib/node_exporter/textfile/mgit.prom\n"
        f"  {prog} metrics --push-gateway http://pushgateway:9091 --job mgit-nightly",
        formatter_class=_Formatter,
    )
    metrics.add_argument(
        "--format",
        "-f",
        choices=_FORMATS,
        default="prometheus",
        help="output format (default: %(default)s)",
    )
    metrics.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="write atomically to FILE (temp file + rename; node_exporter textfile ready)",
    )
    metrics.add_argument("--push-gateway", metavar="URL", help="push to this Pushgateway")
    metrics.add_argument(
        "--job", default="mgit", help="Pushgateway job name (default: %(default)s)"
    )
    metrics.add_argument(
        "--grouping",
        action="append",
        default=[],
        metavar="LABEL=VALUE",
        help="Pushgateway grouping key label (repeatable)",
    )
    metrics.add_argument(
        "--push-method",
        choices=("PUT", "POST"),
        default="PUT",
        help="PUT replaces the whole group, POST only the pushed metric names "
        "(default: %(default)s)",
    )
    _add_state_dir_argument(metrics)
    metrics.set_defaults(monitoring_handler=_cmd_metrics)

    perf = commands.add_parser(
        "performance",
        help="statistics of recorded operations (percentiles, success rate)",
        description="Statistics of the operations every mgit process traced in the last "
        "HOURS: count, success rate, average, min, max, p50, p95, p99 and a distribution.",
        epilog=f"example:\n  {prog} performance --operation clone_repos --hours 24\n"
        f"  {prog} performance --hours 1 --json",
        formatter_class=_Formatter,
    )
    perf.add_argument("--operation", "-op", metavar="NAME", help="one operation only")
    perf.add_argument(
        "--hours", type=float, default=24.0, help="window, in hours (default: %(default)s)"
    )
    perf.add_argument("--json", action="store_true", help="print JSON only (for scripts)")
    _add_state_dir_argument(perf)
    perf.set_defaults(monitoring_handler=_cmd_performance)

    # generate-config and demo define their options in their own modules, which are only
    # imported when one of them is parsed or asked for help (a server never loads them).
    commands.add_parser(
        "generate-config",
        help="write a Grafana dashboard, Prometheus alerts and deployment files",
        description="Write grafana-dashboard.json, prometheus-alerts.yml (and its promtool "
        "test file), prometheus.yml, alertmanager.yml, docker-compose.yml with Grafana "
        "provisioning, kubernetes/ manifests and a systemd unit. Files that exist and differ "
        "are listed and left alone (exit 1) unless --force is given.",
        epilog=f"example:\n  {prog} generate-config --output ./monitoring\n"
        "  cd monitoring && GRAFANA_ADMIN_PASSWORD=... docker-compose up -d",
        formatter_class=_Formatter,
        populate=_populate_generate,
    )

    commands.add_parser(
        "demo",
        help="run real git work offline and serve the live dashboard",
        description="Create small local git repositories in a temporary directory, run real "
        "git clone and pull through the monitoring decorators (a few fail on purpose, a "
        "simulated provider API answers one rate limit), and serve the live dashboard. "
        "Ctrl-C stops it and removes everything.",
        epilog=f"example:\n  {prog} demo\n  {prog} demo --repos 3 --duration 20 --port 0",
        formatter_class=_Formatter,
        populate=_populate_demo,
    )
    return parser


def _populate_generate(parser: argparse.ArgumentParser) -> None:
    from mgit_monitoring import generate_config

    generate_config.add_arguments(parser)
    parser.set_defaults(monitoring_handler=generate_config.run)


def _populate_demo(parser: argparse.ArgumentParser) -> None:
    from mgit_monitoring import demo

    demo.add_arguments(parser)
    parser.set_defaults(monitoring_handler=demo.run)


class _LazyParser(argparse.ArgumentParser):
    """A parser that may take ``populate=fn``: ``fn(parser)`` adds its arguments on first use
    (parsing or help), not at build time."""

    def __init__(
        self,
        *args: Any,
        populate: Callable[[argparse.ArgumentParser], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._mgit_populate = populate

    def _populated(self) -> None:
        populate, self._mgit_populate = self._mgit_populate, None
        if populate is not None:
            populate(self)

    def parse_known_args(
        self, args: Iterable[str] | None = None, namespace: Any = None
    ) -> Tuple[Any, List[str]]:
        self._populated()
        return super().parse_known_args(args, namespace)

    def format_help(self, *args: Any, **kwargs: Any) -> str:
        self._populated()
        return super().format_help(*args, **kwargs)

    def format_usage(self, *args: Any, **kwargs: Any) -> str:
        self._populated()
        return super().format_usage(*args, **kwargs)


_LAZY_CLASSES: Dict[Type[argparse.ArgumentParser], Type[argparse.ArgumentParser]] = {}


def _lazy_parser_class(base: Type[argparse.ArgumentParser]) -> Type[argparse.ArgumentParser]:
    """:class:`_LazyParser` on top of the host's parser class, so the subcommands' parsers
    keep whatever the host's class changes (error handling, ...)."""
    if issubclass(base, _LazyParser):
        return base
    if base is argparse.ArgumentParser:
        return _LazyParser
    cls = _LAZY_CLASSES.get(base)
    if cls is None:
        cls = _LAZY_CLASSES[base] = type(f"Lazy{base.__name__}", (_LazyParser, base), {})
    return cls


def _add_state_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="the state directory mgit writes to (default: MGIT_MONITORING_STATE_DIR, "
        "else $XDG_STATE_HOME/mgit-monitoring or ~/.local/state/mgit-monitoring); "
        "it must exist when given",
    )


def _add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to bind (default: MGIT_MONITORING_HOST or 0.0.0.0)")
    parser.add_argument(
        "--port", type=int, help="port (default: MGIT_MONITORING_PORT or 8080; 0 picks a free one)"
    )
    parser.add_argument(
        "--simple",
        action="store_true",
        help="minimal footprint: no background health refresher (default: off)",
    )
    parser.add_argument(
        "--log-level",
        help="DEBUG, INFO, WARNING... (default: MGIT_MONITORING_LOG_LEVEL or INFO)",
    )
    parser.add_argument("--auth-token-file", help="require 'Authorization: Bearer' with this token")
    parser.add_argument("--htpasswd", help="require basic auth against this user:hash file")
    parser.add_argument(
        "--public-probes",
        action="store_true",
        help="leave /health/live and /health/ready open when auth is on",
    )
    parser.add_argument("--tls-cert", help="PEM certificate (chain) to serve HTTPS")
    parser.add_argument("--tls-key", help="PEM private key for --tls-cert")
    parser.add_argument(
        "--max-connections",
        type=int,
        default=1024,
        help="connections held open; idle ones hold no thread (default: %(default)s, lowered "
        "to fit the open-files limit)",
    )
    parser.add_argument(
        "--max-workers",
        type=int,
        default=32,
        help="threads answering complete requests (default: %(default)s)",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a request head must arrive whole within this time from its first byte; idle "
        "keep-alive connections close after it too (default: %(default)s)",
    )


def run_command(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """Run the command parsed into ``args``; one-line errors on stderr, exit 2."""
    handler: Callable[[argparse.Namespace, Mapping[str, str]], int] = args.monitoring_handler
    env = os.environ if environ is None else environ
    try:
        return handler(args, env)
    except MonitoringError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `... | head` closed stdout: stop quietly, as a killed-by-SIGPIPE tool would, with
        # no traceback and no "Exception ignored" from the final flush at exit.
        _silence_stdout()
        return 141


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (tests, hosts)
        pass


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of ``mgit-monitoring``; returns the exit status."""
    args = build_parser().parse_args(argv)
    return run_command(args, environ)


# --------------------------------------------------------------------------- commands


def _config(environ: Mapping[str, str], **overrides: Any) -> Any:
    from mgit_monitoring.config import MonitoringConfig

    return MonitoringConfig.from_env(environ, **overrides)


def _reader_config(args: argparse.Namespace, environ: Mapping[str, str], **overrides: Any) -> Any:
    """The configuration of a command that reads the store (server, metrics, performance).

    A state directory named by ``--state-dir`` or MGIT_MONITORING_STATE_DIR must exist: a
    typo there would otherwise read as a new, empty store and show nothing, silently. The
    default directory may be missing (mgit has not run yet: no data).
    """
    given = getattr(args, "state_dir", None)
    config = _config(environ, state_dir=given, **overrides)
    named = given or environ.get("MGIT_MONITORING_STATE_DIR")
    store_dir = config.store_dir
    if named and store_dir is not None:
        where = "--state-dir" if given else "MGIT_MONITORING_STATE_DIR"
        if not os.path.exists(store_dir):
            raise ConfigError(f"{where} {store_dir}: no such directory (is it where mgit writes?)")
        if not os.path.isdir(store_dir):
            raise ConfigError(f"{where} {store_dir}: not a directory")
    return config


def _open_reader_store(config: Any) -> Any:
    """The shared store opened as a reader (read-only when this user cannot write it)."""
    from mgit_monitoring.store import Store

    return Store.open(config.store_dir, timeout=config.store_timeout_seconds, reader=True)


def _setup_logging(config: Any, environ: Mapping[str, str], console_level: str) -> None:
    """Route the package's own log lines to stderr as JSON, never to stdout."""
    from mgit_monitoring.logs import setup_structured_logging

    setup_structured_logging(
        log_level=config.log_level, console_level=console_level, environ=environ
    )


def _cmd_server(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Serve until SIGTERM/SIGINT; ``serving on URL`` is stdout's first line.

    What it serves is what mgit processes recorded: with persistence on (the default), the
    merged view of every process that flushed to the shared store, next to this server's
    own metrics; the health checks are configured from the same environment and update the
    ``mgit_health_*`` metrics.
    """
    from mgit_monitoring.server import TLSConfig, serve

    config = _reader_config(args, environ, host=args.host, port=args.port, log_level=args.log_level)
    _setup_logging(config, environ, config.log_level)
    auth = None
    if args.auth_token_file or args.htpasswd:
        from mgit_monitoring.http_auth import HttpAuth

        auth = HttpAuth(
            token_file=args.auth_token_file,
            htpasswd_file=args.htpasswd,
            public_probes=args.public_probes,
        )
    tls = None
    if args.tls_cert or args.tls_key:
        if not args.tls_cert:
            raise ConfigError("--tls-key needs --tls-cert")
        tls = TLSConfig(args.tls_cert, args.tls_key)
    source, health, store = _server_sources(config, environ, simple=args.simple)
    if args.simple:
        # The checks' modules load now, on the main thread, though the checker is built on
        # the first health request: loaded by that request's worker thread they would hold
        # about 1.5 MB more for good (glibc gives each thread its own malloc arena, and the
        # import's freed buffers stay there). They load no network or TLS code.
        import mgit_monitoring.default_checks  # noqa: F401
    try:
        return serve(
            config.host,
            config.port,
            ready=lambda server: print(f"serving on {server.url}", flush=True),
            registry=source,
            # --simple builds the health checks on the first health request, never for a
            # scrape (no DNS, no git in an idle server).
            health_checker=None if args.simple else health(),
            health_factory=health if args.simple else None,
            simple=args.simple,
            auth=auth,
            tls=tls,
            max_connections=args.max_connections,
            max_workers=args.max_workers,
            request_timeout=args.request_timeout,
            history=store,
        )
    finally:
        if store is not None:
            store.close()


def _server_sources(
    config: Any, environ: Mapping[str, str], simple: bool = False
) -> Tuple[Any, Callable[[], Any], Any]:
    """``(metrics source, health checker factory, store or None)`` for the standalone server.

    The metrics source has ``snapshot()``: with persistence on it is a
    :class:`~mgit_monitoring.shared_state.SharedMetrics` that merges the shared store with
    this process's registry without ever flushing (no background thread, so ``--simple``
    stays minimal, and the server's own series stay its own); otherwise the registry. The
    store is opened as a reader: read-only when this user cannot write it.
    """
    from mgit_monitoring.collector import MetricsCollector

    registry = MetricsCollector().registry
    store = None

    def health() -> Any:
        from mgit_monitoring.default_checks import create_default_health_checker

        # The server only reads the store: a store it cannot write is read-only by design.
        # A store it cannot read at all is still probed as a reader's directory (degraded).
        access = None if store is None else store.mode
        if access == "unusable":
            access = "read-only"
        return create_default_health_checker(
            registry=registry, config=config, environ=environ, store_access=access
        )

    if config.store_dir is None:
        return registry, health, None
    from mgit_monitoring.shared_state import SharedMetrics

    store = _open_reader_store(config)
    return SharedMetrics(store, registry), health, store


def _cmd_health(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from mgit_monitoring.default_checks import create_default_health_checker
    from mgit_monitoring.health_report import health_to_dict

    config = _config(environ)
    _setup_logging(config, environ, "ERROR")  # the report itself says what is unhealthy
    checker = create_default_health_checker(config=config, environ=environ)
    results = checker.run_checks_sync(use_cache=False)
    report = health_to_dict(results)
    status = report["status"]
    code = 1 if status == "unhealthy" else 0
    if args.json:
        # The document GET /health and GET /health/detailed answer (one shape for both
        # views); --detailed only changes the text output.
        _print_json(report)
        return code
    out = sys.stdout
    mark = {"healthy": "OK", "degraded": "WARN", "unhealthy": "FAIL"}.get(status, "??")
    summary = report.get("summary", {})
    out.write(f"[{mark}] health: {status} ({summary.get('health_percentage', 0):.1f}%)\n")
    if args.detailed:
        for name, check in sorted(report.get("checks", {}).items()):
            critical = " (critical)" if check.get("critical") else ""
            out.write(
                f"  {check.get('status', 'unknown'):<9} {name}{critical}: "
                f"{check.get('message', '')} [{check.get('duration_ms', 0):.0f} ms]\n"
            )
            for key, value in sorted((check.get("details") or {}).items()):
                out.write(f"      {key}: {value}\n")
    else:
        for issue in report.get("issues", []):
            out.write(f"  - {issue}\n")
    return code


def _cmd_metrics(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from mgit_monitoring.exposition import render_json, render_openmetrics, render_text

    config = _reader_config(args, environ)
    _setup_logging(config, environ, "WARNING")
    snapshot = _metrics_snapshot(config)
    if args.push_gateway:
        from mgit_monitoring.push import push_to_gateway

        grouping = _parse_grouping(args.grouping)
        push_to_gateway(args.push_gateway, args.job, snapshot, grouping, method=args.push_method)
        print(f"pushed metrics to {args.push_gateway} (job={args.job})", file=sys.stderr)
        if not args.output:
            return 0
    if args.output:
        from mgit_monitoring.push import write_textfile

        size = write_textfile(args.output, snapshot, format=args.format)
        print(f"wrote {size} bytes of metrics to {args.output}", file=sys.stderr)
        return 0
    if args.format == "json":
        sys.stdout.write(render_json(snapshot, indent=2) + "\n")
    else:
        render = render_openmetrics if args.format == "openmetrics" else render_text
        sys.stdout.write(render(snapshot).decode("utf-8"))
    sys.stdout.flush()
    return 0


def _metrics_snapshot(config: Any) -> Any:
    """Every process's flushed metrics merged, or an empty registry's when persistence is off."""
    from mgit_monitoring.collector import MetricsCollector

    # HELP/TYPE of every mgit metric, even before any run; this process's own values (its
    # process_* series, a health gauge at -1) are not part of what mgit recorded.
    local = MetricsCollector(process_metrics=False).registry
    store_dir = config.store_dir
    if store_dir is None:
        return local.snapshot()
    from mgit_monitoring.shared_state import merged_snapshot

    store = _open_reader_store(config)
    try:
        # strict: a store that holds data this user cannot read is an error (exit 2), not
        # an empty answer a cron job would export as "no activity".
        return merged_snapshot(store, local, local_values=False, strict=True)
    finally:
        store.close()


def _parse_grouping(pairs: Sequence[str]) -> Dict[str, str]:
    grouping: Dict[str, str] = {}
    for pair in pairs:
        label, sep, value = pair.partition("=")
        if not sep or not label:
            raise ConfigError(f"--grouping {pair!r}: expected LABEL=VALUE")
        grouping[label] = value
    return grouping


def _cmd_performance(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from mgit_monitoring.performance import PerformanceMonitor

    if not (args.hours > 0 and math.isfinite(args.hours)):
        raise ConfigError(f"--hours {args.hours!r}: expected a number > 0")
    config = _reader_config(args, environ)
    _setup_logging(config, environ, "WARNING")
    store = None
    if config.store_dir is not None:
        store = _open_reader_store(config)
    try:
        if store is not None:
            store.check_readable()  # unreadable: exit 2, not "no data"
        monitor = PerformanceMonitor.from_config(config, store=store, state_dir=None)
        try:
            if args.operation:
                stats = {args.operation: monitor.get_operation_metrics(args.operation, args.hours)}
            else:
                stats = monitor.get_all_operation_metrics(args.hours)
            durations = {name: monitor.get_operation_durations(name, args.hours) for name in stats}
            available: List[str] = []
            if args.operation and not stats[args.operation].count:
                available = sorted(
                    name
                    for name, m in monitor.get_all_operation_metrics(args.hours).items()
                    if m.count
                )
        finally:
            monitor.close()
    finally:
        if store is not None:
            store.close()
    found = {name: m for name, m in stats.items() if m.count}
    if args.json:
        doc: Dict[str, Any] = {
            "window_hours": args.hours,
            "operations": {name: m.as_dict() for name, m in sorted(found.items())},
        }
        if args.operation and not found:
            doc["operations_with_data"] = available
        _print_json(doc)
    elif not found:
        what = f"operation {args.operation!r}" if args.operation else "any operation"
        print(f"no performance data for {what} in the last {args.hours:g} hours")
        if args.operation:
            if available:
                print(f"operations with data: {', '.join(available)}")
            else:
                print("no operation has data in that window")
    else:
        order = sorted(found.values(), key=lambda m: (-m.count, m.operation_name))
        for metrics in order:
            _print_operation(sys.stdout, metrics, durations[metrics.operation_name])
    return 1 if args.operation and not found else 0


# --------------------------------------------------------------------------- rendering


def _print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n")
    sys.stdout.flush()


def format_seconds(value: float) -> str:
    """A duration for people: ``850µs``, ``12.3ms``, ``2.41s``, ``3m05s``, ``1h02m``."""
    if value != value:  # NaN
        return "-"
    if value < 0.001:
        return f"{value * 1e6:.0f}µs"
    if value < 1:
        return f"{value * 1e3:.1f}ms"
    if value < 60:
        return f"{value:.2f}s"
    if value < 3600:
        minutes, seconds = divmod(int(round(value)), 60)
        return f"{minutes}m{seconds:02d}s"
    hours, rest = divmod(int(round(value)), 3600)
    return f"{hours}h{rest // 60:02d}m"


_BARS = " ▁▂▃▄▅▆▇█"


def distribution_chart(durations: Sequence[float], width: int = 24) -> str:
    """A one-line histogram of ``durations`` over log-spaced bins from min to max.

    Operation durations span orders of magnitude (a 5 ms API call, a 10-minute clone), so
    bins are spaced logarithmically; each bin is one block character scaled to the
    fullest bin. Empty input gives an empty string; identical values fill one bar.
    """
    values = [d for d in durations if d == d and d >= 0]
    if not values:
        return ""
    low, high = min(values), max(values)
    if high <= low:
        return _BARS[-1]
    floor = max(low, 1e-6)
    span = math.log(max(high, floor * 1.000001) / floor)
    counts = [0] * width
    for v in values:
        position = math.log(max(v, floor) / floor) / span if span > 0 else 0.0
        counts[min(width - 1, int(position * width))] += 1
    peak = max(counts)
    levels = len(_BARS) - 1
    return "".join(_BARS[math.ceil(c * levels / peak)] if c else _BARS[0] for c in counts)


def _print_operation(out: TextIO, m: Any, durations: List[float]) -> None:
    rows = [
        ("count", f"{m.count}  (ok {m.success_count}, failed {m.error_count})"),
        ("success rate", f"{m.success_rate:.1f}%"),
        ("average", format_seconds(m.avg_duration)),
        ("min / max", f"{format_seconds(m.min_duration)} / {format_seconds(m.max_duration)}"),
        ("p50", format_seconds(m.p50_duration)),
        ("p95", format_seconds(m.p95_duration)),
        ("p99", format_seconds(m.p99_duration)),
    ]
    if m.error_types:
        errors = ", ".join(f"{k} x{v}" for k, v in sorted(m.error_types.items()))
        rows.append(("errors", errors))
    chart = distribution_chart(durations)
    if chart:
        low, high = format_seconds(min(durations)), format_seconds(max(durations))
        rows.append(("distribution", f"{low} |{chart}| {high}  (log scale)"))
    out.write(f"{m.operation_name}  (last {m.window_hours:g} h)\n")
    for label, value in rows:
        out.write(f"  {label:<13} {value}\n")
    if m.count < 20:
        out.write(f"  note: {m.count} samples; p95/p99 of so few are rough\n")
    out.write("\n")


if __name__ == "__main__":
    sys.exit(main())
