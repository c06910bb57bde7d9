#!/usr/bin/env python3
"""Idle memory of the monitoring server, side by side with its anchors.

Three processes, each started by the same interpreter, each measured the same way: VmRSS
from ``/proc/<pid>/status`` after start and one ``GET /metrics`` (what an idle server holds
between scrapes):

* a bare interpreter (``python3 -c`` waiting on stdin) - the floor;
* ``mgit-monitoring server --simple --port 0`` on a state directory that holds data
  (written first by a process that records operations, as an mgit run does);
* prometheus_client's ``start_http_server(0)`` with its default registry - the anchor.

Goal (issue 13): ours at most 25 MB. Reported: kB for each and ours minus bare. Linux only
(``/proc``). Usage: python3 bench/bench_startup.py [--repeat N]
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
from typing import List, Tuple

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per process (median)")
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as state:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MGIT_MONITORING_")}
        env.update(PYTHONPATH=ROOT, MGIT_MONITORING_STATE_DIR=state, HOME=state)
        subprocess.run([py, "-c", _RECORD], env=env, check=True, timeout=60)
        ours_argv = [py, "-m", "mgit_monitoring", "server", "--simple", "--port", "0",
                     "--host", "127.0.0.1"]
        rows: List[Tuple[str, List[int]]] = [
            ("bare interpreter", [_measure([py, "-c", _BARE], env, False) for _ in range(args.repeat)]),
            ("mgit-monitoring server --simple", [_measure(ours_argv, env, True) for _ in range(args.repeat)]),
        ]
        try:
            import prometheus_client  # noqa: F401
        except ImportError:
            print("prometheus_client is not installed: anchor skipped (make test-deps)")
        else:
            rows.append(
                ("prometheus_client start_http_server",
                 [_measure([py, "-c", _ANCHOR], env, True) for _ in range(args.repeat)])
            )
    print(f"idle RSS after start and one scrape ({sys.version.split()[0]}, median of {args.repeat})")
    medians = {name: int(statistics.median(values)) for name, values in rows}
    bare = medians["bare interpreter"]
    for name, value in medians.items():
        print(f"  {name:<38} {value / 1024:6.1f} MB   (+{(value - bare) / 1024:.1f} MB over bare)")
    ours = medians["mgit-monitoring server --simple"]
    verdict = "ok" if ours <= GOAL_KB else "OVER"
    print(f"  goal: server <= {GOAL_KB / 1024:.0f} MB -> {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
