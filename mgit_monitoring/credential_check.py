"""The credential check: which providers have credentials configured, optionally whether they work.

Registered non-critical with a long ttl by
:func:`mgit_monitoring.default_checks.register_default_checks`. Only variable names, provider
and entry names, states and HTTP statuses are reported, never a secret; see
:class:`AuthenticationCheck`.
"""

from __future__ import annotations

import base64
import os
import stat
import time
import urllib.parse
from typing import Any, Dict, List, Mapping, NamedTuple, Sequence, Set, Tuple, Union

from mgit_monitoring.check_support import (
    Endpoint,
    as_endpoint,
    elapsed_ms,
    is_json,
    open_url,
    provider_kind,
    run_parallel,
    safe_url,
    url_opener,
)
from mgit_monitoring.health_report import DEGRADED, HEALTHY, UNHEALTHY, HealthCheckResult
from mgit_monitoring.masking import mask_credentials

__all__ = [
    "DEFAULT_CREDENTIAL_API_URLS",
    "DEFAULT_CREDENTIAL_ENV",
    "INVALID",
    "NOT_CONFIGURED",
    "SKIPPED",
    "UNREACHABLE",
    "VALID",
    "AuthenticationCheck",
    "ConfiguredProvider",
    "configured_providers",
    "credential_api_urls",
    "default_mgit_config_path",
]

DEFAULT_CREDENTIAL_API_URLS: Mapping[str, str] = {
    "github": "https://api.github.com",
    "bitbucket": "https://api.bitbucket.org",
}
"""API base URLs credential validation uses when nothing more specific is configured.

Azure DevOps has none: its check needs the organisation URL (mgit's config, the provider
endpoint configuration or ``AZURE_DEVOPS_ORG_URL``).
"""

DEFAULT_CREDENTIAL_ENV: Mapping[str, Tuple[str, ...]] = {
    "github": ("GITHUB_TOKEN", "GH_TOKEN", "GITHUB_PAT", "github_token"),
    "azure_devops": (
        "AZURE_DEVOPS_EXT_PAT",
        "AZURE_DEVOPS_PAT",
        "AZURE_DEVOPS_TOKEN",
        "azure_devops_token",
    ),
    "bitbucket": ("BITBUCKET_APP_PASSWORD", "BITBUCKET_TOKEN", "bitbucket_token"),
}
"""Environment variable *names* carrying each provider's credential (values never read out)."""

_SECRET_KEYS = frozenset(("token", "pat", "app_password", "password", "api_token"))
_USER_KEYS = frozenset(("user", "username", "default_username"))
_AZURE_ORG_ENV = ("AZURE_DEVOPS_ORG_URL", "SYSTEM_COLLECTIONURI")  # mgit's; Azure Pipelines'
_BITBUCKET_USER_ENV = ("BITBUCKET_USERNAME", "BITBUCKET_USER")


# --------------------------------------------------------------------------- authentication


def default_mgit_config_path(environ: Mapping[str, str]) -> str:
    """mgit's config file: ``$MGIT_CONFIG_PATH`` or ``~/.config/mgit/config.yaml``."""
    explicit = environ.get("MGIT_CONFIG_PATH")
    if explicit:
        return explicit
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".config", "mgit", "config.yaml")


def _scalar(text: str) -> str:
    text = text.split(" #", 1)[0].strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return "" if text in ("~", "null", "''", '""') else text


class _Credential:
    """One credential to validate. Its repr hides the secret, should it ever be logged."""

    __slots__ = ("source", "secret", "user", "url")

    def __init__(self, source: str, secret: str, user: str = "", url: str = "") -> None:
        self.source = source  # "env:NAME" or "config:entry": safe to report
        self.secret = secret
        self.user = user
        self.url = url  # the entry's own URL (config file), "" otherwise

    def __repr__(self) -> str:
        return f"_Credential(source={self.source!r}, secret=<hidden>)"


