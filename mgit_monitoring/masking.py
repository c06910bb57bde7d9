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

import base64
import binascii
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

# (kept prefix, body) of token shapes outside the catalogue's git hosts; published formats.
_OTHER_PROVIDERS = (
    (r"xox[abposre]-", r"[0-9A-Za-z\-]{10,250}"),  # Slack bot/user/app-level tokens
    (r"xapp-", r"[0-9A-Za-z\-]{20,250}"),  # Slack app token
    (r"https://hooks\.slack\.com/services/", r"[A-Za-z0-9+/]{20,120}"),  # Slack webhook
    (r"[sr]k_(?:live|test)_", r"[0-9A-Za-z]{20,247}"),  # Stripe secret / restricted key
    (r"AIza", r"[0-9A-Za-z_\-]{35}"),  # Google API key
    (r"npm_", r"[A-Za-z0-9]{36}"),  # npm access token
    (r"pypi-", r"AgE[A-Za-z0-9_\-]{50,}"),  # PyPI API token (macaroon)
    (r"dckr_pat_", r"[A-Za-z0-9_\-]{20,}"),  # Docker Hub personal access token
    (r"SG\.", r"[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}"),  # SendGrid
    (r"SK", r"[0-9a-fA-F]{32}"),  # Twilio API key
    (r"sk-", r"[A-Za-z0-9_\-]{32,}"),  # OpenAI (sk-, sk-proj-) and Anthropic (sk-ant-)
    (r"hf_", r"[A-Za-z0-9]{34}"),  # Hugging Face
    (r"shp(?:at|ss|ca|pa)_", r"[a-fA-F0-9]{32}"),  # Shopify
    (r"do[opr]_v1_", r"[a-f0-9]{64}"),  # DigitalOcean
    (r"glsa_", r"[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}"),  # Grafana service account
    (r"glc_", r"[A-Za-z0-9+/]{32,}={0,2}"),  # Grafana Cloud
    (r"hv[sb]\.", r"[A-Za-z0-9_\-]{24,}"),  # HashiCorp Vault
    (r"PMAK-", r"[a-f0-9]{24}-[a-f0-9]{34}"),  # Postman
    (r"key-", r"[a-f0-9]{32}"),  # Mailgun
    (r"lin_api_", r"[A-Za-z0-9]{40}"),  # Linear
    (r"NRAK-", r"[A-Z0-9]{27}"),  # New Relic user key
    (r"sntry[su]_", r"[A-Za-z0-9+/=_\-]{40,}"),  # Sentry auth tokens
)
_OTHER_PROVIDERS_RX = "|".join(f"({p}){b}(?![A-Za-z0-9_\\-])" for p, b in _OTHER_PROVIDERS)
_OTHER_GATE = re.compile(
    r"xox|xapp-|hooks\.slack|k_live_|k_test_|AIza|npm_|pypi-|dckr_|SG\.|SK|sk-|hf_|shp|_v1_|"
    r"glsa_|glc_|hv[sb]\.|PMAK-|key-|lin_api_|NRAK-|sntry"
)

