#!/usr/bin/env python3
"""Run every bench, then print one table: each figure, ours vs the anchor of the same run.

Runs each ``bench/bench_*.py`` in turn, with this interpreter, from the checkout's root,
passing on any argument this script does not know (``--quick`` is the one every bench
understands). Each bench prints its own tables as it always did; the figures it also hands
to ``bench/results.py``'s ``emit()`` are collected through a results file
(``$MGIT_BENCH_RESULTS``), and at the end one table lists them all:

  bench | row | ours | anchor (name) | ratio | goal | met | note

Ratio = ours / anchor, lower is better for every row (throughput is shown as time per
request). "met" is yes / NO / NO (floor) / - (no goal, or no anchor to judge by); see
``bench/results.py``. A missed goal is reported, not an error: the exit status is non-zero
only when a bench fails to run (the other benches still run and the table is printed).

``--markdown PATH`` also writes the report as Markdown: date, the exact command, the commit,
the machine (CPU model, cores and RAM from /proc), the Python version, the anchors' versions,
the time each bench took, and the table. ``make bench`` writes BENCHMARKS.md that way.

Usage:
  python3 bench/report.py [--markdown PATH] [--only NAME ...] [--results PATH] [--quick]
  python3 bench/report.py --from-results PATH [--markdown PATH]   # re-render saved rows
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
ENV = "MGIT_BENCH_RESULTS"  # the variable bench/results.py's emit() reads
ANCHOR_DISTRIBUTIONS = ("prometheus-client", "python-json-logger", "structlog")
HEADER = ("bench", "row", "ours", "anchor", "ratio", "goal", "met", "note")

Row = Dict[str, Any]


# ------------------------------------------------------------------------------ rows
def short_name(bench: str) -> str:
    """``bench/bench_metrics.py`` or ``bench_metrics`` -> ``metrics``."""
    name = os.path.basename(bench)
    if name.endswith(".py"):
        name = name[:-3]
    return name[len("bench_") :] if name.startswith("bench_") else name


def load_rows(path: str) -> List[Row]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                rows.append(json.loads(line))
    return rows


def fmt_value(value: Optional[float], unit: str) -> str:
    if value is None:
        return "-"
    size = abs(value)
    if size >= 100:
        text = f"{value:,.0f}"
    elif size >= 10:
        text = f"{value:.1f}"
    elif size >= 1 or size == 0:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def ratio_of(row: Row) -> Optional[float]:
    if row.get("ratio") is not None:  # the bench's own (e.g. median of per-round ratios)
        return float(row["ratio"])
    ours, anchor = row.get("ours"), row.get("anchor")
    if ours is None or not anchor:
        return None
    return float(ours) / float(anchor)


def fmt_ratio(ratio: Optional[float]) -> str:
    if ratio is None:
        return "-"
    if ratio >= 0.095:
        return f"{ratio:.2f}x"
    if ratio >= 0.00095:
        return f"{ratio:.3f}x"
    return f"{ratio:.1e}x"


def goal_text(row: Row) -> str:
    parts = []
    if row.get("goal") is not None:
        parts.append(f"<= {row['goal']:g}x")
    if row.get("floor") is not None:
        parts.append(f"floor {row['floor']:g}x")
    if row.get("max_value") is not None:
        parts.append(f"<= {fmt_value(row['max_value'], row.get('unit', ''))}")
    return "; ".join(parts) or "-"


def verdict(row: Row) -> str:
    """yes / NO / NO (floor) / - (nothing to judge)."""
    ratio = ratio_of(row)
    checks: List[Tuple[str, bool]] = []
    if ratio is not None and row.get("goal") is not None:
        checks.append(("goal", ratio <= row["goal"]))
    if ratio is not None and row.get("floor") is not None:
        checks.append(("floor", ratio <= row["floor"]))
    if row.get("ours") is not None and row.get("max_value") is not None:
        checks.append(("max_value", row["ours"] <= row["max_value"]))
    if not checks:
        return "-"
    if any(kind == "floor" and not ok for kind, ok in checks):
        return "NO (floor)"
    return "yes" if all(ok for _kind, ok in checks) else "NO"


def table_cells(rows: Sequence[Row]) -> List[Tuple[str, ...]]:
    cells = []
    for row in rows:
        unit = row.get("unit", "")
        anchor = fmt_value(row.get("anchor"), unit)
        if row.get("anchor") is not None and row.get("anchor_name"):
            anchor = f"{anchor} ({row['anchor_name']})"
        cells.append(
            (
                short_name(str(row.get("bench", ""))),
                str(row.get("name", "")),
                fmt_value(row.get("ours"), unit),
                anchor,
                fmt_ratio(ratio_of(row)),
                goal_text(row),
                verdict(row),
                str(row.get("note", "")),
            )
        )
    return cells


def text_table(rows: Sequence[Row]) -> str:
    cells = [HEADER, *table_cells(rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER))]
    right = {2, 3, 4}  # figures align right
    out = []
    for n, line in enumerate(cells):
        parts = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        out.append("  ".join(parts).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown_table(rows: Sequence[Row]) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    out = ["| " + " | ".join(HEADER) + " |", "| --- | --- | ---: | ---: | ---: | --- | --- | --- |"]
    for line in table_cells(rows):
        out.append("| " + " | ".join(esc(c) for c in line) + " |")
    return "\n".join(out)


def summary(rows: Sequence[Row]) -> str:
    verdicts = [verdict(row) for row in rows]
    judged = [v for v in verdicts if v != "-"]
    met = judged.count("yes")
    floors = judged.count("NO (floor)")
    text = f"{len(rows)} rows; {len(judged)} with a goal: {met} met, {len(judged) - met} missed"
    return text + (f" ({floors} over the floor)" if floors else "")


# ------------------------------------------------------------------------------ machine
def _proc_lines(path: str) -> List[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().splitlines()
    except OSError:
        return []


def machine() -> Dict[str, str]:
    """CPU model, cores and RAM from /proc (platform's guesses elsewhere)."""
    cpuinfo = _proc_lines("/proc/cpuinfo")
    model = ""
    physical = set()
    phys_id = ""
    for line in cpuinfo:
        key, _, value = (part.strip() for part in line.partition(":"))
        if key in ("model name", "Hardware", "Processor", "cpu model") and not model:
            model = value
        elif key == "physical id":
            phys_id = value
        elif key == "core id":
            physical.add((phys_id, value))
    logical = os.cpu_count() or 0
    cores = f"{logical} logical CPUs"
    if physical:
        cores += f" ({len(physical)} physical cores)"
    if hasattr(os, "sched_getaffinity"):
        usable = len(os.sched_getaffinity(0))
        if usable != logical:
            cores += f", {usable} usable by this process"
    ram = ""
    for line in _proc_lines("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    load = " ".join(_proc_lines("/proc/loadavg")[:1]).split()[:3]
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "cores": cores,
        "ram": ram or "unknown",
        "os": platform.platform(),
        "load": " ".join(load) if load else "unknown",
    }


def versions() -> List[str]:
    found = []
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python < 3.8
        return found
    for dist in ANCHOR_DISTRIBUTIONS:
        try:
            found.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            found.append(f"{dist} not installed")
    try:
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
        first = (out.stdout or out.stderr).strip().splitlines()
        found.append(first[0].split(" [")[0] if first else "wrk")
    except (OSError, subprocess.SubprocessError):
        found.append("wrk not installed")
    return found


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
    ).stdout.strip()


