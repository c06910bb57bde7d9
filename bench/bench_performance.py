#!/usr/bin/env python3
"""bench_performance.py - cost of the performance monitor's hot paths and its memory bound.

WORKLOAD
  ours (one process, fresh objects per case):
    start_end        tid = m.start_trace("clone_repos"); m.end_trace(tid)      memory-only monitor
    start_end_store  the same on a monitor with a state dir (traces buffered, flushed in batches)
    trace_operation  with m.trace_operation("clone_repos"): pass
    decorated        @monitor_performance("clone_repos", monitor=m) on a no-op, called
    plain            the undecorated no-op (reference for the decorator's overhead)
  anchor (same run, if installed): what one operation costs with the usual libraries:
    prometheus_client Counter(op).labels("clone_repos").inc() + Histogram(op).labels(...)
    .observe(0.123) + one python-json-logger INFO line with 3 extra fields to a null sink.
  timing: perf_counter_ns around a loop of N calls; R repeats, median reported; ratio =
    ours / anchor (lower is better).
  memory: VmRSS (/proc/self/status; ru_maxrss elsewhere) before and after recording
    1,000,000 traces (--quick: 100,000) on a default monitor (cap 10,000).
  store: one flush of 10,000 buffered traces, and get_operation_metrics over them.
  Every figure also goes to bench/report.py's final table (bench/results.py); no issue
  states a goal for these rows (the decorator goals are bench_integration.py's).

Usage: python3 bench/bench_performance.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import io
import logging
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from results import emit  # noqa: E402

from mgit_monitoring.performance import PerformanceMonitor, monitor_performance  # noqa: E402

ANCHOR_NAME = "prometheus_client + python-json-logger"


def _median_ns(fn, n: int, repeats: int) -> float:
    fn(n // 10 or 1)  # warm-up
    samples = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter_ns()
        fn(n)
        samples.append((time.perf_counter_ns() - t0) / n)
    return statistics.median(samples)


def _rss_kib() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def ours_cases(state_dir: str):
    mem = PerformanceMonitor(max_traces=10000)
    stored = PerformanceMonitor(max_traces=10000, state_dir=state_dir, flush_interval=1.0)

    def start_end(n, m=mem):
        start, end = m.start_trace, m.end_trace
        for _ in range(n):
            end(start("clone_repos"))

    def start_end_store(n):
        start_end(n, stored)

    def trace_operation(n):
        trace = mem.trace_operation
        for _ in range(n):
            with trace("clone_repos"):
                pass

    def noop():
        return None

    decorated_fn = monitor_performance("clone_repos", monitor=mem)(noop)

    def decorated(n):
        for _ in range(n):
            decorated_fn()

    def plain(n):
        for _ in range(n):
            noop()

    cases = {
        "start_end": start_end,
        "start_end_store": start_end_store,
        "trace_operation": trace_operation,
        "decorated": decorated,
        "plain": plain,
    }
    return cases, stored


def anchor_case():
    try:
        import prometheus_client as pc
    except ImportError:
        return None, "prometheus_client not installed"
    try:
        from pythonjsonlogger.json import JsonFormatter
    except ImportError:
        try:
            from pythonjsonlogger.jsonlogger import JsonFormatter  # python-json-logger < 3
        except ImportError:
            return None, "python-json-logger not installed"
    registry = pc.CollectorRegistry()
    counter = pc.Counter("bench_ops_total", "h", ["operation"], registry=registry)
    hist = pc.Histogram("bench_op_seconds", "h", ["operation"], registry=registry)

    class NullSink(io.TextIOBase):
        def write(self, s):
            return len(s)

    handler = logging.StreamHandler(NullSink())
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    log = logging.getLogger("bench.anchor")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    extra = {
        "correlation_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "repo": "github.com/example-org/example-repo",
        "duration_ms": 123.456,
    }

    def anchor(n):
        for _ in range(n):
            counter.labels("clone_repos").inc()
            hist.labels("clone_repos").observe(0.123)
            log.info("repository synced", extra=extra)

    return anchor, ""


def memory_case(count: int) -> tuple:
    gc.collect()
    before = _rss_kib()
    monitor = PerformanceMonitor()
    start, end = monitor.start_trace, monitor.end_trace
    names = [f"op{i}" for i in range(20)]
    for i in range(count):
        end(start(names[i % 20], repo="org/repo"))
    gc.collect()
    after = _rss_kib()
    return before, after, len(monitor.recent_traces())


def store_case(state_dir: str, count: int = 10000) -> tuple:
    monitor = PerformanceMonitor(max_traces=count, state_dir=state_dir, flush_interval=3600)
    for _ in range(count):
        monitor.end_trace(monitor.start_trace("flush_op"))
    t0 = time.perf_counter()
    monitor.flush()
    t1 = time.perf_counter()
    metrics = monitor.get_operation_metrics("flush_op")
    t2 = time.perf_counter()
    monitor.close()
    return (t1 - t0) * 1000, (t2 - t1) * 1000, metrics.count


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations (~10 s)")
    args = ap.parse_args(argv)
    n = 10000 if args.quick else 50000
    repeats = 5 if args.quick else 7
    traces = 100000 if args.quick else 1000000
    print(f"# python {sys.version.split()[0]}  cpus={os.cpu_count()}  N={n}  repeats={repeats}")
    with tempfile.TemporaryDirectory() as tmp:
        cases, stored = ours_cases(os.path.join(tmp, "hot"))
        results = {name: _median_ns(fn, n, repeats) for name, fn in cases.items()}
        stored.close()
        anchor, why = anchor_case()
        anchor_ns = _median_ns(anchor, n, repeats) if anchor else None

        print()
        print("| case | ours ns/op | anchor ns/op | ours/anchor |")
        print("| --- | ---: | ---: | ---: |")
        for name, ns in results.items():
            if name != "plain":
                emit("performance", name, ns, anchor_ns, anchor_name=ANCHOR_NAME)
            if anchor_ns is None or name == "plain":
                print(f"| {name} | {ns:,.0f} | - | - |")
            else:
                print(f"| {name} | {ns:,.0f} | {anchor_ns:,.0f} | {ns / anchor_ns:.2f} |")
        if anchor_ns is None:
            print(f"(anchor rows skipped: {why})")
        overhead = results["decorated"] - results["plain"]
        print(f"\ndecorator overhead over the plain call: {overhead:,.0f} ns")
        emit("performance", "decorator overhead over the plain call", overhead, None)

        before, after, kept = memory_case(traces)
        print(
            f"\nRSS before {before / 1024:.1f} MiB, after recording {traces:,} traces "
            f"{after / 1024:.1f} MiB (+{(after - before) / 1024:.1f} MiB; {kept:,} kept in memory)"
        )
        emit(
            "performance",
            f"RSS growth after {traces:,} traces",
            (after - before) / 1024,
            None,
            unit="MiB",
            note=f"{kept:,} kept in memory",
        )
        flush_ms, query_ms, count = store_case(os.path.join(tmp, "store"))
        print(
            f"store: flush of {count:,} traces {flush_ms:.1f} ms; "
            f"get_operation_metrics over them {query_ms:.1f} ms"
        )
        emit("performance", f"store flush of {count:,} traces", flush_ms, None, unit="ms")
        emit("performance", f"get_operation_metrics over {count:,}", query_ms, None, unit="ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
