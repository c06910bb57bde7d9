"""JSON text for log lines: values encoded with credentials masked, and what repeats remembered.

:class:`LineEncoder` is what :class:`~mgit_monitoring.log_formatter.StructuredFormatter`
writes with. It turns strings, the caller's fields and any other value into JSON text:

* :meth:`~LineEncoder.text` masks a string (message, field value, exception text) and
  encodes it; a short string found clean is remembered with its JSON, so a message or a
  repository name that repeats costs one dict lookup the next time;
* :meth:`~LineEncoder.members` renders a flat field dict (strings, numbers, booleans,
  None) key by key from remembered key fragments, and anything else through the general
  path, :meth:`~LineEncoder.encode` (the whole structure masked, then ``json``);
* values ``json`` cannot encode (bytes, sets, datetimes, exceptions, objects, NaN, cycles,
  huge ints) become strings that say what they were, masked like any text: a log call
  never raises because of what it was given.

Only public ``json`` API is used: one ``JSONEncoder`` built per encoder, whose ``encode``
of a ``str`` is a single C call. Nothing here knows about log records.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
import os
from typing import AbstractSet, Any, Callable, Dict, Mapping, Optional, Set, Type

from mgit_monitoring.masking import CredentialMasker

__all__ = ["LineEncoder", "exception_type_name", "jsonable", "safe_str"]

_MAX_DEPTH = 32
_CACHE_ENTRIES = 2048  # remembered strings per encoder (and key fragments); cleared when full
_CACHE_MAX_LEN = 512  # longer strings are never remembered
_INF = float("inf")


def safe_str(obj: Any) -> str:
    """``str(obj)``, falling back to ``repr`` and then a placeholder; never raises."""
    try:
        return str(obj)
    except Exception:
        try:
            return repr(obj)
        except Exception:
            return f"<unrepresentable {type(obj).__name__}>"


def jsonable(obj: Any) -> Any:
    """A value ``json`` cannot encode as a string (or list, or dict) that says what it was."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).decode("utf-8", "backslashreplace")
    if isinstance(obj, (set, frozenset)):
        try:
            return sorted(obj)
        except TypeError:
            return list(obj)
    if isinstance(obj, (_dt.datetime, _dt.date, _dt.time)):
        return obj.isoformat()
    if isinstance(obj, BaseException):
        return f"{type(obj).__name__}: {safe_str(obj)}"
    if isinstance(obj, enum.Enum):
        return safe_str(obj.value)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Mapping):  # MappingProxyType, ChainMap ...: keys get masked by name
        try:
            return dict(obj)
        except Exception:  # nosec B110 # a Mapping that cannot be copied: its repr, below
            pass
    kind: Type[object] = type(obj)
    if kind.__str__ is object.__str__:
        try:
            return repr(obj)
        except Exception:
            return f"<unrepresentable {type(obj).__name__}>"
    return safe_str(obj)


def exception_type_name(etype: type) -> str:
    """``ValueError`` for a builtin, ``subprocess.CalledProcessError`` for anything else."""
    module = getattr(etype, "__module__", "builtins")
    name = getattr(etype, "__qualname__", etype.__name__)
    return name if module in ("builtins", "__main__") else f"{module}.{name}"


