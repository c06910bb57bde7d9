"""The dashboard in a real browser: Debian's headless Chromium, after a short demo.

Chromium is driven with its own flags (``--dump-dom``, ``--screenshot``,
``--virtual-time-budget``), never a test tool's browser download. The page must render
the numbers ``/metrics/json`` and ``/health/detailed`` hold, look like something at
desktop and phone widths (the screenshots are decoded and their pixels checked; they
are kept under the printed artefacts directory), and fetch nothing but the server's own
endpoints: the CSP says so, the server's request counter and Chromium's net log confirm it.

A missing ``chromium`` skips, or fails under MGIT_MONITORING_REQUIRE_INTEROP=1.
"""

from __future__ import annotations

import html.parser
import http.server
import json
import math
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
import zlib
from typing import Any, Dict, List, Tuple

from mgit_monitoring import metric_definitions
from tests.support import need_executable, once_per_ci_run
from tests.test_demo import GIT, DemoProcess, fetch, parse_metrics

ARTIFACTS_ENV = "MGIT_MONITORING_ARTIFACTS_DIR"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
OWN_PATHS = {"/", "/metrics/json", "/health/detailed", "/history"}


def _name(name: str) -> str:
    return metric_definitions.definition(name).name


# -- a small PNG decoder (stdlib zlib) --------------------------------------------------------


