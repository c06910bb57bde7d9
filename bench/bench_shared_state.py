#!/usr/bin/env python3
"""Cross-process metrics benchmark: mgit_monitoring's shared store vs prometheus_client's
multiprocess mode, same workload, same run.

Workload: N short-lived "processes" each record the same thing and exit:
  * metrics: operations_total{operation,provider}, operations_success_total{...},
    operation_duration_seconds{...} (16 buckets), concurrent_operations gauge (sum/livesum);
  * each process records 3 operations (clone/github, pull/github, clone/azure), sets the
    gauge to 3, then exits cleanly.
Ours: every process opens its own Store on the shared file (new sqlite connection, schema
check), records in a MetricsCollector-like registry and runs SharedMetrics.stop() (the exit
flush, which removes its gauges). Anchor: prometheus_client with PROMETHEUS_MULTIPROC_DIR, a
fresh CollectorRegistry per process, a MultiProcessValue class bound to the process's own
id, and multiprocess.mark_process_dead(pid) at exit (the documented gunicorn child_exit
hook); its mmapped files are closed by the value class's own cleanup, as at exit. Both
are simulated inside this one interpreter with distinct process identities:
the file and database work is exactly what N real processes would do, without paying N
interpreter start-ups.

Reported:
  F  per-process cost: metric creation + 3 operations + exit flush (ours) / files (anchor),
     median over all processes, and the flush alone for ours;
  S  scrape after 100 / 1,000 / 10,000 processes: merged view + text 0.0.4 rendering
     (ours: merged_snapshot + render_text; anchor: MultiProcessCollector + generate_latest),
     median of 5 (1 at the largest size for the anchor, which reads every file).
Also checked: both views report exactly 3*N operations (prints MISMATCH otherwise).

No issue states a goal for these rows; they go to bench/report.py's final table with the
others (bench/results.py).

Ratios are ours / anchor: lower is better. Run: python3 bench/bench_shared_state.py [--quick]
(--quick stops at 1,000 processes). If prometheus_client is missing the anchor rows print a
one-line skip and the run still exits 0.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from results import emit  # noqa: E402

from mgit_monitoring.exposition import render_text  # noqa: E402
from mgit_monitoring.registry import Registry  # noqa: E402
from mgit_monitoring.shared_state import SharedMetrics, merged_snapshot  # noqa: E402
from mgit_monitoring.store import Store  # noqa: E402

perf = time.perf_counter
OPS = (("clone", "github", 2.5), ("pull", "github", 0.4), ("clone", "azure", 7.0))
LABELS = ("operation", "provider")


def _median(xs: List[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _time(fn: Callable[[], Any], repeat: int) -> Tuple[float, Any]:
    samples, result = [], None
    for _ in range(repeat):
        gc.collect()
        t0 = perf()
        result = fn()
        samples.append(perf() - t0)
    return _median(samples), result


# ------------------------------------------------------------------------------ ours
class Ours:
    name = "mgit_monitoring"

    def __init__(self, directory: str) -> None:
        self.dir = directory
        self.reader = Store.open(directory)
        self.flush_times: List[float] = []
        self.process_times: List[float] = []

    def process(self, i: int) -> None:
        t0 = perf()
        store = Store.open(self.dir)
        reg = Registry()
        ops = reg.counter("mgit_operations_total", "Operations.", LABELS)
        ok = reg.counter("mgit_operations_success_total", "Successes.", LABELS)
        dur = reg.histogram("mgit_operation_duration_seconds", "Durations.", LABELS)
        reg.gauge("mgit_concurrent_operations", "Running now.", merge="sum").set(3)
        for op, provider, seconds in OPS:
            ops.labels(op, provider).inc()
            ok.labels(op, provider).inc()
            dur.labels(op, provider).observe(seconds)
        shared = SharedMetrics(store, reg, process_id=f"bench-{i}")
        t1 = perf()
        if not shared.stop():
            raise RuntimeError(f"flush of process {i} failed")
        t2 = perf()
        store.close()
        self.flush_times.append(t2 - t1)
        self.process_times.append(perf() - t0)

    def scrape(self) -> Tuple[bytes, float]:
        snap = merged_snapshot(self.reader)
        total = sum(s.value for f in snap.families if f.name == "mgit_operations" for s in f.series)
        return render_text(snap), total

    def close(self) -> None:
        self.reader.close()


# ------------------------------------------------------------------------------ anchor
class Anchor:
    name = "prometheus_client"

    def __init__(self, directory: str) -> None:
        import prometheus_client
        from prometheus_client import multiprocess, values

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory  # the anchor reads it at use time
        self.pc = prometheus_client
        self.mp = multiprocess
        self.values = values
        self.dir = directory
        self.process_times: List[float] = []

    def process(self, i: int) -> None:
        pc, values = self.pc, self.values
        pid = 10_000_000 + i
        t0 = perf()
        original = values.ValueClass
        values.ValueClass = values.MultiProcessValue(process_identifier=lambda: pid)
        try:
            reg = pc.CollectorRegistry()
            ops = pc.Counter("mgit_operations", "Operations.", LABELS, registry=reg)
            ok = pc.Counter("mgit_operations_success", "Successes.", LABELS, registry=reg)
            dur = pc.Histogram(
                "mgit_operation_duration_seconds",
                "Durations.",
                LABELS,
                registry=reg,
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                         10.0, 30.0, 60.0, 120.0, 300.0, 600.0),
            )  # fmt: skip
            g = pc.Gauge(
                "mgit_concurrent_operations", "Running now.", registry=reg,
                multiprocess_mode="livesum",
            )  # fmt: skip
            g.set(3)
            for op, provider, seconds in OPS:
                ops.labels(op, provider).inc()
                ok.labels(op, provider).inc()
                dur.labels(op, provider).observe(seconds)
        finally:
            values.ValueClass = original
            # "Exit": close this process's mmapped files with the cleanup the value class
            # registered (a real process exiting releases them the same way).
            values._multi_process_cleanups.pop()()
        self.mp.mark_process_dead(pid, self.dir)
        self.process_times.append(perf() - t0)

    def scrape(self) -> Tuple[bytes, float]:
        pc = self.pc
        reg = pc.CollectorRegistry()
        self.mp.MultiProcessCollector(reg, path=self.dir)
        body = pc.generate_latest(reg)
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith("mgit_operations_total{"):
                total += float(line.rsplit(" ", 1)[1])
        return body, total

    def close(self) -> None:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


# ------------------------------------------------------------------------------ driver
def run(impl: Any, checkpoints: List[int]) -> Dict[int, Tuple[float, int]]:
    """Simulate processes up to each checkpoint, then time the scrape there."""
    results: Dict[int, Tuple[float, int]] = {}
    done = 0
    for n in checkpoints:
        while done < n:
            impl.process(done)
            done += 1
            if done % 100 == 0:
                gc.collect()  # untimed: the per-process objects of both sides are garbage
        repeat = 1 if (impl.name != Ours.name and n >= 10_000) else 5
        seconds, (body, total) = _time(impl.scrape, repeat)
        if total != 3 * n:
            print(f"MISMATCH {impl.name}: {total} operations after {n} processes, expected {3 * n}")
        results[n] = (seconds, len(body))
    return results


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="stop at 1,000 processes")
    args = ap.parse_args(argv)
    checkpoints = [100, 1_000] if args.quick else [100, 1_000, 10_000]
    print(f"# python {sys.version.split()[0]}  cpus={os.cpu_count()}  processes={checkpoints[-1]}")

    base = tempfile.mkdtemp(prefix="bench_shared_state_")
    try:
        t0 = perf()
        ours = Ours(os.path.join(base, "ours"))
        ours_res = run(ours, checkpoints)
        ours.close()
        ours_wall = perf() - t0
        anchor_res: Dict[int, Tuple[float, int]] = {}
        anchor: Any = None
        try:
            anchor_dir = os.path.join(base, "anchor")
            os.mkdir(anchor_dir)
            anchor = Anchor(anchor_dir)
        except ImportError:
            print("# prometheus_client is not installed: anchor rows skipped")
        if anchor is not None:
            t1 = perf()
            anchor_res = run(anchor, checkpoints)
            anchor.close()
            anchor_wall = perf() - t1
            files = len(os.listdir(anchor_dir))
        db = os.path.join(base, "ours", "monitoring.sqlite3")
        db_size = sum(os.path.getsize(db + s) for s in ("", "-wal") if os.path.exists(db + s))

        def row(case: str, ours_s: float, anchor_s: float | None) -> None:
            emit(
                "shared_state",
                case,
                ours_s * 1e3,
                None if anchor_s is None else anchor_s * 1e3,
                unit="ms",
                anchor_name="prometheus_client multiprocess",
            )
            if anchor_s is None:
                print(f"| {case} | {ours_s * 1e3:,.3f} | skipped | - |")
            else:
                ratio = ours_s / anchor_s if anchor_s else float("nan")
                print(f"| {case} | {ours_s * 1e3:,.3f} | {anchor_s * 1e3:,.3f} | {ratio:.2f} |")

        print("\n| case | ours ms | anchor ms | ours/anchor |")
        print("| --- | ---: | ---: | ---: |")
        row(
            "F per process: create + 3 ops + exit flush (median)",
            _median(ours.process_times),
            _median(anchor.process_times) if anchor is not None else None,
        )
        print(f"| F ours: exit flush alone (median / p99) | {_median(ours.flush_times) * 1e3:,.3f}"
              f" / {sorted(ours.flush_times)[int(len(ours.flush_times) * 0.99)] * 1e3:,.3f}"
              " | - | - |")  # fmt: skip
        flush_ms = _median(ours.flush_times) * 1e3
        emit("shared_state", "F ours: exit flush alone (median)", flush_ms, None, unit="ms")
        for n in checkpoints:
            row(
                f"S scrape after {n:,} processes",
                ours_res[n][0],
                anchor_res[n][0] if n in anchor_res else None,
            )
        print()
        print(f"# ours: {ours_wall:.1f} s total, store {db_size / 1024:.0f} KiB, "
              f"body {ours_res[checkpoints[-1]][1]:,} B")  # fmt: skip
        if anchor is not None:
            print(f"# anchor: {anchor_wall:.1f} s total, {files:,} files left in the "
                  f"multiprocess dir, body {anchor_res[checkpoints[-1]][1]:,} B")  # fmt: skip
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