def _read_mgit_providers(path: str, keep_secrets: bool = False) -> List[Dict[str, Any]]:
    """Provider entries of mgit's config.yaml: name, type hints and whether a secret is set.

    A minimal reader for the block-style mapping mgit writes (``providers: {name: {url,
    user, token}}``). Secret values are tested for emptiness and dropped on the spot, unless
    ``keep_secrets`` (credential validation), when the first one is kept in the entry's
    ``_credential`` (a :class:`_Credential`, whose repr hides it).
    """
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = handle.read().splitlines()
    providers: List[Dict[str, Any]] = []
    in_section = False
    child_indent = None
    current: Dict[str, Any] | None = None
    for raw in lines:
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        key, _, value = raw.strip().partition(":")
        key = _scalar(key)
        if indent == 0:
            in_section = key == "providers"
            child_indent, current = None, None
            continue
        if not in_section:
            continue
        if child_indent is None:
            child_indent = indent
        if indent == child_indent:
            current = {"name": key, "keys": set(), "hints": [], "credential": False, "user": ""}
            providers.append(current)
        elif current is not None and indent > child_indent:
            value = _scalar(value)
            low = key.lower()
            current["keys"].add(low)
            if low in _SECRET_KEYS:
                current["credential"] = current["credential"] or bool(value)
                if keep_secrets and value and "_secret" not in current:
                    current["_secret"] = value
            elif low in ("url", "org_url", "default_org_url", "workspace"):
                current["hints"].append(value)
            elif low in ("type", "provider", "kind") and value:
                current["type"] = value
            elif low in _USER_KEYS and value and not current["user"]:
                current["user"] = value
    for entry in providers:
        secret = entry.pop("_secret", "")
        if secret:
            urls = [h for h in entry["hints"] if h.lower().startswith(("http://", "https://"))]
            entry["_credential"] = _Credential(
                f"config:{entry['name']}", secret, entry["user"], urls[0] if urls else ""
            )
    return providers


_TYPE_NAMES = {
    "github": "github",
    "github_enterprise": "github",
    "ghe": "github",
    "azuredevops": "azure_devops",
    "azure_devops": "azure_devops",
    "azure-devops": "azure_devops",
    "ado": "azure_devops",
    "bitbucket": "bitbucket",
    "bitbucket_server": "bitbucket",
}


def _provider_type(entry: Mapping[str, Any]) -> str:
    declared = _TYPE_NAMES.get(str(entry.get("type", "")).lower())
    if declared:
        return declared
    for hint in entry["hints"]:
        kind = provider_kind(hint)
        if kind != "generic":
            return kind
    for hint in entry["hints"]:  # Azure DevOps Server (TFS) collection URLs
        path = urllib.parse.urlsplit(hint).path.lower()
        if path.startswith("/tfs") or "defaultcollection" in path:
            return "azure_devops"
    keys = entry["keys"]
    if ("org_url" in keys or "default_org_url" in keys) and "pat" in keys:
        return "azure_devops"
    if "app_password" in keys:
        return "bitbucket"
    if "token" in keys:
        return "github"
    kind = provider_kind(entry["name"])
    if kind == "generic" and any(w in entry["name"].lower() for w in ("ado", "azure", "devops")):
        kind = "azure_devops"
    return kind if kind != "generic" else "other"


class ConfiguredProvider(NamedTuple):
    """One provider entry of mgit's config: its name, its kind and its URL ("" if none).

    ``kind`` is github, azure_devops, bitbucket or other (see the entry's ``url``,
    ``org_url``/``default_org_url``, its keys and its name, as mgit itself guesses).
    """

    name: str
    kind: str
    url: str


def configured_providers(path: str | None) -> List[ConfiguredProvider]:
    """The providers mgit's config file at ``path`` names; [] when there is none to read.

    Secrets are not kept. A file that is missing or unreadable names no provider: the
    credential check reports an unreadable one.
    """
    if not path or not os.path.isfile(path):
        return []
    try:
        entries = _read_mgit_providers(path)
    except OSError:
        return []
    found = []
    for entry in entries:
        urls = [h for h in entry["hints"] if h.lower().startswith(("http://", "https://"))]
        found.append(
            ConfiguredProvider(entry["name"], _provider_type(entry), urls[0] if urls else "")
        )
    return found


def _base_url(url: str, suffixes: Sequence[str] = ()) -> str:
    """``url`` without userinfo, query, trailing slash and the first matching ``suffixes``."""
    parts = urllib.parse.urlsplit(url.strip())
    path = parts.path.rstrip("/")
    for suffix in suffixes:
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, "", ""))