class LineEncoder:
    """Encodes log values as compact JSON text, masking credentials with ``masker``.

    Args:
        masker: the masker for strings, fields and fallback values; None writes them as
            they are. Clean strings are remembered only when the masker remembers them
            too (its ``cache_size`` is not 0), so a masker built to scan every string
            still scans every string.
        reserved: field names the line itself uses: :meth:`members` puts a field of such
            a name under ``"fields"`` instead of repeating the key.

    Thread-safe: the caches are plain dicts whose entries are complete when stored.
    """

    def __init__(
        self, masker: Optional[CredentialMasker] = None, reserved: AbstractSet[str] = frozenset()
    ) -> None:
        self.masker = masker
        self.reserved = frozenset(reserved)
        self._remember = masker is None or masker.cache_size > 0
        options: Dict[str, Any] = {
            "separators": (",", ":"),
            "allow_nan": False,
            "default": self._fallback,
        }
        # JSONEncoder.encode() of a str is one C call; of anything else it builds a C
        # encoder first (about a microsecond), which is why flat fields take members().
        self._dumps: Callable[[Any], str] = json.JSONEncoder(ensure_ascii=False, **options).encode
        #: ``encode_str(s)``: the JSON string of ``s`` as it is (already masked text).
        self.encode_str: Callable[[str], str] = self._dumps
        #: ``encode_ascii(obj)``: JSON of plain data with every non-ASCII character escaped.
        self.encode_ascii: Callable[[Any], str] = json.JSONEncoder(
            ensure_ascii=True, **options
        ).encode
        #: Clean strings (short ones, found to need no masking) -> their JSON: a hit is
        #: what :meth:`text` would return, for callers that look up before calling.
        self.texts: Dict[str, str] = {}
        self._names: Dict[str, str] = {}  # unmasked string -> its JSON
        self._plain_keys: Dict[str, str] = {}  # field name written as it is -> ',"key":'

    # -- strings --------------------------------------------------------------------------

    def mask_text(self, text: str) -> str:
        """``text`` with credentials masked (unchanged without a masker)."""
        return text if self.masker is None else self.masker.mask_text(text)

    def text(self, text: Any) -> str:
        """The JSON string of ``text``, masked; remembered when clean and short."""
        cached = self.texts.get(text) if type(text) is str else None
        if cached is not None:
            return cached
        if type(text) is not str:
            text = safe_str(text)
        masked = self.mask_text(text)
        encoded = self.encode_str(masked)
        if masked is text and self._remember and len(text) <= _CACHE_MAX_LEN:
            _remember(self.texts, text, encoded)
        return encoded

    def name(self, value: Any) -> str:
        """The JSON of a name the line writes unmasked (level, logger, module, function):
        a string, remembered; None as ``null``; anything else as its ``str``."""
        if type(value) is str:
            cached = self._names.get(value)
            if cached is None:
                cached = self.encode_str(value)
                if len(value) <= _CACHE_MAX_LEN:
                    _remember(self._names, value, cached)
            return cached
        if value is None:
            return "null"
        return self.encode_str(safe_str(value))

    # -- fields ---------------------------------------------------------------------------

    def members(self, fields: Mapping[Any, Any]) -> str:
        """``fields`` as JSON object members, ``',"k":v,...'`` (``""`` when empty), masked.

        Keys in :attr:`reserved` are collected, in order, under one ``"fields"`` member at
        the end. The result is the same as masking the whole dict with the masker and
        encoding it. Flat fields (str, int, float, bool and None values under names that
        need no masking) are written piece by piece from remembered fragments; anything
        else takes the general path for the whole dict.
        """
        plain = self._plain_keys
        texts = self.texts
        out = ""
        try:
            for key, value in fields.items():
                prefix = plain.get(key) or self._plain_prefix(key)
                if prefix is None:
                    return self._general_members(fields)
                kind = type(value)
                if kind is str:
                    out += prefix + (texts.get(value) or self.text(value))
                elif kind is int or (kind is float and value - value == 0.0):
                    # repr() is JSON for an int (ValueError past the int_max_str_digits
                    # limit) and for a finite float (NaN and inf are not JSON).
                    out += prefix + repr(value)
                elif value is None or kind is bool:
                    out += prefix + ("null" if value is None else "true" if value else "false")
                else:
                    return self._general_members(fields)
        except ValueError:
            return self._general_members(fields)
        return out

    def _plain_prefix(self, key: Any) -> Optional[str]:
        """``',"key":'`` for a field name written as it is (a str that is not reserved,
        not masked by name and holding no secret itself), remembered; None otherwise."""
        if type(key) is not str:
            return None
        if key in self.reserved or self.mask_text(key) is not key:
            return None
        if self.masker is not None and self.masker.is_sensitive_key(key):
            return None
        prefix = "," + self.encode_str(key) + ":"
        if len(key) <= _CACHE_MAX_LEN:
            _remember(self._plain_keys, key, prefix)
        return prefix

    def _general_members(self, fields: Mapping[Any, Any]) -> str:
        """:meth:`members` the general way: the whole dict masked, then encoded."""
        masked = self.mask(fields if type(fields) is dict else dict(fields))
        out: Dict[Any, Any] = {}
        clashes: Optional[Dict[Any, Any]] = None
        for key, value in masked.items():
            if key in self.reserved:
                if clashes is None:
                    clashes = {}
                clashes[key] = value
            else:
                out[key] = value
        if clashes is not None:
            out["fields"] = clashes
        body = self.encode(out)
        return "," + body[1:-1] if len(body) > 2 else ""

    # -- any value ------------------------------------------------------------------------

    def mask(self, obj: Any) -> Any:
        """``obj`` with credentials masked (a copy where anything changed)."""
        return obj if self.masker is None else self.masker.mask(obj)

    def encode(self, obj: Any) -> str:
        """Compact JSON of ``obj`` (not masked itself: mask it first); never raises.

        Values json cannot encode go through :func:`jsonable` and are masked; NaN, cycles,
        keys json rejects and too-deep nesting are replaced by strings that say so.
        """
        try:
            return self._dumps(obj)
        except (ValueError, TypeError, RecursionError):
            return self._dumps(self._sanitise(obj, 0, set()))

    def _fallback(self, obj: Any) -> Any:
        return self.mask(jsonable(obj))

    def _sanitise(self, obj: Any, depth: int, seen: Set[int]) -> Any:
        if obj is None or isinstance(obj, (str, bool)):
            return obj
        if isinstance(obj, int):
            try:
                int.__repr__(obj)
            except ValueError:  # more digits than sys.get_int_max_str_digits() allows
                return f"<int of {obj.bit_length()} bits>"
            return obj
        if isinstance(obj, float):
            return obj if obj == obj and obj not in (_INF, -_INF) else repr(obj)
        if depth >= _MAX_DEPTH:
            return "<too deep>"
        if isinstance(obj, (dict, list, tuple)):
            if id(obj) in seen:
                return "<circular>"
            seen.add(id(obj))
            try:
                if isinstance(obj, dict):
                    return {
                        self._key(k): self._sanitise(v, depth + 1, seen) for k, v in obj.items()
                    }
                return [self._sanitise(v, depth + 1, seen) for v in obj]
            finally:
                seen.discard(id(obj))
        return self._sanitise(self._fallback(obj), depth + 1, seen)

    def _key(self, key: Any) -> str:
        """A dict key json rejects (a tuple ...) as a string, masked like any text."""
        if isinstance(key, str):
            return key
        return self.mask_text(safe_str(key))


def _remember(cache: Dict[str, Any], key: str, value: Any) -> None:
    if len(cache) >= _CACHE_ENTRIES:
        cache.clear()
    cache[key] = value
