"""bench/report.py's final table and BENCHMARKS.md, on synthetic rows and stand-in benches.

No real bench runs here and nothing is timed: the rows are made up, and the stand-in benches
only emit rows or fail, so the assertions are about what the report shows.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import textwrap
import unittest
from unittest import mock

ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
REPORT = BENCH / "report.py"

ROWS = [
    # ratio 0.5, goal 0.8: met
    {"bench": "metrics", "name": "R1 counter inc()", "ours": 200.0, "anchor": 400.0,
     "unit": "ns", "anchor_name": "prometheus_client", "goal": 0.8},
    # ratio 2.0, goal 0.5, floor 1.0: over the floor
    {"bench": "bench_startup", "name": "cold setup", "ours": 60.0, "anchor": 30.0,
     "unit": "ms", "anchor_name": "import prometheus_client", "goal": 0.5, "floor": 1.0},
    # ratio 0.75, goal 0.5: missed, within no floor
    {"bench": "logs", "name": "masked line", "ours": 7.5, "anchor": 10.0, "unit": "us",
     "anchor_name": "python-json-logger", "goal": 0.5, "note": "issue 14"},
    # no anchor, an absolute goal missed
    {"bench": "server", "name": "probe median", "ours": 7.0, "anchor": None, "unit": "ms",
     "max_value": 5.0},
    # the bench's own ratio (0.45) wins over ours / anchor (0.6)
    {"bench": "startup", "name": "own ratio", "ours": 6.0, "anchor": 10.0, "unit": "ms",
     "anchor_name": "a", "goal": 0.5, "ratio": 0.45},
    # no anchor, no goal
    {"bench": "performance", "name": "store flush", "ours": 61.0, "anchor": None,
     "unit": "ms"},
]  # fmt: skip


def _table_lines(stdout: str) -> dict:
    """Row name -> the table line that holds it."""
    found = {}
    for row in ROWS:
        lines = [line for line in stdout.splitlines() if row["name"] in line]
        found[row["name"]] = lines[-1] if lines else ""
    return found


# report.py appends "(run by make)" to the recorded command when MAKELEVEL is set; the
# suite itself runs under make (make test, make test-matrix), so leave make's variables out.
_MAKE_VARS = ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ if env is None else env)
    for name in _MAKE_VARS:
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, str(REPORT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=str(ROOT),
    )


class ReportTableTest(unittest.TestCase):
    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = pathlib.Path(tmp.name)
        self.results = self.tmp / "rows.jsonl"
        self.results.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")

    def test_table_shows_ratio_goal_and_verdict_per_row(self) -> None:
        proc = _run("--from-results", str(self.results))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        lines = _table_lines(proc.stdout)
        met = lines["R1 counter inc()"]
        self.assertIn("200 ns", met)
        self.assertIn("400 ns (prometheus_client)", met)
        self.assertIn("0.50x", met)
        self.assertIn("<= 0.8x", met)
        self.assertRegex(met, r"\byes\b")
        floor = lines["cold setup"]
        self.assertTrue(floor.startswith("startup "), floor)  # "bench_" prefix dropped
        self.assertIn("2.00x", floor)
        self.assertIn("<= 0.5x; floor 1x", floor)
        self.assertIn("NO (floor)", floor)
        missed = lines["masked line"]
        self.assertIn("0.75x", missed)
        self.assertRegex(missed, r"\bNO\b")
        self.assertNotIn("floor", missed)
        self.assertIn("issue 14", missed)
        absolute = lines["probe median"]
        self.assertIn("<= 5.00 ms", absolute)
        self.assertRegex(absolute, r"\bNO\b")
        own = lines["own ratio"]
        self.assertIn("0.45x", own)
        self.assertRegex(own, r"\byes\b")
        bare = lines["store flush"].split()
        # ours, then anchor, ratio, goal and met all '-'
        self.assertEqual(bare[-6:], ["61.0", "ms", "-", "-", "-", "-"], bare)
        self.assertIn("6 rows; 5 with a goal: 2 met, 3 missed (1 over the floor)", proc.stdout)

    def test_markdown_records_machine_python_command_and_table(self) -> None:
        out = self.tmp / "BENCHMARKS.md"
        proc = _run("--from-results", str(self.results), "--markdown", str(out))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        text = out.read_text(encoding="utf-8")
        self.assertTrue(text.startswith("# Benchmarks\n"))
        self.assertNotIn("QUICK RUN", text)
        self.assertIn(f"--from-results {self.results} --markdown {out}`", text)
        self.assertRegex(text, r"- Machine: .+, \d+ logical CPUs.*, [\d.]+ GiB RAM")
        python = f"{platform.python_implementation()} {platform.python_version()}"
        self.assertIn(f"- Python: {python}", text)
        self.assertIn("| bench | row | ours | anchor | ratio | goal | met | note |", text)
        self.assertIn(
            "| metrics | R1 counter inc() | 200 ns | 400 ns (prometheus_client) | 0.50x "
            "| <= 0.8x | yes |  |",
            text,
        )
        self.assertIn("| performance | store flush | 61.0 ms | - | - | - | - |  |", text)

    def test_markdown_notes_a_run_by_make(self) -> None:
        out = self.tmp / "BENCHMARKS.md"
        env = {k: v for k, v in os.environ.items() if k not in _MAKE_VARS}
        env["MAKELEVEL"] = "1"
        proc = subprocess.run(
            [
                sys.executable,
                str(REPORT),
                "--from-results",
                str(self.results),
                "--markdown",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=str(ROOT),
        )
        self.assertEqual(proc.returncode, 0, proc.stderr)
        text = out.read_text(encoding="utf-8")
        self.assertIn(f"--markdown {out}  (run by make)`", text)

    def test_quick_markdown_is_labelled(self) -> None:
        out = self.tmp / "quick.md"
        proc = _run("--from-results", str(self.results), "--markdown", str(out), "--quick")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("QUICK RUN", proc.stdout)
        self.assertIn("**QUICK RUN (`--quick`)", out.read_text(encoding="utf-8"))


class ReportRunTest(unittest.TestCase):
    """The runner on two stand-in benches: one emits rows, one fails."""

    def test_rows_collected_arguments_passed_and_failure_exits_non_zero(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            good = textwrap.dedent(f"""\
                import sys
                sys.path.insert(0, {str(BENCH)!r})
                from results import emit
                print("own table of the good bench")
                emit("good", "row one", 3.0, 4.0, anchor_name="anchor", goal=1.0,
                     note=" ".join(sys.argv[1:]))
                emit("good", "row two", 5.0, None, unit="ms")
                """)
            pathlib.Path(tmp, "bench_good.py").write_text(good, encoding="utf-8")
            pathlib.Path(tmp, "bench_bad.py").write_text("raise SystemExit(3)\n", encoding="utf-8")
            pathlib.Path(tmp, "helper.py").write_text("raise SystemExit(9)\n", encoding="utf-8")
            env = {k: v for k, v in os.environ.items() if k != "MGIT_BENCH_RESULTS"}
            proc = _run("--bench-dir", tmp, "--quick", env=env)
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        out = proc.stdout
        self.assertIn("own table of the good bench", out)  # each bench's output streams
        self.assertIn("bench_good.py: exit 0", out)
        self.assertIn("bench_bad.py: exit 3", out)
        self.assertNotIn("helper.py", out)  # only bench_*.py run
        self.assertIn("PROBLEM: ", out)
        self.assertIn("bench_bad.py failed (exit status 3)", out)
        table = out.split("ALL BENCHMARKS", 1)[1]
        self.assertRegex(
            table, r"good\s+row one\s+3.00 ns\s+4.00 ns \(anchor\)\s+0.75x\s+<= 1x\s+yes"
        )
        self.assertIn("--quick", table.split("row one", 1)[1].splitlines()[0])
        self.assertRegex(table, r"good\s+row two\s+5.00 ms\s+-\s+-\s+-\s+-")


class EmitTest(unittest.TestCase):
    def setUp(self) -> None:
        spec = importlib.util.spec_from_file_location(
            "bench_results_under_test", BENCH / "results.py"
        )
        assert spec is not None and spec.loader is not None
        self.results = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.results)

    def test_appends_one_json_line_per_row(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "rows.jsonl")
            with mock.patch.dict(os.environ, {"MGIT_BENCH_RESULTS": path}):
                self.results.emit("m", "a", 1.5, 3.0, anchor_name="x", goal=0.8, note="n")
                self.results.emit("m", "b", float("nan"), None, unit="MB", max_value=25.0)
            with open(path, encoding="utf-8") as handle:
                rows = [json.loads(line) for line in handle]
        self.assertEqual(len(rows), 2)
        self.assertEqual(
            rows[0],
            {"bench": "m", "name": "a", "ours": 1.5, "anchor": 3.0, "unit": "ns",
             "anchor_name": "x", "goal": 0.8, "floor": None, "max_value": None, "ratio": None,
             "note": "n"},
        )  # fmt: skip
        self.assertIsNone(rows[1]["ours"])  # NaN is recorded as no figure
        self.assertEqual((rows[1]["unit"], rows[1]["max_value"]), ("MB", 25.0))

    def test_does_nothing_without_the_variable(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            env = {k: v for k, v in os.environ.items() if k != "MGIT_BENCH_RESULTS"}
            with mock.patch.dict(os.environ, env, clear=True):
                cwd = os.getcwd()
                os.chdir(tmp)
                try:
                    self.results.emit("m", "a", 1.0, 2.0)
                finally:
                    os.chdir(cwd)
            self.assertEqual(os.listdir(tmp), [])


if __name__ == "__main__":
    unittest.main()
