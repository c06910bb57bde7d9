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
def median_ns(fn: Callable[[], int], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        gc.collect()
        samples.append(fn())
    return statistics.median(samples)


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


def recording(ad: Any, n1: int, n2: int, repeats: int) -> Dict[str, float]:
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
    cases: List[Tuple[str, Callable[[], int], int]] = [
        ("R1 counter inc()", lambda: b_inc(c, n1), n1),
        ("R2 cached child inc()", lambda: b_inc(child, n1), n1),
        ("R3 labels('GET','200').inc()", lambda: b_lookup(c2, n2), n2),
        ("R4 labels() rotating 100", lambda: b_rotate(c2, pairs), n2),
        ("R5 labels(kw=..).inc()", lambda: b_kwargs(c2, n2), n2),
        ("R6 gauge set()", lambda: b_set(g, n1), n1),
        ("R8 histogram observe()", lambda: b_observe(h, vals), n2),
        ("R9 cached child observe()", lambda: b_observe(hchild, vals), n2),
        ("R10 labels().observe()", lambda: b_lookup_observe(h2, vals), n2),
    ]
    return {name: median_ns(fn, repeats) / n for name, fn, n in cases}


def contended(
    ad: Any, n1: int, n2: int, repeats: int, nthreads: int = 4
) -> Dict[str, Tuple[float, bool]]:
    def make(kind: str) -> Tuple[Callable[[int], int], int, Callable[[], float], int]:
        reg = ad.new_registry()
        if kind == "T1 counter inc()":
            m = ad.counter(reg, "t_total", "h")
            return (lambda k: b_inc(m, k)), n1, (lambda: ad.value(m, "counter")), n1
        if kind == "T2 cached child inc()":
            m = ad.counter(reg, "t_total", "h", ("method", "code"))
            ch = m.labels("GET", "200")
            return (lambda k: b_inc(ch, k)), n1, (lambda: ad.value(ch, "counter")), n1
        if kind == "T3 labels().inc()":
            m = ad.counter(reg, "t_total", "h", ("method", "code"))
            ch = m.labels("GET", "200")
            return (lambda k: b_lookup(m, k)), n2, (lambda: ad.value(ch, "counter")), n2
        m = ad.histogram(reg, "t_seconds", "h")
        vals = [VALUES[i % 1000] for i in range(n2 // nthreads)]
        return (lambda k: b_observe(m, vals)), n2, (lambda: ad.value(m, "histogram")), n2

    out: Dict[str, Tuple[float, bool]] = {}
    for kind in (
        "T1 counter inc()",
        "T2 cached child inc()",
        "T3 labels().inc()",
        "T8 histogram observe()",
    ):
        walls = []
        exact = True
        for _ in range(repeats):
            body, total, getval, expected = make(kind)
            per = total // nthreads
            barrier = threading.Barrier(nthreads + 1)

            def worker(
                body: Callable[[int], int] = body, per: int = per, barrier: Any = barrier
            ) -> None:
                barrier.wait()
                body(per)

            threads = [threading.Thread(target=worker) for _ in range(nthreads)]
            for t in threads:
                t.start()
            gc.collect()
            barrier.wait()
            t0 = perf()
            for t in threads:
                t.join()
            walls.append(perf() - t0)
            exact = exact and getval() == per * nthreads
        out[kind] = (statistics.median(walls) / (per * nthreads), exact)
    return out


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


def exposition(ad: Any, sizes: List[int], repeats: int) -> Dict[Tuple[int, str], Tuple[float, int]]:
    out: Dict[Tuple[int, str], Tuple[float, int]] = {}
    for s in sizes:
        reg = build_exposition_registry(ad, s)
        reps = repeats if s <= 1000 else max(3, repeats // 2)
        text = lambda r=reg: ad.expose_text(r)  # noqa: E731
        variants: List[Tuple[str, Callable[[], bytes], bool | None]] = [("text", text, True)]
        if hasattr(ad, "set_created"):
            variants.append(("text, no _created", text, False))
        variants.append(("openmetrics", lambda r=reg: ad.expose_openmetrics(r), True))
        for label, fn, created in variants:
            if created is not None and hasattr(ad, "set_created"):
                ad.set_created(created)

            def timed(fn: Callable[[], bytes] = fn) -> int:
                t0 = perf()
                fn()
                return perf() - t0

            ms = median_ns(timed, reps) / 1e6
            out[(s, label)] = (ms, len(fn()))
        if hasattr(ad, "set_created"):
            ad.set_created(True)
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
    r_ours = recording(ours, n1, n2, repeats)
    r_anchor = recording(anchor, n1, n2, repeats) if anchor else {}
    for case, ns in r_ours.items():
        a = r_anchor.get(case)
        row(case, ns, a)

    header("contended (4 threads, one object)", "ours ns", "anchor ns", "exact totals")
    t_ours = contended(ours, n1, n2, max(3, repeats - 2))
    t_anchor = contended(anchor, n1, n2, max(3, repeats - 2)) if anchor else {}
    for case, (ns, exact) in t_ours.items():
        a, a_exact = t_anchor.get(case, (None, None))
        row(case, ns, a, f"ours={exact} anchor={a_exact}")

    header("exposition", "ours ms", "anchor ms", "bytes ours / anchor")
    e_ours = exposition(ours, sizes, repeats)
    e_anchor = exposition(anchor, sizes, repeats) if anchor else {}
    for s in sizes:
        for label in ("text", "text, no _created", "openmetrics"):
            mine = e_ours.get((s, "text" if label.startswith("text") else label))
            theirs = e_anchor.get((s, label))
            if mine is None:
                continue
            a_ms, a_bytes = theirs if theirs else (None, 0)
            row(f"S={s:<6,} {label}", mine[0], a_ms, f"{mine[1]:,} / {a_bytes:,}")

    header("import (-X importtime, cumulative)", "ours us", "anchor us")
    runs = 3 if args.quick else 7
    with tempfile.TemporaryDirectory() as cache_dir:
        anchor_us = import_time_us("prometheus_client", runs, cache_dir) if anchor else None
        modules = ("mgit_monitoring", "mgit_monitoring.collector")
        imports = {m: import_time_us(m, runs, cache_dir) for m in modules}
    for module, us in imports.items():
        row(f"import {module}", us, anchor_us)
    print("\nratio = ours / anchor (lower is better)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