def credential_api_urls(
    endpoints: Sequence[Union[Endpoint, str, Tuple[str, str]]],
) -> Dict[str, str]:
    """The credential-validation base URLs implied by provider endpoint configuration.

    GitHub: the endpoint URL without a trailing ``/rate_limit`` or ``/meta`` (so
    ``https://ghe.example/api/v3/rate_limit`` gives ``https://ghe.example/api/v3``).
    Bitbucket: without a trailing ``/2.0/user`` or ``/2.0`` (Bitbucket Server's
    ``/rest/api/...`` endpoints give none). Azure DevOps: the URL up to
    ``/_apis`` (an organisation or collection URL), except the public status API, which
    names no organisation. The first endpoint of each kind wins; other kinds are ignored.
    """
    urls: Dict[str, str] = {}
    for value in endpoints:
        endpoint = as_endpoint(value)
        parts = urllib.parse.urlsplit(endpoint.url)
        if endpoint.kind == "github":
            urls.setdefault("github", _base_url(endpoint.url, ("/rate_limit", "/meta")))
        elif endpoint.kind == "bitbucket" and "/rest/api/" not in parts.path:
            # Bitbucket Server's REST API (/rest/api/1.0) has no /2.0/user to validate with.
            urls.setdefault("bitbucket", _base_url(endpoint.url, ("/2.0/user", "/2.0")))
        elif endpoint.kind == "azure_devops" and parts.hostname != "status.dev.azure.com":
            urls.setdefault("azure_devops", _azure_org_url(endpoint.url))
    return urls


def _azure_org_url(url: str) -> str:
    """The organisation (collection) URL in an Azure DevOps URL: up to ``/_apis``; on
    dev.azure.com only the first path segment (``https://dev.azure.com/org/project``)."""
    parts = urllib.parse.urlsplit(url.strip())
    path = parts.path.split("/_apis", 1)[0]
    if parts.hostname == "dev.azure.com":
        path = "/" + path.strip("/").split("/", 1)[0]
    return _base_url(urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", "")))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")


_VALIDATED = ("github", "azure_devops", "bitbucket")  # the providers validation knows
VALID = "valid"
INVALID = "invalid"
UNREACHABLE = "unreachable"
NOT_CONFIGURED = "not_configured"
SKIPPED = "skipped"


def _auth_verdict(
    kind: str, code: int, content_type: str, body: bytes, headers: Any
) -> Tuple[str, str]:
    """(state, why) for one validation answer; see :class:`AuthenticationCheck`."""
    json_body = is_json(content_type, body)
    what = content_type.split(";")[0].strip() or "no content type"
    if kind == "azure_devops":
        # Azure DevOps answers a bad or expired PAT with 203 (or a redirect) and a sign-in page.
        if code == 203 or (200 <= code < 300 and not json_body):
            return INVALID, f"HTTP {code} with {what}: a sign-in page, the PAT was not accepted"
        if 300 <= code < 400:
            return INVALID, f"HTTP {code}: redirected to sign in, the PAT was not accepted"
    remaining = headers.get("X-RateLimit-Remaining") if headers is not None else None
    if code == 429 or (code == 403 and remaining == "0"):
        return UNREACHABLE, f"rate limited (HTTP {code}), no verdict"
    if code == 401:
        return INVALID, "HTTP 401: credential rejected"
    if code == 403:
        if kind == "bitbucket":  # authenticated, but without the account:read scope
            return VALID, "HTTP 403: accepted, but lacks the account scope"
        return INVALID, "HTTP 403: credential refused"
    if 200 <= code < 300:
        if json_body:
            return VALID, ""
        return UNREACHABLE, f"HTTP {code} with {what}, expected JSON (a proxy or portal?)"
    if 300 <= code < 400:
        return UNREACHABLE, f"HTTP {code}: redirect not followed (wrong base URL?)"
    return UNREACHABLE, f"HTTP {code}"