# (name, regex, replacement, literal keywords, keywords are case-insensitive, strict only)
# Order matters: provider shapes first, then the context rules, which also catch tokens of
# unknown shape. Regexes are the catalogue's (shared/bench/log_mask_patterns.py) with two
# rewrites: the URL scheme is bounded to 32 characters so "a.a.a.a..." cannot go quadratic,
# and a leading ``\bLITERAL`` is written ``LITERAL(?<=\bLITERAL)`` (same matches), because a
# leading \b stops re from using its fast literal-prefix search (7 us -> 1 us a line).
_RULES: Tuple[Tuple[str, str, Any, Tuple[str, ...], bool, bool], ...] = (
    (
        "github_classic",
        r"(gh[pousr]_)[A-Za-z0-9_]{36,251}(?![A-Za-z0-9_])",
        r"\1***",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        False,
        False,
    ),
    (
        "github_fine_grained",
        r"(github_pat_)[A-Za-z0-9_]{82,251}(?![A-Za-z0-9_])",
        r"\1***",
        ("github_pat_",),
        False,
        False,
    ),
    (
        "gitlab",
        r"(gl(?:pat|dt|rt|ptt|cbt|ft|soat|imt|agent|oas|ffct)-)[A-Za-z0-9_\-]{20,}"
        r"(?:\.[0-9a-z]{2}\.[0-9a-z]{7,9}|\.[0-9a-z]{9})?" + _TAIL,
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
        r"(GR1348941)[A-Za-z0-9_\-]{20,}" + _TAIL,
        r"\1***",
        ("GR1348941",),
        False,
        False,
    ),
    (
        "azure_devops_pat_84",
        r"[A-Za-z0-9]{52}JQQJ[A-Za-z0-9]{20}AZDO[A-Za-z0-9]{4}(?![A-Za-z0-9])",
        "***ADO_PAT***",
        ("JQQJ",),
        False,
        False,
    ),
    (
        "bitbucket_app_password",
        r"(ATBB)[A-Za-z0-9_=.\-]{20,}(?![A-Za-z0-9_=.\-])",
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
        r"(A(?:KIA|SIA|BIA|CCA|3T[A-Z0-9]))[A-Z0-9]{16}(?![A-Za-z0-9])",
        r"\1***",
        ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
        False,
        False,
    ),
    (
        "jwt",
        r"eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}(?:\.[A-Za-z0-9_\-]*)?",
        "***JWT***",
        ("eyJ",),
        False,
        False,
    ),
    (
        "azure_ad_client_secret",
        r"[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}(?![A-Za-z0-9_~.\-])",
        MASK,
        ("Q~",),
        False,
        False,
    ),
    (
        # Providers outside the git hosts (Slack, Stripe, Google, npm, PyPI, Docker Hub,
        # SendGrid, Twilio, OpenAI/Anthropic, Hugging Face, Shopify, DigitalOcean, Grafana,
        # Vault, Postman, Mailgun, Linear, New Relic, Sentry): one alternation, prefix kept.
        "other_providers",
        _OTHER_PROVIDERS_RX,
        None,
        (),
        False,
        False,
    ),
    (
        # An AWS secret access key (40 base64 characters, mixed case) in a line that talks
        # about AWS, whatever key names it; a git object id is lower-case hex, never mixed.
        "aws_secret_access_key",
        r"[A-Za-z0-9+/]{40}(?![A-Za-z0-9+/=])",
        MASK,
        ("aws", "akia", "asia"),
        True,
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
        ("private key", "private-lines"),
        True,
        False,
    ),
    (
        "url_userinfo_password",
        r"(?P<pre>\b[A-Za-z][A-Za-z0-9+.\-]{0,31}://)(?P<user>[^\s/@:]*):(?![^\s/@]*\*\*\*)"
        r"(?P<pw>[^\s/?#\"']+)@(?=[^\s/@]+)",
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
        r"(?i)((?:proxy-)?authorization(?:\\?[\"'])?[ \t]*(?:[:=]|,[ \t]*)[ \t]*(?:\\?[\"'])?[ \t]*"
        r"(?:(?:basic|bearer|token|digest|negotiate|ntlm)(?:[ \t]+|%20))?)[^\s\"',;\\]+",
        r"\1***",
        ("authorization",),
        True,
        False,
    ),
    (
        # "Bearer <token>" outside a header, and "Basic <base64 of user:password>".
        "bearer_or_basic",
        r"(?i)((?:bearer|basic)(?:[ \t]+|%20))([A-Za-z0-9\-._~+/]{16,}=*)",
        None,
        ("bearer", "basic"),
        True,
        False,
    ),
    (
        # Command lines: --token X, --password=X, '--password', 'X' (a repr'd argv),
        # docker/mysql "-u user -p X", curl "-u user:password" / "--user user:password".
        "argv_secret",
        r"(--(?:[A-Za-z0-9_\-]*?[_\-])?(?:token|password|passwd|secret|pat|api-key|apikey|"
        r"access-key|creds|credentials|passphrase)(?:=|[ \t]+|[\"'],[ \t]*[\"']))(?!-)([^\s\"']+)"
        r"|((?:^|(?<=[\s\"'\[]))-u[ \t]*[^\s\-][^\s]*[ \t]+"
        r"(?:-h[ \t]*[^\s]+[ \t]+)?-p[ \t]*)([^\s\-][^\s]*)"
        r"|((?:^|(?<=[\s\"'\[]))(?:-u|--user)[ \t]*[^\s:\"'\-][^\s:\"']*:)([^\s\"']+)",
        None,
        ("--", "-u"),
        False,
        False,
    ),
    (
        # Kubernetes-style env lists: {"name": "GITLAB_TOKEN", "value": "..."}.
        "name_value_pair",
        r"([\"']name[\"'][ \t]*:[ \t]*[\"'])([A-Za-z0-9_.\-]+)"
        r"([\"'][ \t]*,[ \t]*[\"']value[\"'][ \t]*:[ \t]*[\"'])([^\"'\n]*)",
        None,
        ("value",),
        False,
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
        ("pass", "pwd", "secret", "token", "key", "credential", "creds", "auth", "pat"),
        True,
        False,
    ),
    (
        # A legacy 52-char Azure DevOps PAT has no prefix. By default a run of exactly 52
        # [a-z2-7] characters counts only when it holds a digit (a random PAT does with
        # probability 1 - 2e-5; 52 letters are a word run, kept); strict mode masks any.
        "azure_devops_pat_52_legacy",
        r"[a-z2-7]{52}(?![A-Za-z0-9])",
        MASK,
        (),
        False,
        False,
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
    "secretkey",
    "secret_key",
    "secret-key",
    "privatekey",
    "private_key",
    "private-key",
    "credential",
    "credentials",
    "passphrase",
    # These four count only as a whole word or after "_", "-", "." (DB_PASS, _auth, GIT_CREDS,
    # AZURE_DEVOPS_EXT_PAT, {"pat": ...}), so bypass=, oauth=, compat= stay.
    "pass",
    "auth",
    "creds",
    "pat",
)
_KV_WORD_START = frozenset({"pass", "auth", "creds", "pat"})
# The separator never crosses a line: an empty "GH_TOKEN=" must not swallow the next line.
_KV_SEP = re.compile(r"(?:\\?[\"'])?[ \t]*(?::=|=>|\?=|[:=])[ \t]*(\\?[\"'])?")
_KV_VALUE = re.compile(r"(?:[^\s\"'&,;\\<]|\\(?![nrtu\"'\\/]))+")
_KV_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")
# Values that are not secrets whatever the key: use_token=True, require_password=false.
_NOT_SECRET_VALUES = frozenset(
    {"true", "false", "none", "null", "nil", "yes", "no", "on", "off", "undefined"}
)
_PROSE_NEXT = re.compile(r"[ \t]+[a-z]")

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
        "pass",
        "creds",
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
    "secret_key",
    "secretkey",
    "_pass",
    "_auth",
    "creds",
)