def commit() -> str:
    try:
        head = _git("rev-parse", "--short", "HEAD")
        # The report's own output file does not make the code it measured dirty.
        dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!BENCHMARKS.md")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not head:
        return "unknown"
    return head + (" with uncommitted changes" if dirty else "")


def markdown(
    rows: Sequence[Row],
    command: str,
    quick: bool,
    timings: Sequence[Tuple[str, float, int]],
    problems: Sequence[str],
    info: Optional[Dict[str, str]] = None,
) -> str:
    info = info if info is not None else machine()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# Benchmarks", ""]
    if quick:
        lines += [
            "> **QUICK RUN (`--quick`): smoke figures from fewer iterations, not the record.**",
            "> Regenerate the real one with `make bench`.",
            "",
        ]
    else:
        lines += ["The last full benchmark run. Regenerate with `make bench`.", ""]
    lines += [
        f"- Date: {now}",
        f"- Command: `{command}`",
        f"- Commit: {commit()}",
        f"- Machine: {info['cpu']}, {info['cores']}, {info['ram']} RAM; {info['os']}",
        f"- Load average at start: {info['load']}",
        f"- Python: {platform.python_implementation()} {platform.python_version()}",
        f"- Anchors: {', '.join(versions())}",
    ]
    if timings:
        total = sum(seconds for _name, seconds, _rc in timings)
        each = ", ".join(f"{name} {seconds:.0f} s" for name, seconds, _rc in timings)
        lines.append(f"- Duration: {total:.0f} s ({each})")
    lines += [
        "",
        "Ratio = ours / anchor, both measured in the same run; lower is better for every row",
        "(throughput is shown as time per request). goal and floor are maximum ratios; a",
        "goal given as a figure (MB, ms) applies to ours. met: yes, NO (goal missed),",
        "NO (floor) (over the floor), - (no goal, or no anchor to judge by). Each bench's own",
        "output, printed during the run, has the detail behind each row.",
        "",
        markdown_table(rows),
        "",
        summary(rows) + ".",
    ]
    if problems:
        lines += ["", "Problems in this run:", ""] + [f"- {p}" for p in problems]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ running
