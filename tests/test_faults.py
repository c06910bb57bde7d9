"""Faults, each played by real processes: the mgit operation goes on, one clear warning,
nothing already flushed is lost (issue 14, part 3).

A full filesystem, writers SIGKILLed mid-flush, the wall clock jumping back, a corrupt or
locked store, a log file whose disk fills, git missing, DNS that never answers, and two
servers on one port. Scenarios that need root (mount and network namespaces) skip with a
reason elsewhere and fail under MGIT_MONITORING_REQUIRE_INTEROP=1, as interop tests do.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import unittest
import urllib.request

from mgit_monitoring.shared_state import merged_snapshot
from mgit_monitoring.store import Store
from tests.fault_support import (
    STORE,
    WRITER,
    clean_env,
    integrity,
    need_ip,
    need_libfaketime,
    need_root_namespaces,
    python,
    run,
    total,
    warnings_in,
)
from tests.support import TempDirCase


def _reap(proc: subprocess.Popen) -> None:
    """Kill a child a failed test left running, and collect it and its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=30)


class FaultCase(TempDirCase):
    """A state dir and a HOME under ``self.tmp``, and ``self.env`` for mgit processes."""

    def setUp(self) -> None:
        super().setUp()
        self.state = os.path.join(self.tmp, "state")
        self.home = os.path.join(self.tmp, "home")
        os.makedirs(self.state)
        os.makedirs(self.home)
        self.env = clean_env(self.state, self.home)
        self.store_path = os.path.join(self.state, STORE)

    def writer(self, n: int, **extra: str) -> subprocess.CompletedProcess:
        """One mgit run of ``n`` operations; asserts every decorated call returned normally."""
        out = run(python("-c", WRITER, str(n)), dict(self.env, **extra), self.tmp)
        self.assertEqual(0, out.returncode, out.stderr)
        self.assertEqual(f"returned {n}\n", out.stdout, out.stderr)
        self.assertNotIn("Traceback", out.stderr)
        return out

    def metrics(self, **extra: str) -> subprocess.CompletedProcess:
        return run(python("-m", "mgit_monitoring", "metrics"), dict(self.env, **extra), self.tmp)


# --------------------------------------------------------------------------- full filesystem

FULL_DISK = r"""
import json, os, subprocess, sys
mnt, writer = sys.argv[1], sys.argv[2]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "none", mnt], check=True)
os.environ["MGIT_MONITORING_STATE_DIR"] = state = os.path.join(mnt, "state")
def py(*args):
    p = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60)
    return {"rc": p.returncode, "out": p.stdout, "err": p.stderr}
result = {"first": py("-c", writer, "30")}
fill = os.path.join(mnt, "fill")
with open(fill, "wb", buffering=0) as fh:                    # the disk fills up
    try:
        while True:
            fh.write(b"\0" * 4096)
    except OSError as exc:
        result["fill_error"] = exc.strerror
st = os.statvfs(mnt)
result["free_bytes"] = st.f_bavail * st.f_frsize
result["second"] = py("-c", writer, "40")
os.remove(fill)                                 # space returns
import sqlite3
conn = sqlite3.connect(os.path.join(state, "monitoring.sqlite3"))
result["integrity"] = [r[0] for r in conn.execute("PRAGMA integrity_check")]
conn.close()
result["metrics"] = py("-m", "mgit_monitoring", "metrics")
print(json.dumps(result))
"""


