#!/usr/bin/env python3
"""HTTP scrape benchmark: our monitoring server vs prometheus_client's start_http_server.

Workload (the anchor harness's, ../shared/bench/prom_http_anchor.sh): the same 1,000-series
registry served by each server in its own process on loopback -
  8 counter families  anchor_requests_{f}_total{method,path}, f = 0..7
  2 histogram families anchor_latency_{f}_seconds{method,path}, prometheus_client's buckets
  100 children each, method = GET/POST/PUT/DELETE by j % 4, path = /api/v1/items/{j};
  counter child j: inc(j + 1); histogram child j: three observations from a fixed sequence.
Load: ``wrk -t2 -c8 -d10s --timeout 10s --latency URL/metrics``, once plain and once with
``Accept-Encoding: gzip`` (``--quick``: 3 s). wrk keeps connections alive when the server
allows it. Reported: requests/s, p99, and ratios ours/anchor (for req/s higher is better,
for p99 lower is better). While wrk loads our /metrics, a client times ``/health/live`` on
one keep-alive connection: its median latency is the probe figure.

Goals: requests/s >= 20x the anchor's (issue 14 §1; issue 7 asked >= 4x), p99 <= 0.5x
(issue 7), probe median < 5 ms (issue 7). In bench/report.py's final table (through
bench/results.py) throughput is shown as time per request, so lower is better on every row.

Usage: python3 bench/bench_server.py [--quick] [--seconds N]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from results import emit  # noqa: E402

SERIES = 1000
PC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
VALUES = [10 ** (-3 + 4.3 * ((i * 7919) % 1000) / 1000) for i in range(1000)]


def _populate(counter, histogram) -> None:  # type: ignore[no-untyped-def]
    """Fill the anchor workload through factories (name, labelnames) -> metric."""
    k = SERIES // 10
    for f in range(8):
        c = counter(f"anchor_requests_{f}_total", ("method", "path"))
        for j in range(k):
            c.labels(("GET", "POST", "PUT", "DELETE")[j % 4], f"/api/v1/items/{j}").inc(j + 1)
    for f in range(2):
        h = histogram(f"anchor_latency_{f}_seconds", ("method", "path"))
        for j in range(k):
            child = h.labels(("GET", "POST", "PUT", "DELETE")[j % 4], f"/api/v1/items/{j}")
            for n in range(3):
                child.observe(VALUES[(3 * j + n) % 1000])


def _serve_ours(port_file: str) -> None:
    from mgit_monitoring.health import HealthChecker
    from mgit_monitoring.registry import Registry
    from mgit_monitoring.server import serve

    reg = Registry()
    _populate(
        lambda name, labels: reg.counter(name, "Anchor counter.", labels),
        lambda name, labels: reg.histogram(name, "Anchor histogram.", labels, buckets=PC_BUCKETS),
    )
    # Served the way the CLI serves (serve(): signal handling, switch interval).
    serve(
        "127.0.0.1",
        0,
        ready=lambda server: _announce(port_file, server.port, wait=False),
        registry=reg,
        health_checker=HealthChecker(reg),
        simple=True,
    )


def _serve_anchor(port_file: str) -> None:
    import prometheus_client as pc

    reg = pc.CollectorRegistry()
    _populate(
        lambda name, labels: pc.Counter(name, "Anchor counter.", labels, registry=reg),
        lambda name, labels: pc.Histogram(name, "Anchor histogram.", labels, registry=reg),
    )
    server, _thread = pc.start_http_server(0, addr="127.0.0.1", registry=reg)
    _announce(port_file, server.server_port)


def _announce(port_file: str, port: int, wait: bool = True) -> None:
    with open(port_file + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(str(port))
    os.replace(port_file + ".tmp", port_file)
    if wait:
        threading.Event().wait(600)  # the parent terminates us


def _spawn(role: str, tmp: str) -> Tuple[subprocess.Popen, int]:
    port_file = os.path.join(tmp, role + ".port")
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--role", role, "--port-file", port_file],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    end = time.monotonic() + 30
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"{role} server did not start")
        time.sleep(0.05)
    with open(port_file, encoding="utf-8") as handle:
        return proc, int(handle.read())


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _wrk(port: int, seconds: int, gzip: bool) -> Tuple[float, float]:
    """(requests/s, p99 in ms) from one wrk run against /metrics."""
    cmd = ["wrk", "-t2", "-c8", f"-d{seconds}s", "--timeout", "10s", "--latency"]
    if gzip:
        cmd += ["-H", "Accept-Encoding: gzip"]
    cmd.append(f"http://127.0.0.1:{port}/metrics")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    return rps, float(p99.group(1)) * _UNITS[p99.group(2)] if p99 else float("nan")


def _probe_latencies(port: int, stop: threading.Event, out: List[float]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while not stop.is_set():
        start = time.perf_counter()
        conn.request("GET", "/health/live")
        conn.getresponse().read()
        out.append((time.perf_counter() - start) * 1000.0)
        stop.wait(0.02)
    conn.close()


def _keep_alive(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        response.read()
        return not response.will_close
    finally:
        conn.close()


def _measure(port: int, seconds: int, probe: bool) -> Dict[str, float]:
    result: Dict[str, float] = {}
    latencies: List[float] = []
    stop = threading.Event()
    prober = threading.Thread(target=_probe_latencies, args=(port, stop, latencies))
    if probe:
        prober.start()
    try:
        result["plain_rps"], result["plain_p99"] = _wrk(port, seconds, gzip=False)
    finally:
        stop.set()
        if probe:
            prober.join()
    result["gzip_rps"], result["gzip_p99"] = _wrk(port, seconds, gzip=True)
    if latencies:
        result["probe_median_ms"] = statistics.median(latencies)
        result["probe_p99_ms"] = sorted(latencies)[int(0.99 * (len(latencies) - 1))]
    result["keep_alive"] = float(_keep_alive(port))
    return result


def _per_request_ms(rps: float) -> float:
    return 1000.0 / rps if rps else float("nan")


def emit_rows(ours: Dict[str, float], anchor: Dict[str, float] | None) -> None:
    """The final table's rows. Throughput goes in as time per request (1000 / req/s), so
    that lower is better there too: a ratio of 0.05 is 20x the anchor's requests/s."""
    for kind in ("plain", "gzip"):
        emit(
            "server",
            f"/metrics {kind}: time per request",
            _per_request_ms(ours[f"{kind}_rps"]),
            _per_request_ms(anchor[f"{kind}_rps"]) if anchor else None,
            unit="ms/req",
            anchor_name="prometheus_client",
            goal=0.05,
            note=f"1000 / req/s: ours {ours[f'{kind}_rps']:.0f} req/s; goal >= 20x (issue 14)",
        )
        emit(
            "server",
            f"/metrics {kind}: p99 latency",
            ours[f"{kind}_p99"],
            anchor[f"{kind}_p99"] if anchor else None,
            unit="ms",
            anchor_name="prometheus_client",
            goal=0.5,
        )
    if "probe_median_ms" in ours:
        emit(
            "server",
            "/health/live median under /metrics load",
            ours["probe_median_ms"],
            None,
            unit="ms",
            max_value=5.0,
            note=f"p99 {ours['probe_p99_ms']:.2f} ms",
        )


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s wrk runs instead of 10 s")
    parser.add_argument("--seconds", type=int, help="wrk duration per run")
    parser.add_argument("--role", choices=["ours", "anchor"], help=argparse.SUPPRESS)
    parser.add_argument("--port-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "ours":
        _serve_ours(args.port_file)
        return 0
    if args.role == "anchor":
        _serve_anchor(args.port_file)
        return 0
    if shutil.which("wrk") is None:
        print("skip: wrk is not installed (apt-get install wrk)")
        return 0
    seconds = args.seconds or (3 if args.quick else 10)
    try:
        import prometheus_client  # noqa: F401

        have_anchor = True
    except ImportError:
        have_anchor = False
    results: Dict[str, Dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        roles = ["ours", "anchor"] if have_anchor else ["ours"]
        for role in roles:
            proc, port = _spawn(role, tmp)
            try:
                results[role] = _measure(port, seconds, probe=role == "ours")
            finally:
                proc.terminate()
                proc.wait(10)
    print(f"wrk -t2 -c8 -d{seconds}s, {SERIES}-series registry, loopback, one process per server")
    print(f"{'case':<22}{'ours':>12}{'anchor':>12}{'ours/anchor':>13}")
    ours = results["ours"]
    anchor = results.get("anchor")
    for key, label, unit in (
        ("plain_rps", "plain req/s", ""),
        ("plain_p99", "plain p99", " ms"),
        ("gzip_rps", "gzip req/s", ""),
        ("gzip_p99", "gzip p99", " ms"),
    ):
        mine = f"{ours[key]:.1f}{unit}"
        if anchor is None:
            print(f"{label:<22}{mine:>12}{'skip':>12}{'-':>13}")
        else:
            ratio = ours[key] / anchor[key] if anchor[key] else float("nan")
            print(f"{label:<22}{mine:>12}{anchor[key]:>9.1f}{unit:<3}{ratio:>13.2f}")
    if anchor is None:
        print("skip: prometheus_client is not installed; anchor rows skipped")
    emit_rows(ours, anchor)
    print(f"keep-alive: ours {'yes' if ours['keep_alive'] else 'no'}", end="")
    print(f", anchor {'yes' if anchor['keep_alive'] else 'no'}" if anchor else "")
    if "probe_median_ms" in ours:
        print(
            f"/health/live under /metrics load: median {ours['probe_median_ms']:.2f} ms,"
            f" p99 {ours['probe_p99_ms']:.2f} ms (goal: median < 5 ms)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
