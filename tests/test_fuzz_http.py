"""Hostile HTTP against a real server process: malformed requests, tricks and resets.

Issue 14 part 4 (HTTP): a seeded fuzzer (``MGIT_MONITORING_TEST_SEED`` replays a run; the
seed is printed and named in every failure) sends 3,000 malformed or unusual requests to
``python3 -m mgit_monitoring server`` on port 0, from 64 concurrent clients:

* request lines: garbage, every method, HTTP/0.9, other versions, the HTTP/2 preface;
* targets: NUL and invalid UTF-8 bytes, ``/../``, ``%00``, absolute URIs, huge ones;
* headers: huge and repeated ones, no colon, folded, conflicting ``Content-Length`` and
  ``Transfer-Encoding``, junk ``Accept``/``Accept-Encoding``/``traceparent``;
* connection tricks: pipelining, bytes trickled in pieces, resets (SO_LINGER 0 close).

What must hold: no 5xx answers (every request is a client's doing); every answer is a
well-formed HTTP/1.1 response; every request the client finished sending within
``request_timeout`` of connecting gets an answer (a slower client may be closed at the head
deadline, as may one that sent only empty lines); every connection the client leaves open
is closed by the server within ``request_timeout`` + slack from the client's last byte;
afterwards the server holds no client socket, still answers, and serves a ``/metrics``
that promtool and prometheus_client accept, whose request counter has no label from the fuzz input.
Linux only (open sockets are read from ``/proc/<pid>/fd``).
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import random
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
from typing import Any, Counter, List, NamedTuple, Tuple

from tests.support import ROOT, await_condition, need_executable, need_module, open_sockets

REQUESTS = 3000
CLIENTS = 64
REQUEST_TIMEOUT = 0.5  # the server's head deadline and keep-alive idle wait
SLACK = 3.0  # scheduling noise on a loaded CI machine
STATUS = re.compile(rb"HTTP/1\.1 (\d{3}) [^\r\n]*\r\n")

PATHS = [
    "/metrics", "/health/live", "/health/ready", "/health", "/info", "/status", "/",
    "/metrics/json", "/health/detailed", "/history", "/nope",
]  # fmt: skip
METHODS = [
    "GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT", "PRI",
    "get", "GET ", "G\x00T", "M-SEARCH", "PROPFIND", "X" * 300, "", "\x16\x03\x01",
]  # fmt: skip
VERSIONS = [
    "HTTP/1.1", "HTTP/1.0", "HTTP/0.9", "HTTP/2.0", "HTTP/2", "HTTP/3.0", "HTTP/1.2",
    "HTTP/9.9", "HTTP/1.1.1", "HTTP/-1.1", "HTTP/1.10", "HTTP/01.1", "HTTP/1.99999999999999",
    "http/1.1", "HTTPS/1.1", "HTTP/", "HTTP/a.b", "HTTP/1.1 extra", "",
]  # fmt: skip


class Case(NamedTuple):
    """One connection: chunks to send (a float is a pause), whether a reply is due, and
    whether to reset the connection (SO_LINGER 0) after sending instead of reading."""

    kind: str
    chunks: List[Any]
    expect_reply: bool
    reset: bool = False


def _target(rng: random.Random) -> bytes:
    path = rng.choice(PATHS).encode()
    roll = rng.randrange(14)
    if roll == 0:
        return path + b"\x00" + rng.choice([b"", b"x", b"/metrics"])
    if roll == 1:
        return path + rng.choice([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"])
    if roll == 2:
        return rng.choice([b"/../", b"/metrics/../health", b"/../../etc/passwd", b"/./metrics"])
    if roll == 3:
        return path + rng.choice([b"%00", b"%ff", b"%", b"%zz", b"%2e%2e/", b"?a=%00"])
    if roll == 4:
        host = rng.choice([b"localhost", b"[::1", b"[::1]:99999", b"a:b:c", b"x@y", b""])
        return rng.choice([b"http://", b"https://", b"ftp://", b"//"]) + host + path
    if roll == 5:
        return rng.choice([b"*", b"", b"metrics", b"?", b"#", b"/#x", b"/metrics?x#y"])
    if roll == 6:
        return b"/" + b"a" * rng.choice([100, 5000, 8190, 8200, 20000])
    if roll == 7:
        return path + b"?" + b"&".join(b"k%d=v" % i for i in range(rng.randrange(1, 500)))
    if roll == 8:
        return path + rng.choice([b" ", b"\t", b"\r", b" x y"])
    if roll == 9:
        return b"//" + path.lstrip(b"/")
    return path


def _header(rng: random.Random) -> bytes:
    roll = rng.randrange(26)
    if roll == 0:
        return b"X-Huge: " + b"a" * rng.choice([1000, 8000, 16000, 40000]) + b"\r\n"
    if roll == 1:
        return b"X-Rep: 1\r\n" * rng.choice([10, 99, 100, 101, 1000])
    if roll == 2:
        return b"Content-Length: 0\r\nContent-Length: 5\r\n"
    if roll == 3:
        return b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"
    if roll == 4:
        return b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n"
    if roll == 5:
        return (
            b"Content-Length: "
            + rng.choice(
                [b"-1", b"1e3", b"99999999999999999999999", b"0x10", b" 7 ", b"1, 2", b"", b"+3"]
            )
            + b"\r\n"
        )
    if roll == 6:
        coding = rng.choice([b"chunked", b"gzip, chunked", b"x", b""])
        return b"Transfer-Encoding: " + coding + b"\r\n"
    if roll == 7:
        return b"NoColonHere\r\n"
    if roll == 8:
        return b"X-Folded: a\r\n  continued\r\n"
    if roll == 9:
        return b" Leading-Space: x\r\n"
    if roll == 10:
        return b"X-Bin: \x00\x01\xff\xfe\x7f\r\n"
    if roll == 11:
        return b"Accept: " + rng.choice(
            [b"application/openmetrics-text; version=1.0.0", b"*/*;q=abc", b"text/plain;;;,",
             b"application/openmetrics-text;version=9", b";q=1", b"a" * 4000, b"\xff"]
        ) + b"\r\n"  # fmt: skip
    if roll == 12:
        return (
            b"Accept-Encoding: "
            + rng.choice(
                [b"gzip", b"gzip;q=0", b"gzip;q=x", b"*", b"br, gzip;q=0.5", b"identity;q=0"]
            )
            + b"\r\n"
        )
    if roll == 13:
        return (
            b"traceparent: "
            + rng.choice(
                [b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01", b"zz", b"00-" + b"0" * 32 + b"-x"]
            )
            + b"\r\n"
        )
    if roll == 14:
        given = rng.choice([b"abc", b"\x00\n", b"a" * 500, b"\xe9"])
        return b"X-Correlation-ID: " + given + b"\r\n"
    if roll == 15:
        return b"Authorization: " + rng.choice([b"Basic ???", b"Bearer ", b"a" * 9000]) + b"\r\n"
    if roll == 16:
        return b"Expect: 100-continue\r\n"
    if roll == 17:
        return b"Connection: " + rng.choice([b"close", b"keep-alive", b"upgrade", b"x"]) + b"\r\n"
    if roll == 18:
        return b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
    if roll == 19:
        return b"Host: " + rng.choice([b"", b"a", b"a\x00b", b"[::1"]) + b"\r\nHost: b\r\n"
    if roll == 20:
        return b"Header\xff: v\r\n"
    if roll == 21:
        return b": empty-name\r\n"
    return b"User-Agent: fuzz/1.0\r\n"


def _request(rng: random.Random, method: str = "", version: str = "") -> bytes:
    method = method or rng.choice(METHODS[:10])
    version = version or rng.choice(["HTTP/1.1"] * 6 + ["HTTP/1.0"])
    line = method.encode("latin-1") + b" " + _target(rng) + b" " + version.encode("latin-1")
    eol = rng.choice([b"\r\n"] * 8 + [b"\n"])
    headers = b"Host: localhost\r\n" if rng.random() < 0.8 else b""
    headers += b"".join(_header(rng) for _ in range(rng.randrange(0, 4)))
    if rng.random() < 0.3:
        headers += b"Connection: close\r\n"
    body = b""
    if rng.random() < 0.1:
        body = rng.choice([b"hello", b"5\r\nhello\r\n0\r\n\r\n", b"\x00" * 100])
    return line + eol + headers + eol + body


def _no_request(data: bytes) -> bool:
    """True when ``data`` starts with two empty lines: the server skips one empty line
    before a request (RFC 9112 2.2), and an empty line where the request line belongs is
    no request at all, closed without an answer. Any other first line is answered."""
    lines = data.split(b"\n", 2)
    return len(lines) == 3 and lines[0] in (b"", b"\r") and lines[1] in (b"", b"\r")


def make_case(rng: random.Random) -> Case:
    """One random connection's worth of hostile input."""
    roll = rng.randrange(20)
    if roll == 0:  # garbage request line
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        data = junk + b"\r\n\r\n"
        return Case("garbage", [data], not _no_request(data))
    if roll == 1:  # every method, odd ones included
        return Case("method", [_request(rng, rng.choice(METHODS))], True)
    if roll == 2:  # versions: HTTP/0.9 two-word lines, HTTP/2, junk
        version = rng.choice(VERSIONS)
        if version == "HTTP/0.9" or not version:
            data = b"GET " + _target(rng) + rng.choice([b"\r\n", b"\r\n\r\n"])
            return Case("http0.9", [data], data.endswith(b"\r\n\r\n"))
        return Case("version", [_request(rng, "GET", version)], True)
    if roll == 3:  # the HTTP/2 prior-knowledge preface, and a SETTINGS frame after it
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        settings = struct.pack(">I", 0)[1:] + b"\x04\x00" + b"\x00\x00\x00\x00"
        return Case("http2", [preface + rng.choice([b"", settings])], True)
    if roll == 4:  # pipelining: several requests in one send
        reqs = [_request(rng, "GET", "HTTP/1.1") for _ in range(rng.randrange(2, 8))]
        return Case("pipeline", [b"".join(reqs)], True)
    if roll == 5:  # trickled in pieces
        data = _request(rng)
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randrange(1, 6))))
        chunks: List[Any] = []
        last = 0
        for cut in cuts:
            chunks += [data[last:cut], rng.choice([0.0, 0.01, 0.05])]
            last = cut
        return Case("trickle", chunks + [data[last:]], True)
    if roll == 6:  # a head that never ends (no blank line)
        data = _request(rng).split(b"\r\n\r\n")[0].split(b"\n\n")[0]
        return Case("unfinished", [data[: rng.randrange(0, len(data) + 1)]], False)
    if roll == 7:  # reset after some or all of a request
        data = _request(rng)
        return Case("reset", [data[: rng.randrange(0, len(data) + 1)]], False, reset=True)
    if roll == 8:  # nothing at all, or only blank lines
        return Case("silent", [rng.choice([b"", b"\r\n", b"\r\n\r\n\r\n", b"\n"])], False)
    if roll == 9:  # TLS ClientHello bytes on the plain port
        hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n"
        return Case("tls", [hello], True)
    return Case("request", [_request(rng)], True)


