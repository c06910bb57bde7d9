"""The masker on the committed corpus of fake secrets in realistic mgit log lines.

tests/data/masking/corpus.jsonl is built by tools/make_masking_corpus.py (seeded, every
secret fake) and scored by tools/masking_recall.py, which prints the per-kind table.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import unittest
from types import ModuleType
from typing import Any, Callable, List

from mgit_monitoring.masking import CredentialMasker
from tests.support import ROOT


def _tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tools", f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


recall = _tool("masking_recall")
corpus_tool = _tool("make_masking_corpus")


def _describe(failures: List[Any], limit: int = 10) -> str:
    return "\n".join(
        f"[{r['group']}/{r['kind']}/{r['context']}] {r['text']!r} -> {out!r}"
        for r, out in failures[:limit]
    )


class TestCorpus(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.records = recall.load()

    def test_corpus_file_is_what_the_seeded_generator_writes(self) -> None:
        with open(recall.CORPUS, encoding="utf-8") as f:
            self.assertEqual(corpus_tool.dump(corpus_tool.build()), f.read())
        self.assertGreaterEqual(len(self.records), 2000)

    def test_spans_point_at_the_secrets(self) -> None:
        """Each claimed/other record names at least one span; ordinary records none."""
        for rec in self.records:
            text, spans = rec["text"], rec["secrets"]
            if rec["group"] == "ordinary":
                self.assertEqual([], spans, rec)
            else:
                self.assertTrue(spans, rec)
                for a, b in spans:
                    self.assertTrue(0 <= a < b <= len(text), rec)

    def _evaluate(self, mask: Callable[[str], str]) -> Any:
        return recall.evaluate(mask, self.records)

    def test_recall_and_false_positives(self) -> None:
        """>= 99% of the catalogue's kinds, >= 80% of other providers, no ordinary line
        changed; and no kind is left behind (each at least 80%)."""
        table, failures = self._evaluate(CredentialMasker(cache_size=0).mask_text)
        totals = recall.group_totals(table)
        by_group = {g: [f for f in failures if f[0]["group"] == g] for g in totals}
        total, good = totals["ordinary"]
        self.assertEqual(total, good, "ordinary lines changed:\n" + _describe(by_group["ordinary"]))
        total, good = totals["claimed"]
        self.assertGreaterEqual(good / total, 0.99, _describe(by_group["claimed"]))
        total, good = totals["other"]
        self.assertGreaterEqual(good / total, 0.80, _describe(by_group["other"]))
        for (group, kind), (n, ok) in table.items():
            if group != "ordinary":
                self.assertGreaterEqual(ok / n, 0.80, f"{group}/{kind}: {ok}/{n}")

    def test_the_default_masker_and_its_cache_agree(self) -> None:
        """The clean-string cache answers as a full scan does (twice through the corpus)."""
        masker = CredentialMasker()
        first = [masker.mask_text(r["text"]) for r in self.records]
        second = [masker.mask_text(r["text"]) for r in self.records]
        self.assertEqual(first, second)
        scanned = CredentialMasker(cache_size=0)
        self.assertEqual([scanned.mask_text(r["text"]) for r in self.records], first)
        cached = masker.cached_strings()
        for rec, out in zip(self.records, first):
            for a, b in rec["secrets"]:
                secret = rec["text"][a:b]
                if not recall.leaked(secret, out):  # a masked secret is never cached
                    self.assertFalse(any(secret in c for c in cached), rec)

    def test_masking_is_idempotent_on_the_corpus(self) -> None:
        masker = CredentialMasker(cache_size=0)
        for rec in self.records:
            once = masker.mask_text(rec["text"])
            self.assertEqual(once, masker.mask_text(once), rec)

    def test_oversized_lines_keep_their_text_and_lose_their_secrets(self) -> None:
        """The corpus joined into one huge line, scanned in chunks: ordinary text kept,
        secrets gone (chunk boundaries fall everywhere)."""
        # One-line records only: a multi-line one flattened changes meaning (an empty
        # "GH_TOKEN=" before a newline; a truncated key block masks to the end, by design).
        records = [r for r in self.records if "\n" not in r["text"]]
        line = " | ".join(r["text"] for r in records)
        for max_line in (4096, 10007):
            out = CredentialMasker(max_line=max_line, cache_size=0).mask_text(line)
            self.assertNotIn("characters not scanned", out)
            for rec in records:
                if rec["group"] == "ordinary":
                    self.assertIn(rec["text"], out, rec)
                for a, b in rec["secrets"]:
                    if rec["kind"] != "private_key_line_by_line":  # whole-message rule
                        self.assertFalse(recall.leaked(rec["text"][a:b], out), (max_line, rec))


def _count_calls(fn: Callable[[], Any]) -> int:
    """Python and C function calls made while fn runs (a deterministic measure of work:
    every regex search/match/sub and every rule loop step is a call)."""
    count = 0

    def prof(_frame: Any, event: str, _arg: Any) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


class TestLinearWork(unittest.TestCase):
    """Doubling the input roughly doubles the work, counted in calls (no clock).

    Together with test_masking's adversarial 1 MB inputs (which bound the work inside each
    regex), this shows masking stays linear: the Python-level loops (key words found, chunks,
    candidate tokens) grow with the input, never with its square.
    """

    SHAPES = {
        "key words": "token=x password: y pass auth=z ",
        "tokens": "ghp_" + "A1b2" * 9 + " glpat-" + "x1" * 10 + " xoxb-123-456-abcdefghij ",
        "urls": "https://u:p@h/x https://h:8080?a=b@c ",
        "corpus-like": 'GH_TOKEN=\n{"name": "X_TOKEN", "value": "v"} --token t -u a:b '
        "Bearer abcdefgh12345678 ",
    }

    def test_doubling_input_doubles_calls(self) -> None:
        for name, unit in self.SHAPES.items():
            grew = False
            for max_line in (65536, 1000):  # one scan, and the chunked path
                masker = CredentialMasker(cache_size=0, max_line=max_line)
                small = _count_calls(lambda m=masker, u=unit: m.mask_text(u * 200))
                large = _count_calls(lambda m=masker, u=unit: m.mask_text(u * 400))
                self.assertLessEqual(large, 2.3 * small + 100, f"{name} max_line={max_line}")
                grew = grew or large > small
            # The counter sees the work grow on at least one path. Not on both: since Python
            # 3.12 re.sub expands a string template in C, so one scan of URLs makes the same
            # number of Python calls at any size; the chunked path always loops in Python.
            self.assertTrue(grew, name)


if __name__ == "__main__":
    unittest.main()