class AuthenticationCheck:
    """Which providers have credentials configured and, optionally, whether they work.

    Credentials come from environment variables (``env_vars``: provider -> variable names)
    and mgit's config file (``config_path``). Only variable *names*, provider and entry
    *names*, states and HTTP statuses are reported, never a value. The config file's
    permissions are checked too (a token readable by other users degrades).

    Without ``validate`` (the default) nothing is sent anywhere: healthy when at least one
    provider has a credential, degraded when mgit's config names providers and none has
    one. With no mgit config (or one naming no provider) and no credential variable there
    is nothing to authenticate to: healthy, and the message says so.

    With ``validate=True`` each provider that has a credential gets one cheap authenticated
    request, concurrently, each within ``timeout`` s, redirects not followed, through
    ``proxy`` unless ``no_proxy`` matches:

    - GitHub: ``GET {github}/rate_limit`` with ``Authorization: Bearer`` (costs no quota);
    - Azure DevOps: ``GET {org}/_apis/connectionData`` with basic auth ``:PAT``; HTTP 203,
      a redirect or HTML is a sign-in page, i.e. *invalid*; JSON 200 is valid;
    - Bitbucket: ``GET {bitbucket}/2.0/user`` with basic auth ``user:app-password``
      (user from mgit's config or BITBUCKET_USERNAME), or ``Bearer`` without a user;
      403 means accepted but lacking the account scope, which counts as valid.

    Base URLs: ``api_urls`` (provider -> base, by default :data:`DEFAULT_CREDENTIAL_API_URLS`;
    :func:`~mgit_monitoring.default_checks.register_default_checks` derives them from the
    provider endpoints); a GitHub entry in mgit's config with a non-github.com URL uses
    ``https://host/api/v3``; the Azure organisation is the entry's own URL, else
    ``api_urls["azure_devops"]``, else AZURE_DEVOPS_ORG_URL / SYSTEM_COLLECTIONURI (none:
    *skipped*). One credential per provider is checked: environment variables first (in
    ``env_vars`` order), then config entries. A credential is never sent over plain http
    except to a loopback address.

    Per provider ``details["validation"]`` says ``valid``, ``invalid``, ``unreachable`` (no
    verdict: network error, timeout, rate limit, 5xx, unexpected answer), ``not_configured``
    or ``skipped`` (cannot be validated: no Azure organisation URL, plain http, or a provider
    kind validation does not know), with the reason. Status rule over the GitHub, Azure
    DevOps and Bitbucket providers that have a credential: all valid -> healthy; none valid
    and at least one invalid -> unhealthy (no provider is usable); anything else -> degraded
    (an unreachable provider is the network's or the provider check's failure, not a
    credential's; a skipped one is a configuration gap). No credential at all, or an
    unreadable or too-open config file, degrades as without validation. The check is not
    critical, so it never makes the pod unready; register it with a long ttl (the default
    set uses 300 s).
    """

    name = "authentication_status"

    def __init__(
        self,
        environ: Mapping[str, str],
        config_path: str | None = None,
        env_vars: Mapping[str, Sequence[str]] = DEFAULT_CREDENTIAL_ENV,
        validate: bool = False,
        api_urls: Mapping[str, str] | None = None,
        timeout: float = 5.0,
        proxy: str | None = None,
        no_proxy: str | None = None,
        user_agent: str = "mgit-monitoring-health",
    ) -> None:
        self.environ = environ
        self.config_path = config_path
        self.env_vars = env_vars
        self.validate = validate
        self.api_urls: Dict[str, str] = dict(DEFAULT_CREDENTIAL_API_URLS)
        self.api_urls.update(api_urls or {})
        self.timeout = timeout
        self.proxy = proxy
        self.no_proxy = no_proxy
        self.user_agent = user_agent
        self._busy: Set[str] = set()  # providers whose validation request is still running

    def __call__(self) -> HealthCheckResult:
        sources: Dict[str, List[str]] = {p: [] for p in self.env_vars}
        candidates: Dict[str, List[_Credential]] = {p: [] for p in self.env_vars}
        for provider, names in self.env_vars.items():
            for var in names:
                if self.environ.get(var, "").strip():
                    sources[provider].append(f"env:{var}")
                    if self.validate:  # values are read only to validate them
                        candidates[provider].append(
                            _Credential(f"env:{var}", self.environ[var].strip())
                        )
        details: Dict[str, Any] = {}
        problems = []
        path = self.config_path
        named: List[str] = []  # the provider entries of mgit's config
        if path:
            details["config_file"] = path
            details["config_file_exists"] = os.path.isfile(path)
            if details["config_file_exists"]:
                try:
                    entries = _read_mgit_providers(path, keep_secrets=self.validate)
                    mode = stat.S_IMODE(os.stat(path).st_mode)
                except OSError as exc:
                    problems.append(f"cannot read {path}: {exc.strerror or exc}")
                    entries, mode = [], 0
                for entry in entries:
                    kind = _provider_type(entry)
                    named.append(entry["name"])
                    sources.setdefault(kind, [])
                    if entry["credential"]:
                        sources[kind].append(f"config:{entry['name']}")
                    if "_credential" in entry:
                        candidates.setdefault(kind, []).append(entry["_credential"])
                if os.name == "posix" and mode & 0o077 and any(e["credential"] for e in entries):
                    problems.append(
                        f"{path} holds credentials and is readable by others "
                        f"(mode {mode:o}; use chmod 600)"
                    )
        configured = sorted(p for p, found in sources.items() if found)
        details["providers_configured"] = configured
        details["provider_details"] = {
            p: ("credentials_configured" if s else "none") for p, s in sources.items()
        }
        details["credential_sources"] = {p: s for p, s in sources.items() if s}
        details["validation_enabled"] = self.validate
        extra: Dict[str, Any] = {"observed_value": len(configured), "measurement": "credentials"}
        verdicts: Dict[str, Dict[str, Any]] = {}
        if self.validate:
            verdicts = self._validate_all(sources, candidates)
            details["validation"] = verdicts
        if not configured and not named:
            # Nothing to authenticate to: no mgit config yet, or one naming no provider.
            where = (
                f"mgit's config {path} names no provider"
                if details.get("config_file_exists")
                else f"no mgit config at {path}"
                if path
                else "no mgit config"
            )
            status = HEALTHY
            message = f"No provider credentials configured ({where}); nothing to authenticate"
        elif not configured:
            status = DEGRADED
            message = (
                "No provider credentials configured for the providers in mgit's config "
                f"({', '.join(named)})"
            )
        elif not self.validate:
            status, message = HEALTHY, f"Credentials configured for: {', '.join(configured)}"
        else:
            status, message = self._verdict(configured, verdicts)
        if problems:
            # A config file problem degrades; it does not hide a worse validation verdict.
            status = UNHEALTHY if status == UNHEALTHY else DEGRADED
            message = "; ".join(problems + [message])
        return HealthCheckResult(self.name, status, message, details, **extra)

    @staticmethod
    def _verdict(
        configured: Sequence[str], verdicts: Mapping[str, Mapping[str, Any]]
    ) -> Tuple[str, str]:
        checked = [p for p in configured if p in _VALIDATED]
        states = [verdicts[p]["status"] for p in checked]
        notes = []
        for provider in checked:
            report = verdicts[provider]
            why = report.get("error") or report.get("note")
            notes.append(f"{provider} {report['status']}" + (f" ({why})" if why else ""))
        message = "Credentials: " + (", ".join(notes) or "none of a kind that can be validated")
        if all(s == VALID for s in states):
            return HEALTHY, message
        if VALID not in states and INVALID in states:
            return UNHEALTHY, message
        return DEGRADED, message

    def _validate_all(
        self, sources: Mapping[str, List[str]], candidates: Mapping[str, List[_Credential]]
    ) -> Dict[str, Dict[str, Any]]:
        chosen = {p: self._choose(p, c) for p, c in candidates.items() if c and p in _VALIDATED}
        order = list(chosen)
        tasks = [lambda p=p: self._validate_one(p, chosen[p]) for p in order]
        found = run_parallel(tasks, self.timeout + 1.0, order, self._busy)
        verdicts: Dict[str, Dict[str, Any]] = {}
        for provider in sources:
            if provider not in chosen:
                if sources[provider]:  # a kind validation does not know (mgit's "other")
                    verdicts[provider] = {"status": SKIPPED, "note": "no validation method"}
                else:
                    verdicts[provider] = {"status": NOT_CONFIGURED}
        for provider, report in zip(order, found):
            verdicts[provider] = report or {
                "status": UNREACHABLE,
                "source": chosen[provider].source,
                "error": f"no answer in {self.timeout + 1.0:g} s",
            }
        return verdicts

    def _azure_org(self, credential: _Credential) -> str:
        if credential.url:
            return credential.url
        if self.api_urls.get("azure_devops"):
            return self.api_urls["azure_devops"]
        return next((self.environ[v] for v in _AZURE_ORG_ENV if self.environ.get(v)), "")

    def _choose(self, provider: str, found: List[_Credential]) -> _Credential:
        if provider == "azure_devops":  # prefer one whose organisation is known
            return next((c for c in found if self._azure_org(c)), found[0])
        return found[0]

    def _request(self, provider: str, credential: _Credential) -> Tuple[str, str] | str:
        """(url, Authorization header value), or why this credential cannot be checked."""
        secret = credential.secret
        if provider == "github":
            base = self.api_urls.get("github", "")
            own = urllib.parse.urlsplit(credential.url)
            host = (own.hostname or "").lower()
            if host and host not in ("github.com", "www.github.com", "api.github.com"):
                base = _base_url(f"{own.scheme}://{own.netloc}/api/v3")  # GitHub Enterprise
            return base.rstrip("/") + "/rate_limit", "Bearer " + secret
        if provider == "azure_devops":
            org = self._azure_org(credential)
            if not org:
                return "no organization URL (set AZURE_DEVOPS_ORG_URL or url: in mgit's config)"
            return _azure_org_url(org) + "/_apis/connectionData", _basic("", secret)
        if provider == "bitbucket":
            user = credential.user
            if not user and credential.source.startswith("env:"):
                user = next(
                    (self.environ[v] for v in _BITBUCKET_USER_ENV if self.environ.get(v)), ""
                )
            header = _basic(user, secret) if user else "Bearer " + secret
            return self.api_urls.get("bitbucket", "").rstrip("/") + "/2.0/user", header
        return "no validation method for this provider"  # pragma: no cover - see _VALIDATED

    def _validate_one(self, provider: str, credential: _Credential) -> Dict[str, Any]:
        report: Dict[str, Any] = {"source": credential.source}
        planned = self._request(provider, credential)
        if isinstance(planned, str):
            return dict(report, status=SKIPPED, note=planned)
        url, authorization = planned
        parts = urllib.parse.urlsplit(url)
        report["url"] = safe_url(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return dict(report, status=SKIPPED, note=f"bad base URL {safe_url(url)!r}")
        if parts.scheme != "https" and not _loopback(parts.hostname):
            return dict(
                report, status=SKIPPED, note="refusing to send a credential over plain http"
            )
        from urllib.request import Request  # with http.client and ssl: at the first probe

        request = Request(
            url, headers={"User-Agent": self.user_agent, "Accept": "application/json"}
        )
        # Unredirected: the header is never replayed to wherever a redirect points.
        request.add_unredirected_header("Authorization", authorization)
        opener = url_opener(url, self.proxy, self.no_proxy, follow_redirects=False)
        start = time.perf_counter()
        response, reason = open_url(opener, request, self.timeout)
        if response is None:
            error = _scrub(reason, credential.secret, authorization)
            return dict(report, status=UNREACHABLE, error=error, response_ms=elapsed_ms(start))
        try:
            code = response.getcode() or 0
            headers = response.headers
            body = response.read(65536) if code < 300 else b""
        except OSError as exc:
            error = _scrub(str(exc), credential.secret, authorization)
            return dict(report, status=UNREACHABLE, error=error, response_ms=elapsed_ms(start))
        finally:
            response.close()
        report.update(http_status=code, response_ms=elapsed_ms(start))
        content_type = headers.get("Content-Type", "") if headers is not None else ""
        state, why = _auth_verdict(provider, code, content_type, body, headers)
        report["status"] = state
        if why:
            report["note" if state == VALID else "error"] = why
        if provider == "github" and headers is not None and state == VALID:
            remaining = headers.get("X-RateLimit-Remaining")
            if remaining is not None and remaining.isdigit():
                report["rate_limit_remaining"] = int(remaining)
            expires = headers.get("GitHub-Authentication-Token-Expiration")
            if expires:
                report["expires"] = expires[:64]
        return report


def _scrub(text: str, *secrets: str) -> str:
    """An error text for the details: masked, the secrets removed, one short line."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return mask_credentials(" ".join(text.split()))[:200]
