"""Credential masking for log lines, metric labels, trace metadata and HTTP error bodies.

Two layers, as a security reviewer expects (see shared/docs/secrets-catalogue.md):

* key-based: in dicts, the value of a key named like a secret (``password``, ``token``,
  ``client_secret``, ``authorization``, ``api_key``, ``private_key`` ...) is replaced whole;
* pattern-based: free text is scrubbed of provider token shapes (GitHub, GitLab, Azure
  DevOps, Bitbucket/Atlassian, AWS, JWTs, private-key blocks) and of secrets in context
  (URL userinfo, ``Authorization:`` headers, ``token=``/``password=`` pairs).

URLs stay readable (``https://***@github.com/org/repo.git``); public token prefixes are kept
(``ghp_***``) so a reader knows what leaked; git object ids (40/64 hex), UUIDs and words
such as "token" are never masked. Every pattern runs only when one of its literal keywords
occurs in the text, so a clean line costs a few substring tests, not a dozen regexes.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Pattern, Set, Tuple

__all__ = [
    "MASK",
    "CredentialMasker",
    "default_masker",
    "is_sensitive_key",
    "mask_credentials",
    "mask_structure",
]

MASK = "***"
"""What a secret is replaced with."""

_TAIL = r"(?![A-Za-z0-9_\-])"

# (name, regex, replacement, literal keywords, keywords are case-insensitive, strict only)
# Order matters: provider shapes first, then the context rules, which also catch tokens of
# unknown shape. Regexes are the catalogue's (shared/bench/log_mask_patterns.py) with two
# rewrites: the URL scheme is bounded to 32 characters so "a.a.a.a..." cannot go quadratic,
# and a leading ``\bLITERAL`` is written ``LITERAL(?<=\bLITERAL)`` (same matches), because a
# leading \b stops re from using its fast literal-prefix search (7 us -> 1 us a line).
_RULES: Tuple[Tuple[str, str, Any, Tuple[str, ...], bool, bool], ...] = (
    (
        "github_classic",
        r"(gh[pousr]_)(?<=\bgh[pousr]_)[A-Za-z0-9_]{36,251}(?![A-Za-z0-9_])",
        r"\1***",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        False,
        False,
    ),
    (
        "github_fine_grained",
        r"(github_pat_)(?<=\bgithub_pat_)[A-Za-z0-9_]{82,251}(?![A-Za-z0-9_])",
        r"\1***",
        ("github_pat_",),
        False,
        False,
    ),
    (
        "gitlab",
        r"(gl(?<=\bgl)(?:pat|dt|rt|ptt|cbt|ft|soat|imt|agent|oas|ffct)-)[A-Za-z0-9_\-]{20,}"
        r"(?:\.[0-9a-z]{9})?" + _TAIL,
        r"\1***",
        (
            "glpat-",
            "gldt-",
            "glrt-",
            "glptt-",
            "glcbt-",
            "glft-",
            "glsoat-",
            "glimt-",
            "glagent-",
            "gloas-",
            "glffct-",
        ),
        False,
        False,
    ),
    (
        "gitlab_runner_registration",
        r"(GR1348941)(?<=\bGR1348941)[A-Za-z0-9_\-]{20,}" + _TAIL,
        r"\1***",
        ("GR1348941",),
        False,
        False,
    ),
    (
        "azure_devops_pat_84",
        r"\b[A-Za-z0-9]{52}JQQJ[A-Za-z0-9]{20}AZDO[A-Za-z0-9]{4}\b",
        "***ADO_PAT***",
        ("JQQJ",),
        False,
        False,
    ),
    (
        "bitbucket_app_password",
        r"(ATBB)(?<=\bATBB)[A-Za-z0-9_=.\-]{32,}(?![A-Za-z0-9_=.\-])",
        r"\1***",
        ("ATBB",),
        False,
        False,
    ),
    (
        "atlassian_api_token",
        r"(AT[AC]TT3)(?<=\bAT[AC]TT3)[A-Za-z0-9_\-]+=[A-F0-9]{8}\b",
        r"\1***",
        ("ATATT3", "ATCTT3"),
        False,
        False,
    ),
    (
        "aws_access_key_id",
        r"(A(?<=\bA)(?:KIA|SIA|BIA|CCA|3T[A-Z0-9]))[A-Z0-9]{16}\b",
        r"\1***",
        ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
        False,
        False,
    ),
    (
        "jwt",
        r"eyJ(?<=\beyJ)[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
        "***JWT***",
        ("eyJ",),
        False,
        False,
    ),
    (
        # Applied by _mask_private_keys: BEGIN ... first END, and a key without an END
        # line (truncated text) is masked to the end of the text (fail closed). The regex
        # documents the rule; run as a regex it is quadratic in the number of BEGIN lines.
        "private_key",
        r"-----BEGIN[ A-Z0-9_\-]{0,100}PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?"
        r"-----END[ A-Z0-9_\-]{0,100}PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)",
        "***PRIVATE_KEY***",
        ("PRIVATE KEY",),
        False,
        False,
    ),
    (
        "url_userinfo_password",
        r"(?P<pre>\b[A-Za-z][A-Za-z0-9+.\-]{0,31}://)(?P<user>[^\s/@:]*):(?![^\s/@]*\*\*\*)"
        r"(?P<pw>[^\s/]+)@(?=[^\s/@]+)",
        r"\g<pre>\g<user>:***@",
        ("://",),
        False,
        False,
    ),
    (
        "url_userinfo_token_only",
        r"(?P<pre>\bhttps?://)(?=[^\s/@:]*\d)(?=[^\s/@:]*[A-Za-z])[A-Za-z0-9_\-.~]{20,}@",
        r"\g<pre>***@",
        ("://",),
        False,
        False,
    ),
    (
        "authorization_header",
        r"(?i)\b((?:proxy-)?authorization\s*[:=]\s*"
        r"(?:(?:basic|bearer|token|digest|negotiate|ntlm)\s+)?)[^\s\"',;]+",
        r"\1***",
        ("authorization",),
        True,
        False,
    ),
    (
        # Applied by _mask_key_values (str.find-anchored, linear); the regex documents the
        # rule, except that a quoted value runs to its closing quote (spaces included) and
        # keys ending in _pat/-pat (AZURE_DEVOPS_EXT_PAT=) count too.
        "secret_key_value",
        r"(?i)(?P<key>\b[A-Za-z0-9_.\-]*(?:password|passwd|pwd|secret|token|api[_\-]?key|"
        r"access[_\-]?key|private[_\-]?key|credentials?|passphrase|[_\-]pat))(?P<sep>[\"']?\s*[:=]\s*[\"']?)"
        r"(?![^\s\"'&,;]*\*\*\*)(?P<val>[^\s\"'&,;]+)",
        r"\g<key>\g<sep>***",
        ("pass", "pwd", "secret", "token", "key", "credential", "_pat", "-pat"),
        True,
        False,
    ),
    (
        # A legacy 52-char Azure DevOps PAT has no prefix: a bare rule would hit long
        # lowercase words, so it runs only in strict mode; contexts catch the real uses.
        "azure_devops_pat_52_legacy",
        r"(?<![A-Za-z0-9])[a-z2-7]{52}(?![A-Za-z0-9])",
        MASK,
        (),
        False,
        True,
    ),
)

# Words that end a secret-bearing key in free text ("GIT_PASSWORD=", "?access_token=",
# '"client_secret": "'). The key must END with one, so token_count= or password_file= stay.
_KV_WORDS = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "accesskey",
    "access_key",
    "access-key",
    "privatekey",
    "private_key",
    "private-key",
    "credential",
    "credentials",
    "passphrase",
    "_pat",  # AZURE_DEVOPS_EXT_PAT=, SYSTEM_PAT: (an env dump, catalogue 2.1)
    "-pat",
)
_KV_SEP = re.compile(r"[\"']?\s*[:=]\s*([\"']?)")
_KV_VALUE = re.compile(r"[^\s\"'&,;]+")

# Structured keys whose value is replaced whole (Sentry's DEFAULT_DENYLIST plus the git
# providers'); compared after lower-casing and mapping "-" to "_".
_SENSITIVE_KEYS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "secret",
        "api_key",
        "apikey",
        "auth",
        "credentials",
        "mysql_pwd",
        "privatekey",
        "private_key",
        "token",
        "session",
        "csrftoken",
        "sessionid",
        "x_csrftoken",
        "set_cookie",
        "cookie",
        "authorization",
        "proxy_authorization",
        "x_api_key",
        "pat",
        "access_token",
        "refresh_token",
        "client_secret",
        "github_token",
        "azure_devops_pat",
        "bitbucket_app_password",
        "extraheader",
        "http.extraheader",
        "passphrase",
    }
)
# ... and any key ENDING with one of these (ghp_token, git_password, aws_secret_access_key
# is caught by "access_key"); token_count, max_tokens and secret_name are not.
_SENSITIVE_SUFFIXES = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "accesskey",
    "private_key",
    "privatekey",
    "credential",
    "credentials",
    "authorization",
    "_pat",
    "passphrase",
)

_MAX_DEPTH = 32
_CIRCULAR = "<circular>"
_SCALARS = frozenset({int, float, complex})
_KEY_CACHE_MAX = 2048
_CACHE_MAX_LEN = 512


def _unscanned(length: int) -> str:
    return f"***[{length} characters not scanned]***"


class CredentialMasker:
    """Masks secrets in text (:meth:`mask_text`) and in nested structures (:meth:`mask`).

    Args:
        strict: also mask bare 52-character legacy Azure DevOps PATs (may hit long
            lowercase words, hence off by default).
        sensitive_keys: extra structured key names whose values are always masked.
        max_line: a line longer than this is not scanned but replaced (fail closed), which
            bounds the cost of a pathological input.
        cache_size: how many clean strings (up to 512 characters) to remember as clean;
            0 disables the cache. Secrets are never cached.
    """

    def __init__(
        self,
        strict: bool = False,
        sensitive_keys: Iterable[str] = (),
        max_line: int = 65536,
        cache_size: int = 2048,
    ) -> None:
        self._strict = bool(strict)
        self.max_line = max_line
        self.cache_size = cache_size
        self._sensitive: FrozenSet[str] = _SENSITIVE_KEYS | {
            k.lower().replace("-", "_") for k in sensitive_keys
        }
        # (name, apply(text, aligned lower-case text or None) -> text, keywords, ci)
        rules: List[Tuple[str, Callable[[str, Any], str], Tuple[str, ...], bool]] = []
        for name, rx, repl, kws, ci, strict_only in _RULES:
            if strict_only and not strict:
                continue
            rules.append((name, _rule_function(name, rx, repl), kws, ci))
        self._rules = tuple(rules)
        # Strings seen to be clean (nothing to mask): log messages and field values repeat,
        # so most lines are answered by one hash lookup. Only clean strings are kept, never
        # secrets; bounded in count and length.
        self._clean: Dict[str, bool] = {}
        self._key_cache: Dict[str, bool] = {}

    # -- text ---------------------------------------------------------------------------

    def mask_text(self, text: str) -> str:
        """Return ``text`` with every recognised secret replaced; unchanged when clean."""
        if text in self._clean:
            return text
        if len(text) > self.max_line:
            return self._mask_long(text)
        out = self._mask_line(text)
        if out is text and len(text) <= _CACHE_MAX_LEN and self.cache_size > 0:
            if len(self._clean) >= self.cache_size:
                self._clean.clear()
            self._clean[text] = True
        return out

    def cached_strings(self) -> FrozenSet[str]:
        """The strings the masker remembers now: clean texts and key names (a copy).

        For tests and memory checks: a secret is never among them, nor a string longer
        than 512 characters.
        """
        return frozenset(self._clean) | frozenset(self._key_cache)

    @property
    def strict(self) -> bool:
        """Whether bare legacy Azure DevOps PATs are masked (fixed at construction, so the
        clean-string cache never answers for a different rule set)."""
        return self._strict

    def _mask_line(self, text: str) -> str:
        if not self._strict and not _maybe_secret(text):
            return text
        low: str | None = None
        for name, apply, kws, ci in self._rules:
            if name.startswith("url_") and "@" not in text:
                continue
            if kws:
                if ci:
                    if low is None:
                        low = _aligned_lower(text)
                    hay = low
                else:
                    hay = text
                for kw in kws:
                    if kw in hay:
                        break
                else:
                    continue
            new = apply(text, low)
            if new != text:
                text, low = new, None
        return text

    def _mask_long(self, text: str) -> str:
        # Private-key blocks span lines: mask them in the whole text (linear), then scan
        # line by line; a single oversized line is replaced, never printed.
        if "PRIVATE KEY" in text:
            text = _mask_private_keys(text)
        lines = text.split("\n")
        for i, line in enumerate(lines):
            lines[i] = _unscanned(len(line)) if len(line) > self.max_line else self._mask_line(line)
        return "\n".join(lines)

    # -- structures ---------------------------------------------------------------------

    def is_sensitive_key(self, key: Any) -> bool:
        """True when a structured field named ``key`` holds a secret by its name alone."""
        if not isinstance(key, str):
            return False
        cached = self._key_cache.get(key)
        if cached is not None:
            return cached
        norm = key.lower().replace("-", "_")
        result = norm in self._sensitive or norm.endswith(_SENSITIVE_SUFFIXES)
        if len(key) <= _CACHE_MAX_LEN:  # a huge key (a URL or a body as a key) is not kept
            if len(self._key_cache) >= _KEY_CACHE_MAX:
                self._key_cache.clear()
            self._key_cache[key] = result
        return result

    def mask(self, obj: Any, _depth: int = 0, _path: Set[int] | None = None) -> Any:
        """Return ``obj`` with secrets masked: strings by pattern, dict values by key too.

        Containers are copied only when something inside changes, so the caller's dicts
        and lists are never modified. Non-container, non-string values are returned as
        they are (a JSON encoder's fallback should pass its ``str()`` through
        :meth:`mask_text`). A container that contains itself is replaced by
        ``"<circular>"`` at the repeat; nesting deeper than 32 levels is masked whole.
        """
        if type(obj) is str:
            return self.mask_text(obj)
        if isinstance(obj, (dict, list, tuple)):
            if _depth >= _MAX_DEPTH:
                return MASK
            if _path is None:
                _path = set()
            elif id(obj) in _path:
                return _CIRCULAR
            _path.add(id(obj))
            try:
                if isinstance(obj, dict):
                    return self._mask_dict(obj, _depth, _path)
                items = [self.mask(v, _depth + 1, _path) for v in obj]
            finally:
                _path.discard(id(obj))
            if all(a is b for a, b in zip(items, obj)):
                return obj
            return items if isinstance(obj, list) else tuple(items)
        if isinstance(obj, (set, frozenset)):
            try:
                items = sorted(obj)  # a stable order for the reader
            except TypeError:
                items = list(obj)
            return self.mask(items, _depth, _path)
        if isinstance(obj, str):  # a str subclass
            return self.mask_text(str(obj))
        return obj

    def _mask_dict(self, obj: Dict[Any, Any], depth: int, path: Set[int]) -> Any:
        out: Dict[Any, Any] | None = None
        clean = self._clean
        new_value: Any
        for key, value in obj.items():
            if value is None or value is True or value is False:
                new_value = value  # cannot hold a secret, even under a secret-named key
            elif self.is_sensitive_key(key):
                new_value = MASK
            elif type(value) is str:
                new_value = value if value in clean else self.mask_text(value)
            elif type(value) in _SCALARS:
                new_value = value
            else:
                new_value = self.mask(value, depth + 1, path)
            new_key = key
            if type(key) is str and key not in clean:
                new_key = self.mask_text(key)
            if new_value is not value or new_key is not key:
                if out is None:
                    out = {}
                    for k2, v2 in obj.items():
                        if k2 is key:
                            break
                        out[k2] = v2
                out[new_key] = new_value
            elif out is not None:
                out[key] = value
        return obj if out is None else out

    __call__ = mask


def _maybe_secret(text: str) -> bool:
    """Cheap gate in front of the rules: False means no rule can match ``text``.

    A handful of substring tests (each a C-level scan) instead of ~35 keyword tests; the
    gates are implied by the rules' keywords (e.g. every classic GitHub token contains "gh"
    and "_", every URL rule needs "://" and "@"). The property test in tests/test_masking.py
    checks every kind gets through.
    """
    if (
        ("gh" in text and "_" in text)
        or "github_pat_" in text
        or ("gl" in text and "-" in text)
        or ("://" in text and "@" in text)
        or "eyJ" in text
        or "PRIVATE KEY" in text
        or "JQQJ" in text
        or "GR1348941" in text
    ):
        return True
    if "A" in text and (
        "AKIA" in text
        or "ASIA" in text
        or "ABIA" in text
        or "ACCA" in text
        or "A3T" in text
        or "ATBB" in text
        or "ATATT3" in text
        or "ATCTT3" in text
    ):
        return True
    low = text.lower()
    return (
        "authorization" in low
        or "pass" in low
        or "pwd" in low
        or "secret" in low
        or "token" in low
        or "key" in low
        or "credential" in low
        or ("pat" in low and ("_pat" in low or "-pat" in low))
    )


def _mask_key_values(text: str, low: str) -> str:
    """The secret_key_value rule without an (?i) scan of the whole line, in linear time.

    ``str.find`` the key words in the lower-cased text (``low``, aligned with ``text``)
    and match the separator right after them; a value that starts inside one already
    masked is skipped, and a run of value characters is measured once however many key
    words it contains (``token=token=token=...`` made the regex version quadratic: 6 s for
    64 KiB). Spans are replaced by position, never by value (GitPython's
    ``replace(password, ...)`` corrupts a URL whose host contains the password). A value
    that already contains ``***`` is left alone, so masking is idempotent.
    """
    ends = set()
    for kw in _KV_WORDS:
        i = low.find(kw)
        while i != -1:
            ends.add(i + len(kw))
            i = low.find(kw, i + 1)
    out: List[str] = []
    last = 0  # end of the last masked value
    run_start = run_end = run_star = -1  # the last unquoted value run measured
    for end in sorted(ends):
        sep = _KV_SEP.match(text, end)
        if sep is None:
            continue
        a = sep.end()
        if a < last:
            continue
        quote = sep.group(1)
        b = -1
        if quote:
            # A quoted value runs to its closing quote on the same line ("a b c" is one
            # password); an escaped quote (\") does not close it.
            b = text.find(quote, a)
            while b > a and text[b - 1] == "\\":
                b = text.find(quote, b + 1)
            if b != -1 and (b == a or "\n" in text[a:b]):
                b = -1
            if b != -1 and "***" in text[a:b]:
                continue
        if b == -1:
            if not run_start <= a < run_end:
                m = _KV_VALUE.match(text, a)
                if m is None:
                    continue
                run_start, run_end = a, m.end()
                run_star = text.rfind("***", a, run_end)
            if run_star >= a:  # already masked
                continue
            b = run_end
        out.append(text[last:a])
        out.append(MASK)
        last = b
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _mask_private_keys(text: str) -> str:
    """Mask private-key blocks (BEGIN to the first END) and, fail closed, a block whose
    END is missing (truncated text) to the end of the text; linear in the text length."""
    out: List[str] = []
    pos = 0
    while True:
        begin = _PK_BEGIN.search(text, pos)
        if begin is None:
            break
        out.append(text[pos : begin.start()])
        out.append("***PRIVATE_KEY***")
        end = _PK_END.search(text, begin.end())
        pos = len(text) if end is None else end.end()
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


_PK_BEGIN = re.compile(r"-----BEGIN[ A-Z0-9_\-]{0,100}PRIVATE KEY(?: BLOCK)?-----")
_PK_END = re.compile(r"-----END[ A-Z0-9_\-]{0,100}PRIVATE KEY(?: BLOCK)?-----")


def _run_skipping_sub(
    start: Pattern[str], rule: Pattern[str], run: Pattern[str], repl: str
) -> Callable[[str], str]:
    """``rule.sub(repl, text)`` for a rule that begins with a run of ``run`` characters
    ended by a delimiter outside the run (a JWT's first ``.``, an Atlassian token's ``=``).

    ``re`` retries such a rule at every start inside a run it has just failed on, each
    attempt scanning to the end of the run: ``eyJ-eyJ-eyJ-...`` took 1.5 s for 64 KiB.
    Every start inside that run fails for the same reason, so they are skipped.
    """

    def sub(text: str) -> str:
        out: List[str] = []
        pos = last = 0
        while True:
            s = start.search(text, pos)
            if s is None:
                break
            i = s.start()
            m = rule.match(text, i)
            if m is None:
                pos = max(run.match(text, i).end(), i + 1)  # type: ignore[union-attr]
                continue
            out.append(text[last:i])
            out.append(m.expand(repl))
            last = pos = m.end()
        if not out:
            return text
        out.append(text[last:])
        return "".join(out)

    return sub


_RUN_RULES = {
    # name: (where a match may start, the rule anchored there, the run it begins with)
    "jwt": (
        r"eyJ(?<=\beyJ)",
        r"eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
        r"[A-Za-z0-9_\-]*",
    ),
    "atlassian_api_token": (
        r"AT[AC]TT3(?<=\bAT[AC]TT3)",
        r"(AT[AC]TT3)[A-Za-z0-9_\-]+=[A-F0-9]{8}\b",
        r"[A-Za-z0-9_\-]*",
    ),
}


def _aligned_lower(text: str) -> str:
    """``text.lower()`` with one character per character of ``text``.

    A few characters lower-case to two ("İ" -> "i̇"), which would shift every offset
    found in the lower-cased text and let ``İ password=hunter2`` through unmasked.
    """
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join([c.lower()[:1] for c in text])


def _rule_function(name: str, rx: str, repl: Any) -> Callable[[str, Any], str]:
    """How rule ``name`` is applied: ``apply(text, low)`` (``low``: the aligned
    lower-cased text when already computed, else None). Every rule runs in linear time."""
    if name == "secret_key_value":
        return lambda text, low: _mask_key_values(
            text, low if low is not None else _aligned_lower(text)
        )
    if name == "private_key":
        return lambda text, _low: _mask_private_keys(text)
    if name in _RUN_RULES:
        start, rule, run = _RUN_RULES[name]
        sub = _run_skipping_sub(re.compile(start), re.compile(rule), re.compile(run), repl)
        return lambda text, _low: sub(text)
    compiled = re.compile(rx)
    return lambda text, _low: compiled.sub(repl, text)


_DEFAULT = CredentialMasker()


def default_masker() -> CredentialMasker:
    """The shared default masker: the one behind :func:`mask_credentials`,
    :func:`mask_structure` and the log formatter, so they share one clean-string cache."""
    return _DEFAULT


mask_credentials: Callable[[str], str] = _DEFAULT.mask_text
"""``mask_credentials(text) -> str``: the default masker applied to one string."""

mask_structure: Callable[[Any], Any] = _DEFAULT.mask
"""``mask_structure(obj)``: the default masker applied to dicts/lists/strings (copy on change)."""

is_sensitive_key: Callable[[Any], bool] = _DEFAULT.is_sensitive_key
"""``is_sensitive_key(name) -> bool``: whether a field of that name is masked whole."""