_OVERLAP = 1024  # longer than any token shape the rules know (GitHub caps at 255)
_CUT_AFTER_BAD = frozenset(":=,'\"-")


def _safe_cut(line: str, lo: int, hi: int) -> int | None:
    """A cut position in [lo, hi) where no rule can match across (see _mask_chunked)."""
    i = hi - 1
    while i >= lo:
        c = line[i]
        if c in " \t":
            j = i
            while j > lo and line[j - 1] in " \t":
                j -= 1
            k = j
            while k > lo and line[k - 1] not in " \t":
                k -= 1
            word = line[k:j].lower().lstrip("\"'([{<`")
            if (
                word
                and word[-1] not in _CUT_AFTER_BAD
                and not word.startswith("-")
                and line[i + 1 : i + 2] not in (":", "=", "?", ">")  # "key := value"
            ) and (word not in ("basic", "bearer", "token", "digest", "negotiate", "ntlm")):
                return i + 1
            i = k - 1
            continue
        i -= 1
    for i in range(hi - 1, lo - 1, -1):
        if line[i] in ";,()[]{}<>|":
            return i + 1
    return None


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
        max_line: a line longer than this is scanned in pieces of at most this many
            characters (cut where no secret can straddle, else with an overlap), which
            bounds the cost of a pathological input and keeps a large line's text.
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
            rules.append((name, _rule_function(name, rx, repl, strict), kws, ci))
        self._rules = tuple(rules)
        self._ado52 = next(
            apply for name, apply, _k, _c in rules if name == "azure_devops_pat_52_legacy"
        )
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
        if 20 <= len(text) <= 100 and _KEY_BODY_LINE.fullmatch(text) and _mixed(text):
            return MASK  # one line of a private key logged on its own
        if not self._strict and not _maybe_secret(text):
            if len(text) < 52:
                return text
            return self._ado52(text, None)
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
            lines[i] = (
                self._mask_chunked(line) if len(line) > self.max_line else self._mask_line(line)
            )
        return "\n".join(lines)

    def _mask_chunked(self, line: str) -> str:
        """Mask a line longer than ``max_line`` in pieces of at most ``max_line``
        characters, so a large legitimate line keeps its text and the cost stays linear.

        Each cut is placed where no rule can straddle it: in the last quarter of the piece,
        at a space or tab that follows no key, separator, flag or auth scheme (``token: X``,
        ``--password X``, ``Basic X``), else at a delimiter that no token contains (``,``
        ``;`` quotes, brackets). A line without any such place (one huge token-like run) is
        cut hard at the limit; the piece after a hard cut is scanned together with the
        ``_OVERLAP`` characters before it, so a secret on the boundary is still seen whole.
        """
        out: List[str] = []
        n, size = len(line), max(self.max_line, 2 * _OVERLAP)
        pos = 0
        while pos < n:
            if n - pos <= size:
                out.append(self._mask_line(line[pos:]))
                break
            cut = _safe_cut(line, pos + size - size // 4, pos + size)
            if cut is not None:
                out.append(self._mask_line(line[pos:cut]))
                pos = cut
                continue
            # Hard cut: mask [pos, pos + size); then continue with an overlap window.
            piece = self._mask_line(line[pos : pos + size])
            out.append(piece)
            nxt = pos + size
            # The next window starts _OVERLAP characters back; only its part after the cut
            # is emitted, and only if the overlap came out unchanged (else mask it whole).
            start = nxt - _OVERLAP
            end = min(n, start + size)
            window = self._mask_line(line[start:end])
            head = line[start:nxt]
            if window.startswith(head) and piece.endswith(head):
                out.append(window[len(head) :])
            else:
                out.append(MASK)  # a secret across the hard cut: fail closed on the window
            pos = end
        return "".join(out)

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
        or "JQQJ" in text
        or "GR1348941" in text
        or "Q~" in text
        or "--" in text
        or "-u" in text
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
        "auth" in low
        or "pass" in low
        or "pwd" in low
        or "secret" in low
        or "token" in low
        or "key" in low
        or "credential" in low
        or "creds" in low
        or ("pat" in low and _pat_word(low))
        or "bearer" in low
        or "basic" in low
        or "private-lines" in low
        or "aws" in low
        or _OTHER_GATE.search(text) is not None
    )


