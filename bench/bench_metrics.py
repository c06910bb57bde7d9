#!/usr/bin/env python3
"""Metrics benchmark: mgit_monitoring vs prometheus_client, same workload, same run.

The workload is the one specified in ../shared/bench/prom_client_anchor.py (reimplemented
here so the bench runs from a plain checkout): timing with perf_counter_ns around the loop,
gc.collect() before each repeat, the median repeat reported as ns/op; a fresh private
registry per implementation; values VALUES[i] = 10 ** (-3 + 4.3 * ((i * 7919) % 1000) / 1000).

  R1  counter_inc            c.inc()                               N1 ops
  R2  counter_labels_cached  child.inc() on a 2-label child        N1
  R3  counter_labels_lookup  c2.labels('GET', '200').inc()         N2
  R4  counter_labels_rotate  c2.labels(m, k).inc() over 100 pairs  N2
  R5  counter_labels_kwargs  c2.labels(method=, code=).inc()       N2
  R6  gauge_set              g.set(42.5)                           N1
  R8  histogram_observe      h.observe(v)                          N2
  R9  histogram_cached       child.observe(v)                      N2
  R10 histogram_lookup       h2.labels('GET', '/api').observe(v)   N2
  T*  4 threads on one object (R1, R2, R3, R8 bodies): wall ns/op and an exact-total check
  E   exposition of S = 1,000 and 10,000 series (8 counter families, 2 histogram families,
      labels (method, path), S/10 children each; both sides use the same 14 finite buckets):
      text 0.0.4 (anchor with and without its _created series) and OpenMetrics
  I   python3 -X importtime -c 'import X': cumulative import time of the top-level package

Goals (issue 2; T1/T8 issue 14 §6): inc/observe on a cached child <= 0.8x, a labelled
lookup-and-inc <= 0.5x, exposition of 1,000 and 10,000 series <= 0.25x, import cheaper
than the anchor's (floor 1.0x); under 4 contending threads inc() and observe() <= 0.8x.
Each row also goes to bench/report.py's final table (bench/results.py).

Ratios are ours / anchor: lower is better. Run: python3 bench/bench_metrics.py [--quick].
If prometheus_client is missing, the anchor rows print a one-line skip and the run exits 0.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from results import emit  # noqa: E402

from mgit_monitoring.exposition import render_openmetrics, render_text  # noqa: E402
from mgit_monitoring.registry import Registry  # noqa: E402

perf = time.perf_counter_ns
VALUES = [10 ** (-3 + 4.3 * ((i * 7919) % 1000) / 1000) for i in range(1000)]
METHODS = ("GET", "POST", "PUT", "DELETE")
PAIRS = [(METHODS[i % 4], str(200 + (i * 37) % 100 * 3)) for i in range(100)]
PC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


# ------------------------------------------------------------------------------ adapters
class Ours:
    name = "mgit_monitoring"

    def new_registry(self) -> Any:
        return Registry()

    def counter(self, reg: Any, name: str, help: str, labelnames: Tuple[str, ...] = ()) -> Any:
        return reg.counter(name, help, labelnames)

    def gauge(self, reg: Any, name: str, help: str, labelnames: Tuple[str, ...] = ()) -> Any:
        return reg.gauge(name, help, labelnames)

    def histogram(self, reg: Any, name: str, help: str, labelnames: Tuple[str, ...] = ()) -> Any:
        return reg.histogram(name, help, labelnames, buckets=PC_BUCKETS)

    def value(self, obj: Any, kind: str) -> float:
        v = obj.get()
        return v.count if kind == "histogram" else v

    def expose_text(self, reg: Any) -> bytes:
        return render_text(reg.snapshot())

    def expose_openmetrics(self, reg: Any) -> bytes:
        return render_openmetrics(reg.snapshot())


class Anchor:
    name = "prometheus_client"

    def __init__(self) -> None:
        import prometheus_client

        self.pc = prometheus_client

    def new_registry(self) -> Any:
        return self.pc.CollectorRegistry()

    def counter(self, reg: Any, name: str, help: str, labelnames: Tuple[str, ...] = ()) -> Any:
        return self.pc.Counter(name, help, labelnames, registry=reg)

    def gauge(self, reg: Any, name: str, help: str, labelnames: Tuple[str, ...] = ()) -> Any:
        return self.pc.Gauge(name, help, labelnames, registry=reg)

    def histogram(self, reg: Any, name: str, help: str, labelnames: Tuple[str, ...] = ()) -> Any:
        return self.pc.Histogram(name, help, labelnames, registry=reg)

    def value(self, obj: Any, kind: str) -> float:
        if kind == "counter":
            return obj._value.get()
        return sum(b.get() for b in obj._buckets)

    def expose_text(self, reg: Any) -> bytes:
        return self.pc.generate_latest(reg)

    def expose_openmetrics(self, reg: Any) -> bytes:
        from prometheus_client.openmetrics.exposition import generate_latest

        return generate_latest(reg)

    def set_created(self, enabled: bool) -> None:
        if enabled:
            self.pc.enable_created_metrics()
        else:
            self.pc.disable_created_metrics()


# ------------------------------------------------------------------------------ timing
def b_inc(obj: Any, n: int) -> int:
    t0 = perf()
    for _ in range(n):
        obj.inc()
    return perf() - t0


def b_set(obj: Any, n: int) -> int:
    t0 = perf()
    for _ in range(n):
        obj.set(42.5)
    return perf() - t0


def b_lookup(obj: Any, n: int) -> int:
    t0 = perf()
    for _ in range(n):
        obj.labels("GET", "200").inc()
    return perf() - t0


def b_kwargs(obj: Any, n: int) -> int:
    t0 = perf()
    for _ in range(n):
        obj.labels(method="GET", code="200").inc()
    return perf() - t0


def b_rotate(obj: Any, pairs: List[Tuple[str, str]]) -> int:
    t0 = perf()
    for a, b in pairs:
        obj.labels(a, b).inc()
    return perf() - t0


def b_observe(obj: Any, vals: List[float]) -> int:
    t0 = perf()
    for v in vals:
        obj.observe(v)
    return perf() - t0


def b_lookup_observe(obj: Any, vals: List[float]) -> int:
    t0 = perf()
    for v in vals:
        obj.labels("GET", "/api").observe(v)
    return perf() - t0


# A case: name -> (run once -> (ns per op, extra), ...). Both implementations' runs of one case
# alternate repeat by repeat, so load changes on a shared machine hit both sides alike.
Case = Callable[[], Tuple[float, Any]]


def recording_cases(ad: Any, n1: int, n2: int) -> Dict[str, Case]:
    reg = ad.new_registry()
    c = ad.counter(reg, "bench_c_total", "h")
    c2 = ad.counter(reg, "bench_cl_total", "h", ("method", "code"))
    child = c2.labels("GET", "200")
    for a, b in PAIRS:
        c2.labels(a, b)
    g = ad.gauge(reg, "bench_g", "h")
    h = ad.histogram(reg, "bench_h_seconds", "h")
    h2 = ad.histogram(reg, "bench_hl_seconds", "h", ("method", "path"))
    hchild = h2.labels("GET", "/api")
    vals = [VALUES[i % 1000] for i in range(n2)]
    pairs = [PAIRS[i % 100] for i in range(n2)]

    def per_op(fn: Callable[[], int], n: int) -> Case:
        return lambda: (fn() / n, None)

    return {
        "R1 counter inc()": per_op(lambda: b_inc(c, n1), n1),
        "R2 cached child inc()": per_op(lambda: b_inc(child, n1), n1),
        "R3 labels('GET','200').inc()": per_op(lambda: b_lookup(c2, n2), n2),
        "R4 labels() rotating 100": per_op(lambda: b_rotate(c2, pairs), n2),
        "R5 labels(kw=..).inc()": per_op(lambda: b_kwargs(c2, n2), n2),
        "R6 gauge set()": per_op(lambda: b_set(g, n1), n1),
        "R8 histogram observe()": per_op(lambda: b_observe(h, vals), n2),
        "R9 cached child observe()": per_op(lambda: b_observe(hchild, vals), n2),
        "R10 labels().observe()": per_op(lambda: b_lookup_observe(h2, vals), n2),
    }


def contended_cases(ad: Any, n1: int, n2: int, nthreads: int = 4) -> Dict[str, Case]:
    """4 threads on one fresh object per run; extra = whether the final total is exact."""

    def make(kind: str) -> Tuple[Callable[[int], int], int, Callable[[], float]]:
        reg = ad.new_registry()
        if kind == "T1":
            m = ad.counter(reg, "t_total", "h")
            return (lambda k: b_inc(m, k)), n1, (lambda: ad.value(m, "counter"))
        if kind in ("T2", "T3"):
            m = ad.counter(reg, "t_total", "h", ("method", "code"))
            ch = m.labels("GET", "200")
            if kind == "T2":
                return (lambda k: b_inc(ch, k)), n1, (lambda: ad.value(ch, "counter"))
            return (lambda k: b_lookup(m, k)), n2, (lambda: ad.value(ch, "counter"))
        m = ad.histogram(reg, "t_seconds", "h")
        vals = [VALUES[i % 1000] for i in range(n2 // nthreads)]
        return (lambda k: b_observe(m, vals)), n2, (lambda: ad.value(m, "histogram"))

    def case(kind: str) -> Case:
        def run() -> Tuple[float, Any]:
            body, total, getval = make(kind)
            per = total // nthreads
            barrier = threading.Barrier(nthreads + 1)

            def worker() -> None:
                barrier.wait()
                body(per)

            threads = [threading.Thread(target=worker) for _ in range(nthreads)]
            for t in threads:
                t.start()
            barrier.wait()
            t0 = perf()
            for t in threads:
                t.join()
            wall = perf() - t0
            return wall / (per * nthreads), getval() == per * nthreads

        return run

    return {
        "T1 counter inc()": case("T1"),
        "T2 cached child inc()": case("T2"),
        "T3 labels().inc()": case("T3"),
        "T8 histogram observe()": case("T8"),
    }


def build_exposition_registry(ad: Any, series: int) -> Any:
    reg = ad.new_registry()
    k = series // 10
    for f in range(8):
        c = ad.counter(reg, f"anchor_requests_{f}_total", "Requests.", ("method", "path"))
        for j in range(k):
            c.labels(METHODS[j % 4], f"/api/v1/items/{j}").inc(j + 1)
    for f in range(2):
        h = ad.histogram(reg, f"anchor_latency_{f}_seconds", "Latency.", ("method", "path"))
        for j in range(k):
            ch = h.labels(METHODS[j % 4], f"/api/v1/items/{j}")
            for i in range(3):
                ch.observe(VALUES[(3 * j + i) % 1000])
    return reg


def exposition_cases(ad: Any, series: int) -> Dict[str, Case]:
    """ms per render; extra = body size. The anchor also runs without its _created series."""
    reg = build_exposition_registry(ad, series)
    created = hasattr(ad, "set_created")

    def case(render: Callable[[Any], bytes], with_created: bool) -> Case:
        def run() -> Tuple[float, Any]:
            if created:
                ad.set_created(with_created)
            try:
                t0 = perf()
                body = render(reg)
                return (perf() - t0) / 1e6, len(body)
            finally:
                if created:
                    ad.set_created(True)

        return run

    return {
        "text": case(ad.expose_text, True),
        "text, no _created": case(ad.expose_text, False),
        "openmetrics": case(ad.expose_openmetrics, True),
    }


def interleaved(
    ours: Dict[str, Case], anchor: Dict[str, Case], repeats: int
) -> Dict[str, Tuple[float, Any, float | None, Any]]:
    """Per case: (ours median, ours extra, anchor median or None, anchor extra)."""
    out = {}
    for name, mine in ours.items():
        theirs = anchor.get(name)
        a_vals: List[float] = []
        o_vals: List[float] = []
        o_extra = a_extra = None
        for _ in range(repeats):
            gc.collect()
            v, o_extra = mine()
            o_vals.append(v)
            if theirs is not None:
                gc.collect()
                v, a_extra = theirs()
                a_vals.append(v)
        a_med = statistics.median(a_vals) if a_vals else None
        out[name] = (statistics.median(o_vals), o_extra, a_med, a_extra)
    return out


def import_time_us(module: str, runs: int, cache_dir: str) -> float | None:
    """Median cumulative import time (us) of ``module`` from ``-X importtime``, None if absent.

    Bytecode goes to ``cache_dir`` (PYTHONPYCACHEPREFIX) and one warm-up run comes first, so
    both sides are measured from .pyc files even where PYTHONDONTWRITEBYTECODE is set, and
    the checkout is not written to.
    """
    env = dict(os.environ, PYTHONPYCACHEPREFIX=cache_dir)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    samples = []
    for i in range(runs + 1):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0:
            return None
        if i == 0:
            continue  # warm-up: writes the bytecode cache
        for line in proc.stderr.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) == 3 and parts[2] == module:
                samples.append(float(parts[1]))
    return statistics.median(samples) if samples else None


# ------------------------------------------------------------------------------ report
PC = "prometheus_client"
# Goals by row id (issue 2): ratio ours / anchor. R6 (gauge set) has none stated.
RECORDING_GOALS = {
    "R1": 0.8,
    "R2": 0.8,
    "R3": 0.5,
    "R4": 0.5,
    "R5": 0.5,
    "R8": 0.8,
    "R9": 0.8,
    "R10": 0.5,
}
CONTENDED_GOALS = {"T1": 0.8, "T8": 0.8}  # issue 14 §6; T2/T3 have none stated


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:6.2f}x" if a is not None and b else "   n/a"


def header(title: str, ours: str, anchor: str, extra: str = "") -> None:
    print(f"\n{title:34s} {ours:>10s} {anchor:>10s} {'ratio':>8s}  {extra}")


def row(label: str, ours: float | None, anchor: float | None, extra: str = "") -> None:
    nan = float("nan")
    mine = nan if ours is None else ours
    theirs = nan if anchor is None else anchor
    print(f"  {label:32s} {mine:10.2f} {theirs:10.2f} {ratio(ours, anchor):>8s}  {extra}")


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="N/10, 3 repeats, S=1,000 only (smoke run)"
    )
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    n1, n2, repeats = 500_000, 200_000, args.repeats
    sizes = [1000, 10000]
    if args.quick:
        n1, n2, repeats, sizes = n1 // 10, n2 // 10, 3, [1000]

    ours = Ours()
    try:
        anchor: Anchor | None = Anchor()
    except ImportError:
        anchor = None
    print(f"python {sys.version.split()[0]}, N1={n1:,} N2={n2:,}, median of {repeats}")
    if anchor is None:
        print(
            "prometheus_client not installed: anchor rows skipped (pip install prometheus-client)"
        )
    else:
        from importlib.metadata import version

        print(f"anchor: prometheus_client {version('prometheus-client')}")

    header("recording (single thread)", "ours ns", "anchor ns")
    rec = interleaved(
        recording_cases(ours, n1, n2), recording_cases(anchor, n1, n2) if anchor else {}, repeats
    )
    for case, (ns, _, a, _) in rec.items():
        row(case, ns, a)
        goal = RECORDING_GOALS.get(case.split()[0])
        emit("metrics", case, ns, a, anchor_name=PC, goal=goal)

    header("contended (4 threads, one object)", "ours ns", "anchor ns", "exact totals")
    t_rep = max(3, repeats - 2)
    con = interleaved(
        contended_cases(ours, n1, n2), contended_cases(anchor, n1, n2) if anchor else {}, t_rep
    )
    for case, (ns, exact, a, a_exact) in con.items():
        row(case, ns, a, f"ours={exact} anchor={a_exact}")
        goal = CONTENDED_GOALS.get(case.split()[0])
        note = "totals exact" if exact and a_exact is not False else "A TOTAL IS NOT EXACT"
        emit("metrics", f"{case}, 4 threads", ns, a, anchor_name=PC, goal=goal, note=note)

    header("exposition", "ours ms", "anchor ms", "bytes ours / anchor")
    for s in sizes:
        reps = repeats if s <= 1000 else max(3, repeats - 2)
        exp = interleaved(
            exposition_cases(ours, s), exposition_cases(anchor, s) if anchor else {}, reps
        )
        for label, (ms, size, a_ms, a_size) in exp.items():
            if label == "text, no _created" and anchor is None:
                continue
            row(f"S={s:<6,} {label}", ms, a_ms, f"{size:,} / {a_size or 0:,}")
            emit(
                "metrics",
                f"exposition S={s:,} {label}",
                ms,
                a_ms,
                unit="ms",
                anchor_name=PC,
                goal=0.25,
            )

    header("import (-X importtime, cumulative)", "ours us", "anchor us")
    runs = 3 if args.quick else 7
    with tempfile.TemporaryDirectory() as cache_dir:
        anchor_us = import_time_us("prometheus_client", runs, cache_dir) if anchor else None
        modules = ("mgit_monitoring", "mgit_monitoring.collector")
        imports = {m: import_time_us(m, runs, cache_dir) for m in modules}
    for module, us in imports.items():
        row(f"import {module}", us, anchor_us)
        if us is not None:
            emit("metrics", f"import {module}", us, anchor_us, unit="us", anchor_name=PC, floor=1.0)
    print("\nratio = ours / anchor (lower is better)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