class FullFilesystem(FaultCase):
    def test_second_process_on_a_full_disk_runs_normally_and_the_first_flush_survives(self):
        """First run flushes, the tmpfs fills, a second run's operations return normally with
        one warning saying the disk is full; after space returns the first run's 30
        operations are intact and the file passes integrity_check."""
        unshare = need_root_namespaces("-m")
        mnt = os.path.join(self.tmp, "mnt")
        os.makedirs(mnt)
        out = run([unshare, "-m", *python("-c", FULL_DISK, mnt, WRITER)], self.env, self.tmp, 90)
        self.assertEqual(0, out.returncode, out.stderr)
        result = json.loads(out.stdout)
        self.assertEqual("returned 30\n", result["first"]["out"], result["first"]["err"])
        self.assertEqual([], warnings_in(result["first"]["err"]))
        self.assertEqual("No space left on device", result["fill_error"])
        self.assertLess(result["free_bytes"], 8192)  # the fault really happened
        second = result["second"]
        self.assertEqual(0, second["rc"], second["err"])
        self.assertEqual("returned 40\n", second["out"], second["err"])
        self.assertNotIn("Traceback", second["err"])
        warned = warnings_in(second["err"])
        self.assertEqual(1, len(warned), second["err"])
        self.assertIn("disk full", warned[0])
        self.assertIn(STORE, warned[0])
        self.assertEqual(["ok"], result["integrity"])
        self.assertEqual(0, result["metrics"]["rc"], result["metrics"]["err"])
        self.assertEqual(30, total(result["metrics"]["out"]))


# --------------------------------------------------------------------------- SIGKILL mid-flush

# Announces each operation before doing it and each committed flush after it, so the parent
# knows bounds on what a killed process did: flushed <= in the store <= started.
KILLED_WRITER = r"""
import sys
from mgit_monitoring.integration import (
    get_monitoring_integration, monitor_mgit_operation, setup_monitoring_integration)

@monitor_mgit_operation(operation_name="clone-all", provider="github")
def clone(i):
    return i

setup_monitoring_integration()
shared = get_monitoring_integration().shared
limit = int(sys.argv[1])
i = 0
while i < limit:
    i += 1
    print("start", i, flush=True)
    clone(i)
    if shared.flush():
        print("flushed", i, flush=True)
print("done", flush=True)
"""


def _bounds(stdout: str) -> tuple:
    started = flushed = 0
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "start":
            started = int(parts[1])
        elif len(parts) == 2 and parts[0] == "flushed":
            flushed = int(parts[1])
    return flushed, started


