"""The dashboard page and the /history document: pure functions, no server, no browser."""

from __future__ import annotations

import base64
import hashlib
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from typing import Dict, List, Tuple

from mgit_monitoring import metric_definitions, page
from mgit_monitoring.store import Store, TraceRow
from tests.support import ROOT


class _Blocks(html.parser.HTMLParser):
    """Collects inline <script>/<style> texts, tag attributes and inline event handlers."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.blocks: List[Tuple[str, str]] = []
        self.attrs: List[Tuple[str, str, str]] = []
        self._open: str | None = None
        self._text: List[str] = []

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, str | None]]) -> None:
        for name, value in attrs:
            self.attrs.append((tag, name, value or ""))
        if tag in ("script", "style"):
            self._open, self._text = tag, []

    def handle_endtag(self, tag: str) -> None:
        if tag == self._open:
            self.blocks.append((tag, "".join(self._text)))
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open:
            self._text.append(data)


def _parse() -> _Blocks:
    parser = _Blocks()
    parser.feed(page.page_html().decode("utf-8"))
    parser.close()
    return parser


def _sha(text: str) -> str:
    return (
        "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"
    )


def _csp(headers: List[Tuple[str, str]]) -> Dict[str, List[str]]:
    value = dict(headers)["Content-Security-Policy"]
    out: Dict[str, List[str]] = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


class PageTest(unittest.TestCase):
    def test_headers(self) -> None:
        body, headers = page.page_response()
        h = dict(headers)
        self.assertEqual(h["Content-Type"], "text/html; charset=utf-8")
        self.assertEqual(h["Content-Length"], str(len(body)))
        self.assertEqual(h["X-Content-Type-Options"], "nosniff")
        self.assertEqual(h["Referrer-Policy"], "no-referrer")
        self.assertEqual(h["Cache-Control"], "no-cache")
        self.assertEqual(len(headers), len(h), "no header twice")

    def test_csp_is_strict_and_hashes_match_the_inline_blocks(self) -> None:
        _, headers = page.page_response()
        csp = _csp(headers)
        self.assertEqual(csp["default-src"], ["'none'"])
        self.assertEqual(csp["connect-src"], ["'self'"])
        self.assertEqual(csp["img-src"], ["'self'", "data:"])
        self.assertEqual(csp["base-uri"], ["'none'"])
        self.assertEqual(csp["form-action"], ["'none'"])
        self.assertEqual(csp["frame-ancestors"], ["'none'"])
        text = dict(headers)["Content-Security-Policy"]
        self.assertNotIn("unsafe", text)
        blocks = _parse().blocks
        scripts = [_sha(t) for tag, t in blocks if tag == "script"]
        styles = [_sha(t) for tag, t in blocks if tag == "style"]
        self.assertEqual(len(scripts), 1)
        self.assertEqual(len(styles), 1)
        self.assertEqual(csp["script-src"], scripts)
        self.assertEqual(csp["style-src"], styles)

    def test_nothing_the_csp_would_block(self) -> None:
        parser = _parse()
        for tag, name, value in parser.attrs:
            self.assertFalse(name.startswith("on"), f"inline handler {tag} {name}")
            self.assertNotEqual(name, "style", f"inline style attribute on {tag}")
            if tag == "script":
                self.fail("script tags take no attributes (src= would load a file)")
            if name in ("src", "href", "action", "srcset", "poster"):
                self.assertNotRegex(value, r"^[a-z]+:(?!,)", f"{tag} {name}={value!r}")
                self.assertFalse(value.startswith("/"), f"{tag} {name}={value!r} is absolute")

    def test_no_external_url_and_relative_fetches(self) -> None:
        text = page.page_html().decode("utf-8")
        self.assertNotRegex(text, r"(?i)https?:|//[a-z0-9.-]+\.[a-z]{2,}/|@import|url\(")
        fetched = set(re.findall(r'getJSON\("([^"]+)"\)', text))
        self.assertEqual(fetched, {"metrics/json", "health/detailed", "history"})
        for path in fetched:
            self.assertFalse(path.startswith("/"), "relative, so a path prefix works")

    def test_metric_names_come_from_the_definitions(self) -> None:
        text = page.page_html().decode("utf-8")
        used = set(re.findall(r'"(mgit_[a-z_]+)"', text))
        defined = {d.name for d in metric_definitions.METRICS}
        self.assertTrue(used, "the page reads mgit metrics")
        self.assertLessEqual(used, defined, f"unknown names: {sorted(used - defined)}")
        for name in (
            "mgit_operations_total",
            "mgit_git_operations_total",
            "mgit_operation_duration_seconds",
            "mgit_git_operation_duration_seconds",
            "mgit_api_requests_total",
            "mgit_api_errors_total",
            "mgit_api_rate_limit_hits_total",
            "mgit_concurrent_operations",
            "mgit_repositories_processed",
        ):
            self.assertIn(metric_definitions.definition(name).name, used)

    def test_page_is_cached_and_stable(self) -> None:
        first = page.page_response()
        second = page.page_response()
        self.assertIs(first[0], second[0])
        self.assertEqual(first[1], second[1])
        second[1].append(("X-Test", "1"))  # a caller's edit does not leak into the cache
        self.assertNotIn(("X-Test", "1"), page.page_response()[1])

    def test_inline_blocks(self) -> None:
        doc = b"<style>a{}</style><p><script>x()</script><script>y()</script>"
        self.assertEqual(
            page.inline_blocks(doc), [("style", b"a{}"), ("script", b"x()"), ("script", b"y()")]
        )
        csp = page.content_security_policy(doc)
        self.assertIn("script-src 'sha256-", csp)
        self.assertEqual(csp.count("'sha256-"), 3)
        self.assertIn("script-src 'none'", page.content_security_policy(b"<p>no script</p>"))

    def test_loads_from_a_zip_and_next_to_the_file_on_any_python(self) -> None:
        # Vendored in a zip (importlib.resources / zipimport) and from files (3.8 fallback).
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        archive = shutil.make_archive(os.path.join(tmp, "vendored"), "zip", ROOT, "mgit_monitoring")
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]);"
            "from mgit_monitoring import page;"
            "assert page.__file__.startswith(sys.argv[1]), page.__file__;"
            "b, h = page.page_response(); print(len(b), dict(h)['Content-Length'])"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, archive],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, PYTHONPATH=""),
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        size, length = done.stdout.split()
        self.assertEqual(size, str(len(page.page_html())))
        self.assertEqual(size, length)


class HistoryTest(unittest.TestCase):
    NOW = 1_700_000_000.0 + 30  # 30 s into a minute

    def _store(self) -> Store:
        store = Store(None)
        self.addCleanup(store.close)
        return store

    def test_no_source(self) -> None:
        doc = page.history_document(None, now=self.NOW)
        self.assertEqual(doc["format"], page.HISTORY_FORMAT)
        self.assertEqual(doc["series"], [])
        self.assertEqual(doc["step_seconds"], 60)
        self.assertEqual(doc["window_seconds"], 3600)

    def test_empty_store(self) -> None:
        self.assertEqual(page.history_document(self._store(), now=self.NOW)["series"], [])

    def test_bins_per_minute(self) -> None:
        store = self._store()
        minute = (self.NOW // 60) * 60
        rows = [
            TraceRow("git_clone", minute - 60 + 1, 0.5, True),
            TraceRow("git_clone", minute - 60 + 2, 0.5, False),
            TraceRow("git_pull", minute - 60 + 59, 0.1, True),
            TraceRow("sync", minute - 180 + 5, 1.0, True),
            TraceRow("sync", minute + 5, 1.0, False),  # the running minute: not reported
            TraceRow("old", minute - 3600 - 1, 1.0, True),  # outside the window
        ]
        self.assertTrue(store.insert_traces(rows))
        doc = page.history_document(store, now=self.NOW)
        series = {s["name"]: s for s in doc["series"]}
        self.assertEqual(sorted(series), ["failures", "operations", "success_rate"])
        ops = series["operations"]["points"]
        self.assertEqual(len(ops), 60)
        self.assertEqual(ops[-1], [int(minute - 60), 3])
        self.assertEqual(ops[-3], [int(minute - 180), 1])
        self.assertEqual(ops[0][0], int(minute - 3600))
        self.assertEqual(sum(n for _, n in ops), 4)
        self.assertEqual(series["failures"]["points"][-1], [int(minute - 60), 1])
        rates = series["success_rate"]["points"]
        self.assertEqual(rates, [[int(minute - 180), 1.0], [int(minute - 60), round(2 / 3, 6)]])
        # JSON as served
        body, headers = page.history_response(store, now=self.NOW)
        self.assertEqual(json.loads(body), doc)
        self.assertEqual(dict(headers)["Content-Type"], "application/json")
        self.assertEqual(dict(headers)["Content-Length"], str(len(body)))

    def test_source_with_a_store_attribute_and_a_failing_source(self) -> None:
        store = self._store()
        store.insert_traces([TraceRow("x", self.NOW - 90, 0.1, True)])

        class Holder:
            pass

        holder = Holder()
        holder.store = store  # type: ignore[attr-defined]
        self.assertTrue(page.history_document(holder, now=self.NOW)["series"])

        class Broken:
            def query_traces(self, *a: object, **k: object) -> None:
                raise RuntimeError("boom")

        self.assertEqual(page.history_document(Broken(), now=self.NOW)["series"], [])
        self.assertEqual(page.history_document(object(), now=self.NOW)["series"], [])


if __name__ == "__main__":
    unittest.main()