def decode_png(data: bytes) -> Tuple[int, int, int, bytearray]:
    """``(width, height, bytes per pixel, raw pixel rows)`` of an 8-bit RGB/RGBA PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat = 8, []
    width = height = bpp = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            if depth != 8 or ctype not in (2, 6) or interlace:
                raise ValueError(
                    f"unsupported PNG: depth {depth} type {ctype} interlace {interlace}"
                )
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat.append(chunk)
        elif kind == b"IEND":
            break
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    out = bytearray(height * stride)
    prev = bytearray(stride)
    for y in range(height):
        base = y * (stride + 1)
        ftype = raw[base]
        line = bytearray(raw[base + 1 : base + 1 + stride])
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
        out[y * stride : (y + 1) * stride] = line
        prev = line
    return width, height, bpp, out


def pixel_stats(png: bytes) -> Dict[str, Any]:
    """Size, distinct colours and the share of pixels unlike the most common colour."""
    width, height, bpp, pixels = decode_png(png)
    counts: Dict[bytes, int] = {}
    step = 3  # every third pixel is plenty
    for i in range(0, width * height, step):
        colour = bytes(pixels[i * bpp : i * bpp + 3])
        counts[colour] = counts.get(colour, 0) + 1
    sampled = sum(counts.values())
    background = max(counts.values())
    return {
        "width": width,
        "height": height,
        "colours": len(counts),
        "ink": 1 - background / sampled,
    }


# -- the rendered DOM --------------------------------------------------------------------------


class _Dom(html.parser.HTMLParser):
    """Collects the data-v values the page writes, by id and by row."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: Dict[str, Dict[str, str]] = {}
        self.rows: Dict[Tuple[str, str], Dict[str, str]] = {}
        self.body: Dict[str, str] = {}
        self._row: Tuple[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = a
        if "id" in a:
            self.by_id[a["id"]] = a
        for key in ("data-op", "data-check", "data-provider"):
            if key in a:
                self._row = (key, a[key])
                self.rows[self._row] = {}
        if self._row is not None and "data-k" in a:
            self.rows[self._row][a["data-k"]] = a.get("data-v", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None


def parse_dom(text: str) -> _Dom:
    dom = _Dom()
    dom.feed(text)
    dom.close()
    return dom


# -- what the page should show, computed here from /metrics/json ------------------------------


def _num(v: Any) -> float:
    return float(v)  # numbers, "0.005", and the JSON's "+Inf", "-Inf", "NaN" strings


def quantile(q: float, buckets: Dict[str, float]) -> float | None:
    """histogram_quantile over cumulative buckets, as Prometheus (and the page) compute it."""
    bs = sorted((_num(le), c) for le, c in buckets.items())
    if not bs or not bs[-1][1] > 0:
        return None
    rank = q * bs[-1][1]
    for i, (le, cum) in enumerate(bs):
        if cum >= rank:
            if le == math.inf:
                return bs[i - 1][0] if i > 0 else None
            lower, lower_cum = (bs[i - 1][0], bs[i - 1][1]) if i > 0 else (0.0, 0.0)
            if i == 0 and le <= 0:
                return le
            if cum == lower_cum:
                return le
            return lower + (le - lower) * (rank - lower_cum) / (cum - lower_cum)
    return None


def expected(doc: Dict[str, Any]) -> Dict[str, Any]:
    ops: Dict[str, Dict[str, Any]] = {}

    def op(key: str) -> Dict[str, Any]:
        return ops.setdefault(
            key, {"count": 0.0, "failed": 0.0, "buckets": {}, "sum": 0.0, "n": 0.0}
        )

    providers: Dict[str, Dict[str, float]] = {}
    gauges: Dict[str, float] = {}
    for m in doc["metrics"]:
        name, labels, value = m["name"], m["labels"], m["value"]
        if name == _name("mgit_operations_total"):
            op("mgit: " + labels["operation"])["count"] += value
        elif name == _name("mgit_operations_failure_total"):
            op("mgit: " + labels["operation"])["failed"] += value
        elif name == _name("mgit_git_operations_total"):
            o = op("git: " + labels["operation"])
            o["count"] += value
            if labels["status"] != "success":
                o["failed"] += value
        elif name in (
            _name("mgit_operation_duration_seconds"),
            _name("mgit_git_operation_duration_seconds"),
        ):
            prefix = "mgit: " if name == _name("mgit_operation_duration_seconds") else "git: "
            o = op(prefix + labels["operation"])
            for le, c in m["buckets"].items():
                o["buckets"][le] = o["buckets"].get(le, 0) + c
            o["sum"] += _num(m["sum"])
            o["n"] += m["count"]
        elif name == _name("mgit_api_requests_total"):
            providers.setdefault(labels["provider"], {}).setdefault("requests", 0)
            providers[labels["provider"]]["requests"] += value
        elif name == _name("mgit_api_errors_total"):
            p = providers.setdefault(labels["provider"], {})
            p["errors"] = p.get("errors", 0) + value
        elif name == _name("mgit_api_rate_limit_hits_total"):
            p = providers.setdefault(labels["provider"], {})
            p["rate_limited"] = p.get("rate_limited", 0) + value
        elif name in (_name("mgit_concurrent_operations"), _name("mgit_repositories_processed")):
            gauges[name] = _num(value)
    rows = {}
    for key, o in ops.items():
        row = {"count": o["count"], "failed": o["failed"]}
        for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            row[label] = quantile(q, o["buckets"])
        row["mean"] = o["sum"] / o["n"] if o["n"] else None
        rows[key] = row
    total = sum(o["count"] for o in ops.values())
    failed = sum(o["failed"] for o in ops.values())
    return {
        "rows": rows,
        "total": total,
        "failed": failed,
        "providers": providers,
        "gauges": gauges,
    }


def page_requests(netlog: str, origin: str) -> List[str]:
    """URLs of the requests a Chromium net log shows for pages of ``origin``'s site."""
    with open(netlog, encoding="utf-8") as f:
        log = json.load(f)
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    site = re.sub(r":[0-9]+$", "", origin)
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if names.get(event.get("type")) != "URL_REQUEST_START_JOB" or "url" not in params:
            continue
        if str(params.get("network_isolation_key", "")).split(" ")[0] == site:
            urls.append(params["url"])
    return urls


def _float(text: str) -> float | None:
    return float(text) if text not in ("", None) else None


@unittest.skipIf(GIT is None, "git is not installed")
@once_per_ci_run("the page is static; the JSON it reads is tested on every Python")
class BrowserTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls) -> None:
        cls.chromium = need_executable("chromium", "chromium-browser")
        cls.artifacts = os.environ.get(ARTIFACTS_ENV) or os.path.join(
            tempfile.gettempdir(), "mgit-monitoring-artifacts"
        )
        os.makedirs(cls.artifacts, exist_ok=True)
        print(f"\n[browser artefacts: {cls.artifacts}]", file=sys.stderr)
        cls.demo = DemoProcess(["--repos", "3", "--duration", "2", "--port", "0"])
        try:
            cls.url = cls.demo.wait_for("serving on ").split()[-1]
            cls.summary = json.loads(cls.demo.wait_for("demo finished: ").split(": ", 1)[1])
        except BaseException:
            cls.demo.close()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        code = cls.demo.finish(signal.SIGINT)  # as Ctrl-C
        cls.demo.close()
        assert code == 0, code

    def browser(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        profile = tempfile.mkdtemp(prefix="mgit-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        cmd = [self.chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        done = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=profile)
        self.assertEqual(done.returncode, 0, done.stderr.decode("utf-8", "replace")[-2000:])
        return done

    def requests_by_handler(self) -> Dict[str, float]:
        samples = parse_metrics(fetch(self.url + "/metrics"))
        out: Dict[str, float] = {}
        for (name, labels), value in samples.items():
            if name == "mgit_monitoring_http_requests_total":
                handler = dict(labels)["handler"]
                out[handler] = out.get(handler, 0) + value
        return out

    def test_csp_header_on_the_served_page(self) -> None:
        with urllib.request.urlopen(self.url + "/", timeout=30) as response:
            headers = response.headers
            body = response.read()
        csp = headers["Content-Security-Policy"]
        self.assertIsNotNone(csp, "GET / must answer with mgit_monitoring.page.page_response()")
        self.assertIn("default-src 'none'", csp)
        self.assertIn("connect-src 'self'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertEqual(headers["Referrer-Policy"], "no-referrer")
        self.assertIn("nosniff", headers["X-Content-Type-Options"])
        self.assertTrue(headers["Content-Type"].startswith("text/html"))
        self.assertIn(b"<svg", body)
        history = json.loads(fetch(self.url + "/history"))
        self.assertEqual(history["format"], "mgit_monitoring.history/1")
        self.assertIsInstance(history["series"], list)

    def test_page_shows_the_numbers_of_the_json_endpoints(self) -> None:
        before = self.requests_by_handler()
        netlog = os.path.join(self.artifacts, "netlog.json")
        done = self.browser(
            "--virtual-time-budget=12000", f"--log-net-log={netlog}", "--dump-dom", self.url + "/"
        )
        after = self.requests_by_handler()
        dom_text = done.stdout.decode("utf-8")
        with open(os.path.join(self.artifacts, "dashboard-dom.html"), "w", encoding="utf-8") as f:
            f.write(dom_text)
        doc = json.loads(fetch(self.url + "/metrics/json"))
        health = json.loads(fetch(self.url + "/health/detailed"))
        dom = parse_dom(dom_text)
        want = expected(doc)

        # the page polled (more than once, in virtual time) and is connected
        self.assertEqual(dom.body.get("data-state"), "ok", dom.body)
        self.assertGreaterEqual(int(dom.body.get("data-polls", "0")), 2)
        # health: overall and every check
        self.assertEqual(dom.by_id["overall"]["data-v"], health["status"])
        for name, check in health["checks"].items():
            self.assertEqual(dom.rows[("data-check", name)]["status"], check["status"], name)
        # operations
        self.assertEqual(_float(dom.by_id["ops-total"]["data-v"]), want["total"])
        self.assertEqual(_float(dom.by_id["ops-fail"]["data-v"]), want["failed"])
        self.assertEqual(_float(dom.by_id["ops-ok"]["data-v"]), want["total"] - want["failed"])
        self.assertAlmostEqual(
            _float(dom.by_id["success-rate"]["data-v"]),
            (want["total"] - want["failed"]) / want["total"],
            places=5,
        )
        self.assertGreater(want["total"], 0)
        # durations: every row, every percentile
        shown = {key: values for (kind, key), values in dom.rows.items() if kind == "data-op"}
        self.assertEqual(sorted(shown), sorted(want["rows"]))
        for key, row in want["rows"].items():
            for field, value in row.items():
                got = _float(shown[key][field])
                if value is None:
                    self.assertIsNone(got, (key, field))
                else:
                    self.assertIsNotNone(got, (key, field))
                    self.assertTrue(
                        math.isclose(got, value, rel_tol=1e-5, abs_tol=1e-9),
                        f"{key} {field}: page {got} != {value}",
                    )
        self.assertIn("git: clone", shown)
        self.assertIsNotNone(_float(shown["git: clone"]["p95"]))
        # providers
        for provider, values in want["providers"].items():
            row = dom.rows[("data-provider", provider)]
            for field in ("requests", "errors", "rate_limited"):
                self.assertEqual(_float(row[field]), values.get(field, 0), (provider, field))
        self.assertEqual(_float(dom.rows[("data-provider", "demo")]["rate_limited"]), 1)
        # activity and process
        self.assertEqual(
            _float(dom.by_id["repos-processed"]["data-v"]),
            want["gauges"][_name("mgit_repositories_processed")],
        )
        self.assertEqual(_float(dom.by_id["active-ops"]["data-v"]), 0)
        self.assertGreater(_float(dom.by_id["mem-rss"]["data-v"]) or 0, 1024 * 1024)
        self.assertGreater(_float(dom.by_id["uptime"]["data-v"]) or 0, 0)
        # the histogram and the sparkline were drawn
        self.assertEqual(dom.by_id["hist"].get("data-empty"), "0")

        # only our own endpoints were asked, counted by the server itself
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
        delta["/metrics"] = delta.get("/metrics", 0) - 1  # our own "before" scrape
        asked = {k for k, v in delta.items() if v > 0}
        self.assertLessEqual(asked, OWN_PATHS, delta)
        self.assertIn("/", asked)
        self.assertIn("/metrics/json", asked)
        self.assertEqual(delta.get("other", 0), 0, delta)
        # and by Chromium's own net log: every request made for the page (its network
        # isolation key is the page's site) goes to the server; the browser's own
        # background requests carry other keys and are not the page's doing.
        page_urls = page_requests(netlog, self.url)
        self.assertIn(self.url + "/metrics/json", page_urls)
        self.assertEqual({u for u in page_urls if not u.startswith(self.url + "/")}, set())

    def test_screenshots_at_desktop_and_phone_widths_are_not_blank(self) -> None:
        shots = (
            ("desktop", (1280, 900), ()),
            ("phone", (390, 844), ()),
            ("desktop-dark", (1280, 900), ("--force-dark-mode",)),
        )
        for label, (width, height), extra in shots:
            with self.subTest(label):
                path = os.path.join(self.artifacts, f"dashboard-{label}.png")
                if os.path.exists(path):
                    os.unlink(path)
                self.browser(
                    "--virtual-time-budget=8000",
                    f"--window-size={width},{height}",
                    f"--screenshot={path}",
                    *extra,
                    self.url + "/",
                )
                with open(path, "rb") as f:
                    png = f.read()
                stats = pixel_stats(png)
                corner = decode_png(png)[3][:3]  # the header's background
                if label.endswith("dark"):
                    self.assertLess(sum(corner), 3 * 80, f"dark scheme followed: {corner!r}")
                else:
                    self.assertGreater(sum(corner), 3 * 180, f"light scheme: {corner!r}")
                print(f"[{label} screenshot: {path} {stats}]", file=sys.stderr)
                self.assertEqual((stats["width"], stats["height"]), (width, height))
                self.assertGreater(stats["colours"], 20, stats)
                self.assertGreater(stats["ink"], 0.02, stats)


if __name__ == "__main__":
    unittest.main()


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Serves the page; its JSON endpoints fail (503) for the first ``failures`` requests."""

    failures = 0
    seen: List[str] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        from mgit_monitoring.page import page_response

        type(self).seen.append(self.path)
        if self.path == "/":
            body, headers = page_response()
            status = 200
        elif type(self).failures > 0:
            type(self).failures -= 1
            body, headers, status = b"down", [("Content-Type", "text/plain")], 503
        elif self.path == "/metrics/json":
            doc = {"format": "mgit_monitoring.metrics/1", "timestamp": time.time(), "metrics": []}
            body, headers, status = (
                json.dumps(doc).encode(),
                [("Content-Type", "application/json")],
                200,
            )
        elif self.path == "/health/detailed":
            doc = {
                "status": "healthy",
                "checks": {
                    "git_availability": {"status": "healthy", "message": "ok", "critical": True}
                },
            }
            body, headers, status = (
                json.dumps(doc).encode(),
                [("Content-Type", "application/json")],
                200,
            )
        else:
            body, headers, status = b"{}", [("Content-Type", "application/json")], 404
        self.send_response(status)
        for key, value in headers:
            if key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class UnreachableTest(unittest.TestCase):
    """Polling that fails shows "server unreachable", then recovers by itself; no data, no NaN."""

    def dump(self, failures: int, budget: int) -> _Dom:
        chromium = need_executable("chromium", "chromium-browser")
        _Flaky.failures = failures
        _Flaky.seen = []
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(httpd.server_close)
        self.addCleanup(httpd.shutdown)
        profile = tempfile.mkdtemp(prefix="mgit-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        done = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             f"--virtual-time-budget={budget}", "--dump-dom", url],
            capture_output=True, timeout=120, cwd=profile,
        )  # fmt: skip
        self.assertEqual(done.returncode, 0, done.stderr[-2000:])
        return parse_dom(done.stdout.decode("utf-8")), done.stdout.decode("utf-8")

    def test_unreachable_then_recovered(self) -> None:
        dom, text = self.dump(failures=1000, budget=3000)
        self.assertEqual(dom.body.get("data-state"), "unreachable")
        self.assertNotIn("hidden", dom.by_id["conn"])
        self.assertIn("Server unreachable", text)
        dom, text = self.dump(failures=2, budget=30000)
        self.assertEqual(dom.body.get("data-state"), "ok", text[-3000:])
        self.assertIn("hidden", dom.by_id["conn"])
        self.assertEqual(dom.by_id["overall"]["data-v"], "healthy")
        # empty series: "no data yet", never NaN or undefined
        self.assertEqual(dom.by_id["ops-total"]["data-v"], "")
        self.assertIn("no data yet", text)
        for bad in ("NaN", "undefined", "Infinity"):
            self.assertNotIn(">" + bad, text)
        self.assertLessEqual(set(_Flaky.seen), OWN_PATHS)