class KilledWriters(FaultCase):
    def _count(self) -> int:
        store = Store.open(self.state, reader=True)
        try:
            fam = merged_snapshot(store, strict=True).family("mgit_operations")
            return int(sum(s.value for s in fam.series)) if fam else 0
        finally:
            store.close()

    def test_twenty_writers_killed_at_random_moments_leave_a_consistent_store(self):
        """20 writers SIGKILLed at seeded random moments while flushing after every
        operation, next to a survivor: after each kill the store passes integrity_check,
        the count never goes backwards, never exceeds what was started and never loses what
        a writer saw committed; at the end the survivor's work is all there."""
        rng = random.Random(1414)
        survivor = subprocess.Popen(
            python("-c", KILLED_WRITER, "400"),
            env=self.env,
            cwd=self.tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(_reap, survivor)
        lower = upper = last = 0  # what killed writers surely flushed / at most did
        for kill in range(20):
            proc = subprocess.Popen(
                python("-c", KILLED_WRITER, "1000000"),
                env=self.env,
                cwd=self.tmp,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            first = proc.stdout.readline()  # type: ignore[union-attr]
            self.assertEqual("start 1\n", first)
            # A random moment inside the flush loop (a flush every operation).
            time.sleep(rng.uniform(0.0, 0.08))  # placing the kill, not an assertion
            proc.send_signal(signal.SIGKILL)
            rest = proc.stdout.read()  # type: ignore[union-attr]
            proc.stdout.close()  # type: ignore[union-attr]
            self.assertEqual(-signal.SIGKILL, proc.wait(timeout=30), f"kill {kill}")
            self.assertNotIn("done", rest)
            flushed, started = _bounds(first + rest)
            lower += flushed
            upper += started
            self.assertEqual("ok", integrity(self.store_path), f"after kill {kill}")
            seen = self._count()
            self.assertGreaterEqual(seen, last, f"went backwards after kill {kill}")
            last = seen
            # The survivor adds at most 400 while this runs.
            self.assertGreaterEqual(seen, lower, f"lost committed work after kill {kill}")
            self.assertLessEqual(seen, upper + 400, f"more than was done after kill {kill}")
        out, err = survivor.communicate(timeout=120)
        self.assertEqual(0, survivor.returncode, err)
        self.assertTrue(out.endswith("done\n"), out[-200:])
        self.assertEqual([], warnings_in(err))
        final = self.metrics()
        self.assertEqual(0, final.returncode, final.stderr)
        self.assertEqual("ok", integrity(self.store_path))
        seen = total(final.stdout)
        self.assertGreaterEqual(seen, 400 + lower)
        self.assertLessEqual(seen, 400 + upper)
        self.assertGreater(lower, 0)  # some kills landed after a committed flush
        # Killed writers leave no "operation in progress" behind (a gauge of dead
        # processes only is not shown at all).
        self.assertIn("# TYPE mgit_concurrent_operations gauge", final.stdout)
        self.assertNotRegex(final.stdout, r"(?m)^mgit_concurrent_operations [1-9]")


# --------------------------------------------------------------------------- clock jumps back

CLOCK_WRITER = r"""
import json, logging, os, sys, threading, time
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
from mgit_monitoring.integration import (
    get_monitoring_integration, monitor_mgit_operation, setup_monitoring_integration)
from mgit_monitoring.store import TraceRow

offset_file = sys.argv[1]

spans = {}

@monitor_mgit_operation(operation_name="clone-all", provider="github")
def clone(jump):
    if jump:  # the wall clock steps back an hour in the middle of this operation
        t0 = time.perf_counter()
        with open(offset_file, "w") as fh:
            fh.write("-1h\n")
        threading.Event().wait(0.05)  # (libfaketime breaks time.sleep with a negative offset)
        spans["inner"] = time.perf_counter() - t0  # monotonic: what the operation really took
    return jump

setup_monitoring_integration()
integ = get_monitoring_integration()
store = integ.store
before = time.time()
for i in range(5):
    clone(False)
store.flush()                                   # flushed before the jump
t0 = time.perf_counter()
assert clone(True) is True
spans["outer"] = time.perf_counter() - t0
after = time.time()
old = TraceRow("clone-all", after - 3 * 3600, 1.0, True, pid=os.getpid())
store.insert_traces([old])                      # older than the retention, after the jump
for i in range(5):
    clone(False)
store.flush()                                   # flushed after the jump
store.cleanup()                                 # retention (1 hour), after the jump
print(json.dumps(dict(spans, jumped=before - after)), flush=True)
"""


class ClockJumpsBack(FaultCase):
    def test_flushes_and_retention_keep_working_when_the_wall_clock_steps_back(self):
        """A run whose wall clock steps back an hour mid-operation (libfaketime, monotonic
        clock untouched, as an NTP step does): every operation is counted, durations are
        never negative, both flushes land, and retention deletes only the genuinely old
        trace, not the ones now "in the future"."""
        lib = need_libfaketime()
        offset = self.write("offset", "+0\n")
        env = dict(
            self.env,
            LD_PRELOAD=lib,
            FAKETIME_TIMESTAMP_FILE=offset,
            FAKETIME_NO_CACHE="1",
            FAKETIME_DONT_FAKE_MONOTONIC="1",
            MGIT_MONITORING_PERF_RETENTION_HOURS="1",
        )
        out = run(python("-c", CLOCK_WRITER, offset), env, self.tmp)
        self.assertEqual(0, out.returncode, out.stderr)
        self.assertEqual([], warnings_in(out.stderr))
        result = json.loads(out.stdout)
        self.assertGreater(result["jumped"], 3000)  # the clock really went back
        store = Store.open(self.state, reader=True)
        self.addCleanup(store.close)
        traces = store.query_traces(0, "clone-all", strict=True)
        # Only the 3-hour-old trace is gone; the 5 written before the jump, now an hour
        # "in the future", are kept with the 6 after it.
        self.assertEqual(11, len(traces))
        self.assertNotIn(1.0, [t.duration for t in traces])
        for trace in traces:
            self.assertGreaterEqual(trace.duration, 0.0, trace)
        # The operation spanning the jump is measured on the monotonic clock (by the wall
        # clock it would be about -3600 s): its duration lies between the monotonic time its
        # body took and the time the call took, both measured by the child around it.
        # Relations, not thresholds: a loaded machine stretches all of them alike.
        self.assertGreater(result["inner"], 0.0)
        spanning = [t for t in traces if result["inner"] <= t.duration <= result["outer"]]
        self.assertTrue(spanning, (result, traces))
        metrics = self.metrics()
        self.assertEqual(0, metrics.returncode, metrics.stderr)
        self.assertEqual(11, total(metrics.stdout))
        match = re.search(
            r'(?m)^mgit_operation_duration_seconds_sum\{operation="clone-all",'
            r'provider="github"\} (\S+)$',
            metrics.stdout,
        )
        self.assertIsNotNone(match, metrics.stdout)
        self.assertGreaterEqual(float(match.group(1)), result["inner"])


# --------------------------------------------------------------------------- corrupt / locked


class CorruptStore(FaultCase):
    def test_garbage_store_metrics_exit_2_server_serves_and_mgit_runs(self):
        """Garbage bytes in the store: `metrics` exits 2 with one line naming the file; the
        server keeps serving its own metrics and says the store is unusable; an mgit run
        returns normally with one warning, keeps the garbage aside, and starts afresh."""
        garbage = (
            random.Random(14).randbytes(8192)
            if hasattr(random.Random, "randbytes")
            else (bytes(random.Random(14).getrandbits(8) for _ in range(8192)))
        )
        with open(self.store_path, "wb") as fh:
            fh.write(garbage)
        metrics = self.metrics()
        self.assertEqual(2, metrics.returncode, metrics.stderr)
        self.assertEqual("", metrics.stdout)
        lines = metrics.stderr.strip().splitlines()
        self.assertEqual(1, len(lines), metrics.stderr)
        self.assertTrue(lines[0].startswith("error: cannot read the monitoring store"), lines)
        self.assertIn(self.store_path, lines[0])

        url, server, log = _start_server(self, self.env, self.tmp)
        with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
            self.assertEqual(200, response.status)
            body = response.read().decode()
        self.assertIn("mgit_monitoring_http_requests_total", body)
        _stop_server(self, server)
        with open(log, encoding="utf-8") as fh:
            server_log = fh.read()
        self.assertIn("store unusable", server_log)
        self.assertIn("not a database", server_log)

        run1 = self.writer(7)
        warned = warnings_in(run1.stderr)
        self.assertEqual(1, len(warned), run1.stderr)
        self.assertIn("corrupt", warned[0])
        aside = [n for n in os.listdir(self.state) if n.startswith(STORE + ".corrupt-")]
        self.assertEqual(1, len(aside), os.listdir(self.state))
        with open(os.path.join(self.state, aside[0]), "rb") as fh:
            self.assertEqual(garbage, fh.read())  # kept for inspection, not overwritten
        after = self.metrics()
        self.assertEqual(0, after.returncode, after.stderr)
        self.assertEqual(7, total(after.stdout))
        self.assertEqual("ok", integrity(self.store_path))


LOCKER = r"""
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


class LockedStore(FaultCase):
    def test_store_held_exclusive_by_another_process(self):
        """Another process holds BEGIN EXCLUSIVE: an mgit run returns normally with one
        warning naming the lock, `metrics` still reads what was flushed before, and once
        the lock is released the next run's work lands and nothing earlier is lost."""
        self.writer(5)
        locker = subprocess.Popen(
            python("-c", LOCKER, self.store_path),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(_reap, locker)
        self.assertEqual("locked\n", locker.stdout.readline())  # type: ignore[union-attr]
        blocked = self.writer(3, MGIT_MONITORING_STORE_TIMEOUT="0.3")
        warned = warnings_in(blocked.stderr)
        self.assertEqual(1, len(warned), blocked.stderr)
        self.assertIn("locked", warned[0])
        self.assertIn(STORE, warned[0])
        during = self.metrics()
        self.assertEqual(0, during.returncode, during.stderr)
        self.assertEqual(5, total(during.stdout))
        locker.communicate("\n", timeout=30)
        self.assertEqual(0, locker.returncode)
        self.writer(4)
        after = self.metrics()
        self.assertEqual(0, after.returncode, after.stderr)
        self.assertEqual(9, total(after.stdout))  # the blocked run's 3 were dropped, once
        self.assertEqual("ok", integrity(self.store_path))


# --------------------------------------------------------------------------- log file disk full

LOG_WRITER = r"""
import logging, os, sys
logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
logging.getLogger().handlers[0].setLevel(logging.WARNING)
from mgit_monitoring import setup_structured_logging
from mgit_monitoring.integration import monitor_mgit_operation, setup_monitoring_integration
mnt = sys.argv[1]
setup_monitoring_integration()
setup_structured_logging(log_file=os.path.join(mnt, "logs", "mgit.log"), console_level="CRITICAL")
log = logging.getLogger("mgit.operations")

@monitor_mgit_operation(operation_name="clone-all", provider="github")
def clone(i):
    log.info("cloned repository %d", i)
    return i

ok = sum(1 for i in range(20) if clone(i) == i)
with open(os.path.join(mnt, "fill"), "wb", buffering=0) as fh:      # the log's disk fills mid-run
    try:
        while True:
            fh.write(b"\0" * 4096)
    except OSError:
        pass
ok += sum(1 for i in range(20, 200) if clone(i) == i)
print("returned", ok, flush=True)
"""


class LogFileBecomesUnwritable(FaultCase):
    def test_log_disk_fills_mid_run(self):
        """The log file's filesystem fills mid-run: every operation returns normally, one
        warning says the log file cannot be written, no 'Logging error' traceback per line."""
        unshare = need_root_namespaces("-m")
        mnt = os.path.join(self.tmp, "mnt")
        os.makedirs(mnt)
        script = (
            "import subprocess, sys\n"
            "subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=256k', 'none', sys.argv[1]],"
            " check=True)\n"
            "child = [sys.executable, '-c', sys.argv[2], sys.argv[1]]\n"
            "sys.exit(subprocess.run(child).returncode)\n"
        )
        out = run([unshare, "-m", *python("-c", script, mnt, LOG_WRITER)], self.env, self.tmp)
        self.assertEqual(0, out.returncode, out.stderr[-3000:])
        self.assertEqual("returned 200\n", out.stdout, out.stderr[-3000:])
        self.assertNotIn("Logging error", out.stderr, out.stderr[-3000:])
        self.assertNotIn("Traceback", out.stderr, out.stderr[-3000:])
        warned = warnings_in(out.stderr)
        self.assertEqual(1, len(warned), out.stderr[-3000:])
        self.assertIn("mgit.log", warned[0])


# --------------------------------------------------------------------------- git missing


class GitMissing(FaultCase):
    def test_health_without_git_on_path(self):
        """PATH without git: `health` exits 1 naming the git check, `health --json` has an
        unhealthy git check saying git is not on PATH; no traceback."""
        empty = os.path.join(self.tmp, "empty-bin")
        os.makedirs(empty)
        env = dict(self.env, PATH=empty)
        plain = run(python("-m", "mgit_monitoring", "health"), env, self.tmp)
        self.assertEqual(1, plain.returncode, plain.stderr)
        self.assertIn("git_availability", plain.stdout)
        self.assertNotIn("Traceback", plain.stderr)
        as_json = run(python("-m", "mgit_monitoring", "health", "--json"), env, self.tmp)
        self.assertEqual(1, as_json.returncode, as_json.stderr)
        report = json.loads(as_json.stdout)
        self.assertEqual("unhealthy", report["status"])
        git = report["checks"]["git_availability"]
        self.assertEqual("unhealthy", git["status"])
        self.assertIn("not on PATH", git["message"])


# --------------------------------------------------------------------------- DNS never answers

DNS_SCENARIO = r"""
set -e
ip link set lo up
mount --bind "$1" /etc/resolv.conf
"$2" -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
print("bound", flush=True)
while True:
    s.recvfrom(4096)' > "$3" &
SWALLOW=$!
while [ ! -s "$3" ]; do sleep 0.05; done
set +e
"$2" -m mgit_monitoring health --json
echo "rc=$?" >&2
kill $SWALLOW
"""


class DnsFails(FaultCase):
    def test_network_check_degrades_naming_the_host_within_its_timeout(self):
        """In a network namespace whose DNS server swallows every query, `health` answers
        within the check timeout: degraded, with the unresolvable host named."""
        self.health_without_dns()

    def test_network_check_message_names_the_unresolvable_host(self):
        check = self.health_without_dns()
        self.assertIn("repos.example-mgit.invalid", check["message"], check)

    def health_without_dns(self) -> dict:
        """Run `health --json` with DNS swallowed; assert the common part; the network check."""
        unshare = need_root_namespaces("-m", "-n")
        need_ip()
        resolv = self.write("resolv.conf", "nameserver 127.0.0.1\noptions timeout:5 attempts:3\n")
        env = dict(
            self.env,
            MGIT_MONITORING_NETWORK_HOSTS="repos.example-mgit.invalid:443",
            MGIT_MONITORING_HEALTH_TIMEOUT="2",
        )
        marker = os.path.join(self.tmp, "bound")
        # 15 s of resolver retries would hang an unbounded check; the guard below is wider.
        out = run(
            [unshare, "-m", "-n", "sh", "-c", DNS_SCENARIO, "sh", resolv, sys.executable, marker],
            env,
            self.tmp,
            timeout=12,
        )
        self.assertIn("rc=0", out.stderr, out.stderr)  # degraded is still exit 0
        report = json.loads(out.stdout)
        self.assertEqual("degraded", report["status"], out.stdout)
        check = report["checks"]["network_connectivity"]
        self.assertIn(check["status"], ("degraded", "unhealthy"))
        host = check["details"]["hosts"]["repos.example-mgit.invalid:443"]
        self.assertIn("dns", host["status"], host)
        self.assertIn("2 s", host["error"], host)  # cut at the check's timeout
        return check


# --------------------------------------------------------------------------- two servers


def _start_server(case: unittest.TestCase, env: dict, cwd: str, port: int = 0) -> tuple:
    log = os.path.join(cwd, f"server-{port}-{len(os.listdir(cwd))}.log")
    err = open(log, "w", encoding="utf-8")  # noqa: SIM115 - the server's stderr, closed by cleanup
    case.addCleanup(err.close)
    proc = subprocess.Popen(
        python(
            "-m",
            "mgit_monitoring",
            "server",
            "--simple",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ),
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
    )
    case.addCleanup(_stop_server, case, proc)
    line = proc.stdout.readline() if proc.stdout else ""
    case.assertTrue(line.startswith("serving on http://127.0.0.1:"), line)
    return line.split()[-1], proc, log


def _stop_server(case: unittest.TestCase, proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        case.assertEqual(0, proc.wait(timeout=30))
    if proc.stdout:
        proc.stdout.close()


class TwoServersOnePort(FaultCase):
    def test_second_server_exits_2_naming_the_port_and_the_first_keeps_serving(self):
        url, _first, _log = _start_server(self, self.env, self.tmp)
        port = url.rsplit(":", 1)[1]
        second = run(
            python(
                "-m", "mgit_monitoring", "server", "--simple", "--host", "127.0.0.1", "--port", port
            ),
            self.env,
            self.tmp,
        )
        self.assertEqual(2, second.returncode, second.stderr)
        lines = second.stderr.strip().splitlines()
        self.assertEqual(1, len(lines), second.stderr)
        self.assertIn(f":{port}", lines[0])
        self.assertIn("in use", lines[0])
        self.assertEqual("", second.stdout)
        for path in ("/health/live", "/metrics"):
            with urllib.request.urlopen(url + path, timeout=10) as response:
                self.assertEqual(200, response.status, path)


if __name__ == "__main__":
    unittest.main()
