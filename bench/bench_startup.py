#!/usr/bin/env python3
"""Start-up costs, side by side with prometheus_client: cold setup time, and idle memory.

Part 1, cold setup (issue 13, item 11). Three one-statement programs, each run in a fresh
interpreter (``-X importtime`` off, bytecode caches warm), in turn A B C A B C ... so that
a machine whose speed drifts affects all of them alike:

* A: ``from mgit_monitoring.integration import setup_monitoring_integration;
  setup_monitoring_integration()`` with persistence on (a temp state dir), what mgit runs
  at start-up;
* B: ``import prometheus_client`` - the anchor;
* C: ``pass`` - the bare interpreter.

Each program times its own statement with ``time.perf_counter`` (interpreter start-up is
the same for all and left out) and reports the modules it loaded. Reported: median ms of
A and B, the median of the per-round ratio A/B, and the module counts. Goal: A/B <= 0.5;
floor: never above 1.0. Also the whole-process wall time of each (start to exit, median).

Part 2, idle memory of the monitoring server:

Three processes, each started by the same interpreter, each measured the same way: VmRSS
from ``/proc/<pid>/status`` after start and one ``GET /metrics`` (what an idle server holds
between scrapes):

* a bare interpreter (``python3 -c`` waiting on stdin) - the floor;
* ``mgit-monitoring server --simple --port 0`` on a state directory that holds data
  (written first by a process that records operations, as an mgit run does);
* prometheus_client's ``start_http_server(0)`` with its default registry - the anchor.

Goal (issue 13): ours at most 25 MB. Reported: kB for each and ours minus bare. Linux only
(``/proc``). Both figures also go to bench/report.py's final table (bench/results.py).

Usage: python3 bench/bench_startup.py [--quick] [--repeat N] [--setup-rounds R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Dict, List, Tuple

from results import emit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOAL_KB = 25 * 1024

_RECORD = """
from mgit_monitoring.integration import setup_monitoring_integration
m = setup_monitoring_integration().metrics
for i in range(50):
    m.record_operation("clone-all", success=i % 5 != 0, duration=0.2, provider="github")