def _pat_word(low: str) -> bool:
    """Whether "pat" occurs as a key word (AZURE_DEVOPS_EXT_PAT, {"pat": ...}), not inside
    a word such as "path" or "dispatch" (which would open the gate on every path)."""
    i = low.find("pat")
    while i != -1:
        if (i == 0 or not low[i - 1].isalpha()) and not low[i + 3 : i + 4].isalpha():
            return True
        i = low.find("pat", i + 1)
    return False


def _mask_key_values(text: str, low: str) -> str:
    """The secret_key_value rule without an (?i) scan of the whole line, in linear time.

    ``str.find`` the key words in the lower-cased text (``low``, aligned with ``text``)
    and match the separator right after them; a value that starts inside one already
    masked is skipped, and a run of value characters is measured once however many key
    words it contains (``token=token=token=...`` made the regex version quadratic: 6 s for
    64 KiB). Spans are replaced by position, never by value (GitPython's
    ``replace(password, ...)`` corrupts a URL whose host contains the password). A value
    that already contains ``***`` is left alone, so masking is idempotent.

    Not secrets: a key that is part of a path (``/etc/passwd: Permission denied``), the
    shell's ``PWD=``/``OLDPWD=``, boolean/null values, and prose after ``word: `` (a commit
    subject ``password: enforce minimum length``).
    """
    ends = {}
    for kw in _KV_WORDS:
        i = low.find(kw)
        while i != -1:
            if kw not in _KV_WORD_START or i == 0 or not low[i - 1].isalpha():
                ends[i + len(kw)] = i
            i = low.find(kw, i + 1)
    out: List[str] = []
    last = 0  # end of the last masked value
    run_start = run_end = run_star = -1  # the last unquoted value run measured
    for end in sorted(ends):
        k = ends[end]
        while k > 0 and low[k - 1] in _KV_KEY_CHARS:
            k -= 1
        if k > 0 and text[k - 1] in "/\\":
            continue  # a file name: cat: /etc/passwd: Permission denied
        if text[k:end] in ("PWD", "OLDPWD"):
            continue  # the shell's working directory
        quote = ""
        b = -1
        if k > 0 and text[k - 1] == "<" and text.startswith(">", end):
            a = end + 1  # <password>...</password>
            b = text.find("<", a)
            nl = text.find("\n", a)
            if b == -1 or (nl != -1 and nl < b) or b == a:
                continue
        else:
            sep = _KV_SEP.match(text, end)
            if sep is None:
                continue
            a = sep.end()
            quote = sep.group(1) or ""
        if a < last:
            continue
        if quote:
            # A quoted value runs to its closing quote on the same line ("a b c" is one
            # password); an escaped quote (\") does not close it, unless the value was
            # opened by one (escaped JSON inside a message: {\"token\": \"...\"}).
            b = text.find(quote, a)
            if len(quote) == 1:
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
            value = text[a:b]
            if value.lower() in _NOT_SECRET_VALUES:
                continue
            if (
                not quote
                and value.isalpha()
                and value.islower()
                and text[k:end].replace("_", "").replace("-", "").islower()
                and text[k:end].replace("_", "").replace("-", "").isalpha()
                and ":" in text[end:a]
                and "=" not in text[end:a]
                and _PROSE_NEXT.match(text, b)
            ):
                continue  # prose: "3f2a1b4 password: enforce minimum length"
        elif text[a:b].lower() in _NOT_SECRET_VALUES:
            continue
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
    for begin_rx, end_rx, keep_begin in ((_PK_BEGIN, _PK_END, False), (_PPK_BEGIN, _PPK_END, True)):
        out: List[str] = []
        pos = 0
        while True:
            begin = begin_rx.search(text, pos)
            if begin is None:
                break
            out.append(text[pos : begin.end() if keep_begin else begin.start()])
            out.append("***PRIVATE_KEY***")
            end = end_rx.search(text, begin.end())
            pos = len(text) if end is None else end.end()
        if out:
            out.append(text[pos:])
            text = "".join(out)
    return text


