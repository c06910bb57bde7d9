"""One row of the final bench table: ``emit()`` appends it to the file ``bench/report.py`` reads.

Each ``bench/bench_*.py`` prints its own tables as before and, for every figure it already
computes, calls::

    emit("metrics", "R1 counter inc()", ours_ns, anchor_ns,
         anchor_name="prometheus_client", goal=0.8)

When the environment variable ``MGIT_BENCH_RESULTS`` names a file (``bench/report.py`` sets
it to a temp file for each run), ``emit`` appends one JSON object, one line, to it; when the
variable is unset (a bench run on its own) it does nothing. ``bench/report.py`` then prints
every row of every bench in one table, and with ``--markdown`` writes BENCHMARKS.md.

Semantics of a row:

* ``bench``: the bench's short name (``"metrics"`` for ``bench_metrics.py``; a leading
  ``bench_`` and a trailing ``.py`` are dropped by the report).
* ``name``: the row, as the bench's own table names it.
* ``ours``, ``anchor``: figures in ``unit``, measured in the same run. ``anchor`` is None
  when the row has no anchor (or the anchor is not installed): the ratio then shows ``-``.
  A non-finite figure (NaN from a failed parse) is recorded as None.
* **Lower is better for every row.** The ratio is ``ours / anchor``. A figure whose natural
  reading is "higher is better" (requests per second) is emitted as time per unit instead
  (``ms/req`` = 1000 / req/s), so that a ratio below 1 always means ours is better. There is
  deliberately no ``higher_is_better`` switch.
* ``goal``: the ratio wanted, a maximum (``goal=0.5``: ours at most half the anchor's time).
* ``floor``: the ratio never to exceed (``floor=1.0``: never slower than the anchor).
* ``max_value``: an absolute goal for ``ours``, in ``unit`` (``25`` with ``unit="MB"``: the
  idle server at most 25 MB), for goals the issues state as a figure, not a ratio.
* ``ratio``: only when the bench computes the ratio its own way (the median of per-round
  ratios, steadier than a ratio of medians on a drifting machine); the report then shows
  it instead of ``ours / anchor`` and judges the goal by it.
* ``note``: a few words shown beside the row (where the goal comes from, a caveat).

The report's "met" column is ``yes`` when every stated limit holds, ``NO`` when the goal (or
``max_value``) is missed, ``NO (floor)`` when the floor is exceeded, ``-`` when there is no
goal or no anchor to judge it by. A missed goal is reported, never an error.
"""

from __future__ import annotations

import json
import math
import os
from typing import Optional

ENV = "MGIT_BENCH_RESULTS"


def _finite(value: Optional[float]) -> Optional[float]:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def emit(
    bench: str,
    name: str,
    ours: float,
    anchor: Optional[float],
    *,
    unit: str = "ns",
    anchor_name: str = "",
    goal: Optional[float] = None,
    floor: Optional[float] = None,
    max_value: Optional[float] = None,
    ratio: Optional[float] = None,
    note: str = "",
) -> None:
    """Append one result row to ``$MGIT_BENCH_RESULTS`` (no-op when it is unset)."""
    path = os.environ.get(ENV)
    if not path:
        return
    row = {
        "bench": bench,
        "name": name,
        "ours": _finite(ours),
        "anchor": _finite(anchor),
        "unit": unit,
        "anchor_name": anchor_name,
        "goal": goal,
        "floor": floor,
        "max_value": max_value,
        "ratio": _finite(ratio),
        "note": note,
    }
    # One write of one line in append mode: rows from one process never interleave.
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, sort_keys=True) + "\n")
