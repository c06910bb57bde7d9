"""Recall and false positives of the credential masker on the committed corpus.

    python3 tools/masking_recall.py              # the table, per kind and per group
    python3 tools/masking_recall.py --misses 20  # also show up to 20 missed secrets / changed lines
    python3 tools/masking_recall.py --strict     # the masker in strict mode

A secret counts as masked when neither it, nor its first or last 8 characters, are left in
the masked text (a half-masked token is a leak). An ordinary record counts as a false
positive when the masked text differs from it in any byte. The corpus
(tests/data/masking/corpus.jsonl) is built by tools/make_masking_corpus.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import OrderedDict
from typing import Callable, Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "data", "masking", "corpus.jsonl")


def load(path: str = CORPUS) -> List[Dict[str, object]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def leaked(secret: str, out: str) -> bool:
    """Whether any recognisable part of ``secret`` survives in ``out``."""
    if secret in out:
        return True
    return len(secret) >= 12 and (secret[:8] in out or secret[-8:] in out)


def evaluate(
    mask: Callable[[str], str], records: List[Dict[str, object]]
) -> Tuple[Dict[Tuple[str, str], List[int]], List[Tuple[Dict[str, object], str]]]:
    """Return ({(group, kind): [total, good]}, [(record, masked text) for each failure]).

    ``good`` is a masked secret record (every span gone) or an unchanged ordinary record.
    """
    table: Dict[Tuple[str, str], List[int]] = OrderedDict()
    failures: List[Tuple[Dict[str, object], str]] = []
    for rec in records:
        text = str(rec["text"])
        out = mask(text)
        key = (str(rec["group"]), str(rec["kind"]))
        row = table.setdefault(key, [0, 0])
        row[0] += 1
        if rec["group"] == "ordinary":
            ok = out == text
        else:
            spans = rec["secrets"]
            assert isinstance(spans, list) and spans, rec
            ok = not any(leaked(text[a:b], out) for a, b in spans)
        if ok:
            row[1] += 1
        else:
            failures.append((rec, out))
    return table, failures


def group_totals(table: Dict[Tuple[str, str], List[int]]) -> Dict[str, List[int]]:
    out: Dict[str, List[int]] = OrderedDict()
    for (group, _kind), (total, good) in table.items():
        row = out.setdefault(group, [0, 0])
        row[0] += total
        row[1] += good
    return out


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--misses", type=int, default=0, help="show up to N failures")
    ap.add_argument("--strict", action="store_true", help="use CredentialMasker(strict=True)")
    args = ap.parse_args(argv)
    sys.path.insert(0, ROOT)
    from mgit_monitoring.masking import CredentialMasker

    masker = CredentialMasker(strict=args.strict, cache_size=0)
    records = load()
    table, failures = evaluate(masker.mask_text, records)
    print(f"# corpus {os.path.relpath(CORPUS, ROOT)}: {len(records)} records; strict={args.strict}")
    print(
        f"{'group':9} {'kind':28} {'n':>5} {'masked':>7} {'recall':>7}   (ordinary: unchanged / FP)"
    )
    for (group, kind), (total, good) in table.items():
        if group == "ordinary":
            print(f"{group:9} {kind:28} {total:5d} {good:7d} {'':>7}   FP {total - good}")
        else:
            print(f"{group:9} {kind:28} {total:5d} {good:7d} {100.0 * good / total:6.1f}%")
    print()
    for group, (total, good) in group_totals(table).items():
        if group == "ordinary":
            print(f"ordinary lines changed (false positives): {total - good} of {total}")
        else:
            print(f"{group} kinds masked: {good}/{total} = {100.0 * good / total:.1f}%")
    for rec, out in failures[: args.misses]:
        where = f"{rec['group']}/{rec['kind']}/{rec['context']}"
        print(f"\n[{where}]\n  in : {rec['text']!r}\n  out: {out!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