_PK_BEGIN = re.compile(r"(?i)-----BEGIN[ A-Z0-9_\-]{0,100}PRIVATE KEY(?: BLOCK)?-----")
_PK_END = re.compile(r"(?i)-----END[ A-Z0-9_\-]{0,100}PRIVATE KEY(?: BLOCK)?-----")
# PuTTY .ppk: the lines after "Private-Lines: N" through the "Private-MAC:" value.
_PPK_BEGIN = re.compile(r"Private-Lines:[ \t]*\d+[ \t]*\r?\n")
_PPK_END = re.compile(r"Private-(?:MAC|Hash):[ \t]*[0-9A-Fa-f]*")
# One line of a key body logged on its own (a subprocess' stderr, line by line): the DER
# or OpenSSH start of a key, or a full-width base64 line (64 PEM, 70 OpenSSH, 76 MIME).
_KEY_BODY_LINE = re.compile(
    r"[ \t]*(?:MII[A-Za-z0-9+/]{20,}={0,2}|b3BlbnNzaC1rZXktdjE[A-Za-z0-9+/]*={0,2}"
    r"|[A-Za-z0-9+/]{64}|[A-Za-z0-9+/]{70}|[A-Za-z0-9+/]{76})[ \t\r]*"
)


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
            m = rule.match(text, i) if _start_ok(text, i) else None
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
        r"eyJ",
        r"eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}(?:\.[A-Za-z0-9_\-]*)?",
        r"[A-Za-z0-9_\-]*",
    ),
    "atlassian_api_token": (
        r"AT[AC]TT3",
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


_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_HEXCH = frozenset("0123456789abcdefABCDEF")


def _start_ok(text: str, i: int) -> bool:
    """Whether a token may start at ``text[i]``: at a word boundary, or right after a
    URL-encoded byte (``%3Dghp_``, ``Bearer%20eyJ``) or a backslash escape in escaped text
    (``\\nghp_``, ``\\u0022ghp_``, ``\\x3dghp_``) - the escape glues it to a letter."""
    if i == 0 or text[i - 1] not in _WORD:
        return True
    if i >= 3 and text[i - 3] == "%" and text[i - 2] in _HEXCH and text[i - 1] in _HEXCH:
        return True
    if i >= 2 and text[i - 2] == "\\" and text[i - 1] in "nrtbf":
        return True
    if i >= 6 and text[i - 6 : i - 4] == "\\u" and all(c in _HEXCH for c in text[i - 4 : i]):
        return True
    return i >= 4 and text[i - 4 : i - 2] == "\\x" and all(c in _HEXCH for c in text[i - 2 : i])


def _mixed(value: str) -> bool:
    """Upper case, lower case and a digit: a random token, not a word or a hex id."""
    return (
        any(c.isupper() for c in value)
        and any(c.islower() for c in value)
        and any(c.isdigit() for c in value)
    )


def _basic_credentials(value: str) -> bool:
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (ValueError, binascii.Error):
        return False
    return b":" in raw


def _boundary_sub(rx: Pattern[str], repl: Callable[[Any], str]) -> Callable[[str], str]:
    def fn(m: Any) -> str:
        if not _start_ok(m.string, m.start()):
            return str(m.group(0))
        return repl(m)

    return lambda text: rx.sub(fn, text)


def _argv_repl(m: Any) -> str:
    for g in (1, 3, 5):
        if m.group(g) is not None:
            value = m.group(g + 1)
            if "***" in value or value.lower() in _NOT_SECRET_VALUES:
                return str(m.group(0))
            return str(m.group(g)) + MASK
    return str(m.group(0))  # pragma: no cover - one alternative always matched


def _name_value_repl(m: Any) -> str:
    norm = m.group(2).lower().replace("-", "_")
    if (
        m.group(4)
        and "***" not in m.group(4)
        and (norm in _SENSITIVE_KEYS or norm.endswith(_SENSITIVE_SUFFIXES))
    ):
        return f"{m.group(1)}{m.group(2)}{m.group(3)}{MASK}"
    return str(m.group(0))


def _bearer_repl(m: Any) -> str:
    value = m.group(2)
    if m.group(1)[:1] in "bB" and m.group(1)[1:2] in "eE":  # bearer: a token, not a word
        ok = any(c.isdigit() for c in value) or len(value) >= 24
    else:
        ok = _basic_credentials(value)
    return f"{m.group(1)}{MASK}" if ok else str(m.group(0))


def _rule_function(
    name: str, rx: str, repl: Any, strict: bool = False
) -> Callable[[str, Any], str]:
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
    if name == "other_providers":
        other = _boundary_sub(compiled, lambda m: m.group(m.lastindex) + MASK)
        return lambda text, _low: other(text) if _OTHER_GATE.search(text) else text
    if name == "aws_secret_access_key":
        fn = _boundary_sub(compiled, lambda m: MASK if _mixed(m.group(0)) else m.group(0))
        return lambda text, _low: fn(text)
    if name == "azure_devops_pat_52_legacy":
        fn = _boundary_sub(
            compiled,
            lambda m: MASK if strict or any(c.isdigit() for c in m.group(0)) else m.group(0),
        )
        return lambda text, _low: fn(text) if len(text) >= 52 else text
    if name == "argv_secret":
        return lambda text, _low: compiled.sub(_argv_repl, text)
    if name == "name_value_pair":
        return lambda text, _low: compiled.sub(_name_value_repl, text)
    if name == "bearer_or_basic":
        fn = _boundary_sub(compiled, _bearer_repl)
        return lambda text, _low: fn(text)
    if name.startswith("url_"):
        return lambda text, _low: compiled.sub(repl, text)
    fn = _boundary_sub(compiled, lambda m: m.expand(repl))
    return lambda text, _low: fn(text)


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
