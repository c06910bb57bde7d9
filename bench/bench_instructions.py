#!/usr/bin/env python3
"""Instructions per decorated call against the anchor's, counted by valgrind (callgrind).

Time on a shared VM drifts from one minute to the next (the anchor's own median moved
between 32 and 55 us within an hour here), so the logged-call goal of issue 14 is also
measured in a unit that does not drift: CPU instructions, which callgrind counts exactly
(the same count twice for the same binary and inputs, whatever else the machine does).
It says nothing of cache misses or of the writer thread competing for the GIL: the time
figures of ``bench_integration.py`` stay the primary ones.

Each variant runs in a child process under callgrind twice, with 0 and with N calls after
the same warm-up; the difference divided by N is the cost of one call. Variants, as in
``bench_integration.py`` (persistence on, in a temp state dir):

  op_on           ``@monitor_mgit_operation`` with its logger quiet (WARNING)
  op_on_logged    the same with its logger at INFO, one JSON line per call written by the
                  background writer: the calling thread's instructions
  op_on_logged (all threads)  the same loop, then ``flush_logs()``: every thread's
                  instructions, the writer's included
  anchor          prometheus_client Counter.inc() + Histogram.observe() + one
                  python-json-logger line, all on the calling thread

Usage: python3 bench/bench_instructions.py [--quick] [--n N]
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(BENCH_DIR))
sys.path.insert(0, BENCH_DIR)

from results import emit  # noqa: E402

WARM_UP = 200
VARIANTS = ("op_on", "op_on_logged", "anchor")


def child(variant: str, n: int, flush: bool) -> int:
    """Run under callgrind: warm up, then ``n`` calls of ``variant``; no output."""
    import bench_integration as b

    from mgit_monitoring.integration import flush_logs, setup_monitoring_integration
    from mgit_monitoring.log_writer import get_log_writer

    state_dir = tempfile.mkdtemp(prefix="mgit-bench-instr-")
    setup_monitoring_integration(state_dir=state_dir)
    functions = b.build_functions(state_dir)
    setup_monitoring_integration(state_dir=state_dir, force=True)
    fn = b.build_anchor() if variant == "anchor" else functions[variant][1]
    if fn is None:
        return 3
    for _ in range(WARM_UP):
        fn()
    # Written by the writer thread, not by this one: the calling thread's count then holds
    # only what the loop below costs it.
    get_log_writer().wait_written(60)
    for _ in range(n):
        fn()
    if flush:
        flush_logs()
    sys.stdout.flush()
    os._exit(0)  # no exit hooks: they would be counted in one run and not the other


def count(valgrind: str, variant: str, n: int, flush: bool, out_dir: str) -> Dict[str, int]:
    """Instructions of one child run: {"main": calling thread, "all": every thread}."""
    prefix = os.path.join(out_dir, f"{variant}.{n}.{int(flush)}")
    cmd = [
        valgrind,
        "--tool=callgrind",
        "--separate-threads=yes",
        f"--callgrind-out-file={prefix}.%p",
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        variant,
        str(n),
    ]
    if flush:
        cmd.append("--flush")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    totals: Dict[str, int] = {"main": 0, "all": 0}
    for path in sorted(glob.glob(prefix + ".*-*")):  # one file per thread: <pid>-01 ...
        with open(path, encoding="utf-8") as handle:
            summary = next(int(line.split()[1]) for line in handle if line.startswith("summary:"))
        totals["all"] += summary
        if path.endswith("-01"):  # the first thread: the one that calls
            totals["main"] = summary
    return totals


def per_call(valgrind: str, variant: str, n: int, flush: bool, out_dir: str) -> Dict[str, float]:
    base = count(valgrind, variant, 0, flush, out_dir)
    loaded = count(valgrind, variant, n, flush, out_dir)
    return {key: (loaded[key] - base[key]) / n for key in base}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 calls per run")
    parser.add_argument("--n", type=int, default=1000, help="calls per counted run")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--flush", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child[0], int(args.child[1]), bool(args.flush))
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("bench_instructions: skipped (valgrind is not installed)")
        return 0
    try:
        import prometheus_client  # noqa: F401
        import pythonjsonlogger  # noqa: F401
    except ImportError:
        print("bench_instructions: skipped (the anchor's prometheus_client/python-json-logger)")
        return 0
    n = 200 if args.quick else args.n
    print(
        f"bench_instructions: Python {platform.python_version()} on {platform.machine()}, "
        f"instructions per call (callgrind, {n} calls minus 0 calls)"
    )
    with tempfile.TemporaryDirectory(prefix="mgit-bench-callgrind-") as out_dir:
        op_on = per_call(valgrind, "op_on", n, False, out_dir)["main"]
        logged = per_call(valgrind, "op_on_logged", n, False, out_dir)["main"]
        logged_all = per_call(valgrind, "op_on_logged", n, True, out_dir)["all"]
        anchor = per_call(valgrind, "anchor", n, True, out_dir)["all"]
    rows = (
        ("op_on", op_on, "calling thread, its logger quiet"),
        ("op_on_logged", logged, "calling thread; the writer thread's work is its own"),
        ("op_on_logged (all threads)", logged_all, "the writer's work included"),
        ("anchor", anchor, "everything on the calling thread"),
    )
    print(f"\n{'variant':<30}{'instr/call':>12}{'vs anchor':>11}")
    for name, value, how in rows:
        print(f"{name:<30}{value:>12.0f}{value / anchor:>10.2f}x  {how}")
    kilo = 1000.0
    emit("instructions", "op_on_logged (calling thread)", logged / kilo, anchor / kilo,
         unit="k instr", anchor_name="anchor (callgrind)", goal=0.5, floor=1.0,
         note="issue 14 §6, counted: no drift, no cache or GIL effects")  # fmt: skip
    emit("instructions", "op_on_logged (all threads)", logged_all / kilo, anchor / kilo,
         unit="k instr", anchor_name="anchor (callgrind)",
         note="everything one logged call costs, the writer's work included")  # fmt: skip
    emit("instructions", "op_on (logger quiet)", op_on / kilo, anchor / kilo,
         unit="k instr", anchor_name="anchor (callgrind)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