"""

_ANCHOR = """
import sys, time
from prometheus_client import start_http_server
server, _thread = start_http_server(0, addr="127.0.0.1")
print("serving on http://127.0.0.1:%d" % server.server_port, flush=True)
sys.stdin.read()
"""

_BARE = """
import sys
print("ready", flush=True)
sys.stdin.read()
"""


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _measure(argv: List[str], env: dict, scrape: bool) -> int:
    proc = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if scrape:
            url = line.split()[-1]
            with urllib.request.urlopen(url + "/metrics", timeout=30) as response:
                response.read()
        time.sleep(0.3)  # let the response's buffers be released before reading RSS
        return _rss_kb(proc.pid)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


_TIMED = """
import sys, time
before = len(sys.modules)
t0 = time.perf_counter()
exec(compile(sys.argv[1], "<timed>", "exec"))
elapsed = time.perf_counter() - t0
print(elapsed, len(sys.modules) - before)
"""

_SETUP = (
    "from mgit_monitoring.integration import setup_monitoring_integration\n"
    "setup_monitoring_integration()"
)


def _timed(py: str, code: str, env: dict) -> Tuple[float, int, float]:
    """(seconds of the statement, modules it loaded, wall seconds of the whole process)."""
    start = time.perf_counter()
    out = subprocess.run(
        [py, "-c", _TIMED, code], env=env, capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    wall = time.perf_counter() - start
    return float(out[0]), int(out[1]), wall


def cold_setup(py: str, rounds: int) -> None:
    """Part 1: cold setup against ``import prometheus_client``, round-robin."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        print("prometheus_client is not installed: cold-setup anchor skipped (make test-deps)")
        return
    with tempfile.TemporaryDirectory() as state:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MGIT_MONITORING_")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's bytecode cache is warm
        env.update(PYTHONPATH=ROOT, MGIT_MONITORING_STATE_DIR=state, HOME=state)
        env["MGIT_CONFIG_PATH"] = os.path.join(state, "no-mgit-config.yaml")
        programs = (("setup", _SETUP), ("prometheus", "import prometheus_client"), ("bare", "pass"))
        for _name, code in programs:  # warm-up: bytecode caches, page cache
            _timed(py, code, env)
        runs: Dict[str, List[Tuple[float, int, float]]] = {name: [] for name, _ in programs}
        for _ in range(rounds):
            for name, code in programs:
                runs[name].append(_timed(py, code, env))
    ratios = [a[0] / b[0] for a, b in zip(runs["setup"], runs["prometheus"])]
    print(
        f"cold setup vs import prometheus_client ({sys.version.split()[0]}, {rounds} rounds, "
        "median)"
    )
    for name, label in (
        ("setup", "setup_monitoring_integration()"),
        ("prometheus", "import prometheus_client"),
        ("bare", "pass (bare interpreter)"),
    ):
        values = runs[name]
        ms = statistics.median(v[0] for v in values) * 1000
        wall = statistics.median(v[2] for v in values) * 1000
        modules = values[-1][1]
        print(
            f"  {label:<34} {ms:7.1f} ms in-process  {modules:4d} modules  "
            f"{wall:7.1f} ms whole process"
        )
    ratio = statistics.median(ratios)
    emit(
        "startup",
        "cold setup_monitoring_integration() vs import",
        statistics.median(v[0] for v in runs["setup"]) * 1000,
        statistics.median(v[0] for v in runs["prometheus"]) * 1000,
        unit="ms",
        anchor_name="import prometheus_client",
        goal=0.5,
        floor=1.0,
        ratio=ratio,
        note="ratio: median of the per-round ratios (issue 13)",
    )
    verdict = "ok" if ratio <= 0.5 else ("over the goal" if ratio <= 1.0 else "OVER THE FLOOR")
    print(
        f"  setup / import prometheus_client: {ratio:.2f}x "
        f"(per-round min {min(ratios):.2f}, max {max(ratios):.2f}); "
        f"goal <= 0.5x, floor 1.0x -> {verdict}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per process (median)")
    parser.add_argument(
        "--setup-rounds", type=int, default=15, help="rounds of the cold-setup comparison"
    )
    parser.add_argument(
        "--quick", action="store_true", help="5 setup rounds and 1 run per process (smoke run)"
    )
    args = parser.parse_args()
    if args.quick:
        args.setup_rounds, args.repeat = 5, 1
    py = sys.executable
    cold_setup(py, args.setup_rounds)
    print()
    with tempfile.TemporaryDirectory() as state:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MGIT_MONITORING_")}
        env.update(PYTHONPATH=ROOT, MGIT_MONITORING_STATE_DIR=state, HOME=state)
        subprocess.run([py, "-c", _RECORD], env=env, check=True, timeout=60)
        ours_argv = [
            py,
            "-m",
            "mgit_monitoring",
            "server",
            "--simple",
            "--port",
            "0",
            "--host",
            "127.0.0.1",
        ]
        rows: List[Tuple[str, List[int]]] = [
            (
                "bare interpreter",
                [_measure([py, "-c", _BARE], env, False) for _ in range(args.repeat)],
            ),
            (
                "mgit-monitoring server --simple",
                [_measure(ours_argv, env, True) for _ in range(args.repeat)],
            ),
        ]
        try:
            import prometheus_client  # noqa: F401
        except ImportError:
            print("prometheus_client is not installed: anchor skipped (make test-deps)")
        else:
            rows.append(
                (
                    "prometheus_client start_http_server",
                    [_measure([py, "-c", _ANCHOR], env, True) for _ in range(args.repeat)],
                )
            )
    print(
        f"idle RSS after start and one scrape ({sys.version.split()[0]}, median of {args.repeat})"
    )
    medians = {name: int(statistics.median(values)) for name, values in rows}
    bare = medians["bare interpreter"]
    for name, value in medians.items():
        print(f"  {name:<38} {value / 1024:6.1f} MB   (+{(value - bare) / 1024:.1f} MB over bare)")
    ours = medians["mgit-monitoring server --simple"]
    anchor_kb = medians.get("prometheus_client start_http_server")
    emit(
        "startup",
        "idle RSS of server --simple after a scrape",
        ours / 1024,
        None if anchor_kb is None else anchor_kb / 1024,
        unit="MB",
        anchor_name="prometheus_client start_http_server",
        max_value=GOAL_KB / 1024,
        note=f"bare interpreter {bare / 1024:.1f} MB (issue 13)",
    )
    verdict = "ok" if ours <= GOAL_KB else "OVER"
    print(f"  goal: server <= {GOAL_KB / 1024:.0f} MB -> {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