def discover(bench_dir: str, only: Sequence[str]) -> List[str]:
    paths = sorted(glob.glob(os.path.join(bench_dir, "bench_*.py")))
    if only:
        wanted = {short_name(name) for name in only}
        paths = [p for p in paths if short_name(p) in wanted]
    return paths


def run_benches(
    paths: Sequence[str], extra: Sequence[str], results: str
) -> Tuple[List[Tuple[str, float, int]], List[str]]:
    """Run each bench, streaming its output; (timings, problems)."""
    timings: List[Tuple[str, float, int]] = []
    problems: List[str] = []
    env = dict(os.environ)
    env[ENV] = results
    for path in paths:
        name = short_name(path)
        rel = os.path.relpath(path, ROOT)
        before = len(load_rows(results))
        print(f"\n== {rel} {' '.join(extra)}".rstrip(), flush=True)
        start = time.monotonic()
        try:
            rc = subprocess.run([sys.executable, path, *extra], cwd=ROOT, env=env).returncode
        except KeyboardInterrupt:
            raise
        except OSError as exc:
            print(f"could not run {rel}: {exc}", flush=True)
            rc = 127
        seconds = time.monotonic() - start
        timings.append((name, seconds, rc))
        emitted = len(load_rows(results)) - before
        print(f"== {rel}: exit {rc}, {seconds:.1f} s, {emitted} rows", flush=True)
        if rc != 0:
            problems.append(f"{rel} failed (exit status {rc})")
        elif emitted == 0:
            problems.append(f"{rel} emitted no rows")
    return timings, problems


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        allow_abbrev=False,
        epilog="Other arguments (e.g. --quick) are passed to every bench.",
    )
    ap.add_argument("--markdown", metavar="PATH", help="also write the report as Markdown")
    ap.add_argument("--only", action="append", default=[], metavar="NAME", help="run NAME only")
    ap.add_argument("--results", metavar="PATH", help="keep the raw rows (JSON lines) here")
    ap.add_argument("--from-results", metavar="PATH", help="render saved rows; run nothing")
    ap.add_argument("--bench-dir", default=BENCH_DIR, help=argparse.SUPPRESS)
    args, extra = ap.parse_known_args(argv)
    command = shlex.join([sys.executable, *(sys.argv if argv is None else ["report.py", *argv])])
    if os.environ.get("MAKELEVEL"):
        command += "  (run by make)"
    quick = "--quick" in extra
    info = machine()  # before the benches: the load average at start

    timings: List[Tuple[str, float, int]] = []
    problems: List[str] = []
    if args.from_results:
        rows = load_rows(args.from_results)
    else:
        paths = discover(args.bench_dir, args.only)
        if not paths:
            print(f"no bench matches {args.only}", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory(prefix="mgit_bench_") as tmp:
            results = os.path.abspath(args.results or os.path.join(tmp, "results.jsonl"))
            open(results, "w", encoding="utf-8").close()
            timings, problems = run_benches(paths, extra, results)
            rows = load_rows(results)

    print("\n" + "=" * 100)
    print(
        "ALL BENCHMARKS: ours vs the anchor measured in the same run"
        + (" (QUICK RUN: smoke figures)" if quick else "")
    )
    print("ratio = ours / anchor, lower is better; goal/floor = maximum ratio; met: yes/NO/-")
    print(text_table(rows))
    print(summary(rows))
    if timings:
        total = sum(seconds for _name, seconds, _rc in timings)
        each = ", ".join(f"{name} {seconds:.0f} s" for name, seconds, _rc in timings)
        print(f"took {total:.0f} s: {each}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if args.markdown:
        text = markdown(rows, command, quick, timings, problems, info)
        with open(args.markdown, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"wrote {args.markdown}")
    failed = [name for name, _seconds, rc in timings if rc != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