class Outcome(NamedTuple):
    case: Case
    statuses: List[int]
    closed_after: float | None  # seconds from the client's last byte to the server's close
    error: str
    sending: float = 0.0  # seconds from just before connecting to the client's last byte


def run_case(port: int, case: Case) -> Outcome:
    """Send ``case`` on a new connection; read until the server closes it (or the budget)."""
    begun = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        for chunk in case.chunks:
            if isinstance(chunk, float):
                time.sleep(chunk)  # part of the input: a client that sends in pieces
            elif chunk:
                try:
                    sock.sendall(chunk)
                except OSError:  # the server refused early (431, 414...) and closed
                    break
        if case.reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return Outcome(case, [], 0.0, "")
        last = time.monotonic()
        sending = last - begun
        sock.settimeout(REQUEST_TIMEOUT + SLACK)
        received = bytearray()
        while True:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                return Outcome(
                    case, _statuses(received), None, "still open after the budget", sending
                )
            except ConnectionResetError:  # the server closed with our bytes unread: closed
                data = b""
            if not data:
                return Outcome(case, _statuses(received), time.monotonic() - last, "", sending)
            received += data
    finally:
        sock.close()


def _statuses(data: bytes) -> List[int]:
    return [int(m.group(1)) for m in STATUS.finditer(data) if _at_line_start(data, m.start())]


