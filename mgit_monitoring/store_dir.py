"""Whether a directory can hold the store: the one answer every check gives about the state dir.

:func:`probe_store_dir` tries it for real (a temporary file in an existing directory, a
temporary subdirectory in the nearest existing parent of a missing one) instead of asking
``os.access``, which says yes to root everywhere, including under ``/proc`` and on
read-only mounts. The system check and the disk check both use it, so they cannot disagree
about a directory. Standard library only; nothing here knows a check or a result.
"""

from __future__ import annotations

import os
import tempfile
from typing import NamedTuple, Tuple

__all__ = [
    "CREATABLE",
    "READ_ONLY",
    "STORE_MEMORY",
    "STORE_READ_ONLY",
    "STORE_READ_WRITE",
    "STORE_UNUSABLE",
    "UNUSABLE",
    "WRITABLE",
    "StoreDirState",
    "nearest_existing",
    "probe_store_dir",
]

WRITABLE = "writable"
"""The directory exists and a file can be written in it."""
CREATABLE = "creatable"
"""The directory does not exist yet; it can be created (the probe does not create it)."""
READ_ONLY = "read_only"
"""The directory exists and can be read, but nothing can be written in it."""
UNUSABLE = "unusable"
"""Neither: not a directory, unreadable, or missing where it cannot be created."""

# How a process uses the store (Store.mode, and what the checks are told to expect).
STORE_READ_WRITE = "read-write"
"""A process that records and flushes (mgit itself)."""
STORE_READ_ONLY = "read-only"
"""A reader (the server, ``metrics``) that cannot or need not write."""
STORE_MEMORY = "memory"
"""No store on disk: persistence is off, or a writer's fallback."""
STORE_UNUSABLE = "unusable"
"""A reader that cannot read the file."""


class StoreDirState(NamedTuple):
    """What :func:`probe_store_dir` found about ``path``.

    ``status`` is one of :data:`WRITABLE`, :data:`CREATABLE`, :data:`READ_ONLY`,
    :data:`UNUSABLE`; ``note`` says why in a few words; ``existing`` is ``path`` or its
    nearest existing parent (the filesystem the store would live on); ``read_only_fs`` is
    true when that filesystem is mounted read-only, ``has_storage`` false for a filesystem
    with no blocks (``/proc``, ``/sys``).
    """

    path: str
    status: str
    note: str
    existing: str
    read_only_fs: bool = False
    has_storage: bool = True

    @property
    def writable(self) -> bool:
        """A store can be written there (it exists and is writable, or can be created)."""
        return self.status in (WRITABLE, CREATABLE)

    @property
    def readable(self) -> bool:
        """A store there can be read (a creatable directory reads as an empty store)."""
        return self.status != UNUSABLE

    @property
    def measurable(self) -> bool:
        """Free space there means something: a directory on a filesystem with storage."""
        return self.has_storage and os.path.isdir(self.existing)

    @property
    def summary(self) -> str:
        """``"<path>: <note>"``, the one line the checks report."""
        return f"{self.path}: {self.note}"


def nearest_existing(path: str) -> str:
    """``path`` (made absolute) or its nearest parent that exists."""
    current = os.path.abspath(path)
    while not os.path.exists(current) and os.path.dirname(current) != current:
        current = os.path.dirname(current)
    return current


def _filesystem(path: str) -> Tuple[bool, bool]:
    """(has storage, mounted read-only) of the filesystem holding ``path``."""
    statvfs = getattr(os, "statvfs", None)
    if statvfs is None:  # Windows: no statvfs; assume an ordinary disk
        return True, False
    try:
        info = statvfs(path)
    except OSError:
        return True, False
    read_only = bool(info.f_flag & getattr(os, "ST_RDONLY", 1))
    return info.f_blocks > 0, read_only


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def probe_store_dir(path: str) -> StoreDirState:
    """Whether ``path`` can hold the store: written, only read, or not used at all.

    An existing directory gets a temporary file written and removed; a missing one gets a
    temporary subdirectory made and removed in its nearest existing parent (the directory
    itself is not created). A filesystem without storage (``/proc``, ``/sys``: zero blocks)
    is unusable whatever the permission bits say. Never raises for an ``OSError``.
    """
    path = os.path.abspath(path)
    existing = nearest_existing(path)
    has_storage, read_only_fs = _filesystem(existing)

    def state(status: str, note: str) -> StoreDirState:
        return StoreDirState(path, status, note, existing, read_only_fs, has_storage)

    if not has_storage:
        return state(UNUSABLE, f"{existing} is on a filesystem without storage")
    if existing == path:
        if not os.path.isdir(path):
            return state(UNUSABLE, "exists but is not a directory")
        try:
            with tempfile.NamedTemporaryFile(dir=path, prefix=".mgit-probe-") as handle:
                handle.write(b"ok")
                handle.flush()
            return state(WRITABLE, "writable")
        except OSError as exc:
            why = _reason(exc)
        if os.access(path, os.R_OK | os.X_OK):
            return state(READ_ONLY, f"read-only ({why})")
        return state(UNUSABLE, f"neither writable nor readable ({why})")
    if not os.path.isdir(existing):
        return state(UNUSABLE, f"missing, and {existing} is not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".mgit-probe-"))
    except OSError as exc:
        return state(UNUSABLE, f"missing, and cannot be created in {existing} ({_reason(exc)})")
    return state(CREATABLE, "missing; will be created")