def _at_line_start(data: bytes, pos: int) -> bool:
    return pos == 0 or data[pos - 1 : pos] == b"\n"


def _get(port: int, path: str) -> Tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@unittest.skipUnless(sys.platform.startswith("linux"), "reads /proc/<pid>/fd")
class FuzzHttp(unittest.TestCase):
    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        state = os.path.join(tmp.name, "state")
        os.makedirs(state)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MGIT_")}
        env.update(
            PYTHONPATH=ROOT,
            HOME=tmp.name,
            MGIT_MONITORING_STATE_DIR=state,
            MGIT_MONITORING_NETWORK_HOSTS="none",
            MGIT_MONITORING_PROVIDER_ENDPOINTS="none",
        )
        self.stderr_path = os.path.join(tmp.name, "server.err")
        stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - the server process's stderr
        self.addCleanup(stderr.close)
        cmd = [
            sys.executable, "-m", "mgit_monitoring", "server", "--simple", "--host",
            "127.0.0.1", "--port", "0", "--request-timeout", str(REQUEST_TIMEOUT),
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=tmp.name, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        self.addCleanup(self._stop)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        self.assertTrue(line.startswith("serving on http://127.0.0.1:"), line)
        self.port = int(line.rsplit(":", 1)[1])

    def _stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()  # type: ignore[union-attr]

    def test_three_thousand_hostile_requests(self):
        seed = int(
            os.environ.get("MGIT_MONITORING_TEST_SEED", random.SystemRandom().randrange(2**32))
        )
        print(f"\n{__name__}: MGIT_MONITORING_TEST_SEED={seed}", file=sys.stderr)
        rng = random.Random(seed)
        cases = [make_case(rng) for _ in range(REQUESTS)]
        self.assertEqual(200, _get(self.port, "/health/live")[0])
        baseline = open_sockets(self.proc.pid)

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
            outcomes = list(pool.map(lambda c: run_case(self.port, c), cases))
        elapsed = time.monotonic() - started

        histogram: Counter[int] = collections.Counter()
        kinds: Counter[str] = collections.Counter()
        problems: List[str] = []
        slowest = 0.0
        late = 0  # unanswered because the client took longer than REQUEST_TIMEOUT to send
        for i, out in enumerate(outcomes):
            kinds[out.case.kind] += 1
            histogram.update(out.statuses)
            where = f"seed={seed} case={i} kind={out.case.kind} sent={out.case.chunks!r:.300}"
            if out.error:
                problems.append(f"{where}: {out.error}")
            if any(code >= 500 for code in out.statuses):
                problems.append(f"{where}: answered {out.statuses}")
            if out.case.expect_reply and not out.case.reset and not out.statuses:
                if out.sending <= REQUEST_TIMEOUT:
                    problems.append(f"{where}: closed without an answer")
                else:  # the client itself outlasted the head deadline: a legitimate close
                    late += 1
            if out.closed_after is not None:
                slowest = max(slowest, out.closed_after)
        summary = (
            f"{REQUESTS} connections, {sum(histogram.values())} responses in {elapsed:.1f} s; "
            f"status codes {dict(sorted(histogram.items()))}; kinds {dict(sorted(kinds.items()))}; "
            f"slowest close {slowest:.2f} s after the client's last byte (budget "
            f"{REQUEST_TIMEOUT} + {SLACK} s); {late} closed unanswered at the head deadline "
            f"after the client took over {REQUEST_TIMEOUT} s to send its request"
        )
        print(summary, file=sys.stderr)
        if problems:
            first = "\n".join(problems[:20])
            self.fail(f"{len(problems)} problems, the first:\n{first}\n{summary}")

        # Afterwards: no client socket held, the server answers, /metrics parses.
        self.assertTrue(
            await_condition(
                lambda: open_sockets(self.proc.pid) <= baseline, REQUEST_TIMEOUT + SLACK
            ),
            f"server holds {open_sockets(self.proc.pid)} sockets, {baseline} before the fuzz",
        )
        self.assertEqual(200, _get(self.port, "/health/live")[0])
        status, body = _get(self.port, "/metrics")
        self.assertEqual(200, status)
        self.check_exposition(body)
        with open(self.stderr_path, encoding="utf-8", errors="replace") as handle:
            log = handle.read()
        self.assertNotIn("Traceback", log)
        self.assertNotIn('"level":"ERROR"', log.replace(" ", ""))

    def test_what_the_fuzzer_found_stays_fixed(self):
        """The HTTP/2 preface and other versions get 400, not 505; an absolute URI with a
        broken bracketed host gets 400 instead of a dropped connection."""
        for data in (
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n",
            b"GET /metrics HTTP/3.0\r\n\r\n",
            b"GET http://[::1/metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST http://[::1/health HTTP/1.1\r\n\r\n",
        ):
            out = run_case(self.port, Case("regression", [data], True))
            self.assertEqual([400], out.statuses, data)
            self.assertEqual("", out.error, data)
        # A request line of whitespace only is a malformed request, not an empty line:
        # 400 (seed 98641289 case 2099 sent "\t\n" then junk, and was closed unanswered).
        for data in (
            b"\t\n\x85P\xb3\xbc\r\n\r\n",
            b"\t\r\n\r\n",
            b" \r\nHost: x\r\n\r\n",
            b"\r\n\x0b\x0c\r\n\r\n",  # after the one empty line RFC 9112 lets us skip
            b"\x85\xa0\x1c\r\n\r\n",  # whitespace to str.split() once read as latin-1
            b"\r\r\n\r\n",  # a bare CR is not an empty line
        ):
            out = run_case(self.port, Case("regression", [data], True))
            self.assertEqual([400], out.statuses, data)
            self.assertEqual("", out.error, data)
        # Empty lines only are no request at all: closed without an answer.
        for data in (b"\r\n\r\n\r\n", b"\n\r\n\r\n", b"\n\n"):
            self.assertTrue(_no_request(data), data)
            out = run_case(self.port, Case("regression", [data], False))
            self.assertEqual(([], ""), (out.statuses, out.error), data)
        self.assertEqual(200, _get(self.port, "/metrics")[0])

    def check_exposition(self, body: bytes) -> None:
        promtool = need_executable("promtool")
        out = subprocess.run(
            [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60
        )
        self.assertEqual(0, out.returncode, out.stdout + out.stderr)
        parser = need_module("prometheus_client.parser")
        handlers = set()
        codes = set()
        for family in parser.text_string_to_metric_families(body.decode("utf-8")):
            for sample in family.samples:
                if sample.name == "mgit_monitoring_http_requests_total":
                    handlers.add(sample.labels["handler"])
                    codes.add(sample.labels["code"])
        # Route templates only: nothing from the fuzzed targets became a label value.
        self.assertLessEqual(handlers, set(PATHS[:-1]) | {"other"}, handlers)
        self.assertTrue(all(re.fullmatch(r"[1-5]\d\d", c) for c in codes), codes)


if __name__ == "__main__":
    unittest.main()
