"""Access control for the monitoring HTTP server: bearer tokens and htpasswd-style basic auth.

The seed's "Access Control" made real, in the spirit of Prometheus exporters' web config:

* a bearer token (``Authorization: Bearer <token>``), compared in constant time;
* users from an htpasswd-style file, one ``user:hash`` per line, where the hash is a salted
  PBKDF2-SHA256 string in passlib's modular-crypt format
  ``$pbkdf2-sha256$<iterations>$<salt>$<checksum>`` (so passlib can create them too);
* an opt-in to leave the Kubernetes probes (``/health/live``, ``/health/ready``) open, because
  a kubelet ``httpGet`` probe is simpler without credentials.

Create a line for the file with :func:`htpasswd_line` (or ``hash_password`` for the hash alone)::

    >>> from mgit_monitoring.http_auth import htpasswd_line
    >>> line = htpasswd_line("prometheus", "s3cret")   # 'prometheus:$pbkdf2-sha256$600000$...'

or from a shell (on a terminal it asks for the password twice; from a pipe it reads the
first line of standard input, as ``htpasswd -i`` does)::

    python3 -m mgit_monitoring.http_auth prometheus >> htpasswd
    printf '%s\n' "$PASSWORD" | python3 -m mgit_monitoring.http_auth prometheus >> htpasswd

Nothing here touches the network; :class:`HttpAuth.allows` is a pure decision the server asks for
every request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import sys
import threading
from typing import Dict, Iterable, List, Mapping, Tuple

from mgit_monitoring.errors import ConfigError

__all__ = [
    "DEFAULT_ITERATIONS",
    "PROBE_PATHS",
    "HttpAuth",
    "hash_password",
    "htpasswd_line",
    "load_htpasswd",
    "main",
    "verify_password",
]

#: PBKDF2-SHA256 rounds for new hashes (OWASP's 2023 recommendation for this algorithm).
DEFAULT_ITERATIONS = 600_000

#: The paths left open by ``public_probes=True``: what a kubelet calls.
PROBE_PATHS = frozenset({"/health/live", "/health/ready"})

_PREFIX = "$pbkdf2-sha256$"
_MIN_ITERATIONS = 1_000
_KEY_BYTES = 32
_SALT_BYTES = 16
_CACHE_SIZE = 256


def _ab64_encode(data: bytes) -> str:
    # passlib's "adapted base64": '.' instead of '+', no padding.
    return base64.b64encode(data).decode("ascii").rstrip("=").replace("+", ".")


def _ab64_decode(text: str) -> bytes:
    text = text.replace(".", "+")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def hash_password(
    password: str, *, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
) -> str:
    """Return a salted ``$pbkdf2-sha256$...`` hash of ``password`` for an htpasswd-style file."""
    if iterations < _MIN_ITERATIONS:
        msg = f"iterations must be at least {_MIN_ITERATIONS}, got {iterations!r}"
        raise ConfigError(msg)
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations, _KEY_BYTES)
    return f"{_PREFIX}{iterations}${_ab64_encode(salt)}${_ab64_encode(key)}"


def htpasswd_line(user: str, password: str, *, iterations: int = DEFAULT_ITERATIONS) -> str:
    """Return one ``user:hash`` line (without newline) for the file given to :class:`HttpAuth`."""
    if not user or ":" in user or any(ch.isspace() for ch in user):
        msg = f"invalid user name {user!r}: it must be non-empty, without ':' or spaces"
        raise ConfigError(msg)
    return f"{user}:{hash_password(password, iterations=iterations)}"


def _parse_hash(encoded: str) -> Tuple[int, bytes, bytes]:
    if not encoded.startswith(_PREFIX):
        raise ValueError("not a $pbkdf2-sha256$ hash")
    rounds, salt, key = encoded[len(_PREFIX) :].split("$")
    iterations = int(rounds)
    if iterations < _MIN_ITERATIONS:
        raise ValueError("too few iterations")
    return iterations, _ab64_decode(salt), _ab64_decode(key)


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches ``encoded``; a malformed hash never matches."""
    try:
        iterations, salt, key = _parse_hash(encoded)
    except (ValueError, binascii.Error):
        return False
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations, len(key))
    return hmac.compare_digest(candidate, key)


def load_htpasswd(path: str) -> Dict[str, str]:
    """Read ``user:hash`` lines (``#`` comments and blank lines allowed) from ``path``."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        msg = f"cannot read htpasswd file {path!r}: {exc.strerror or exc}"
        raise ConfigError(msg) from None
    users: Dict[str, str] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, encoded = line.partition(":")
        try:
            if not sep or not user:
                raise ValueError
            _parse_hash(encoded)
        except (ValueError, binascii.Error):
            # Never echo the line: it holds a hash.
            msg = (
                f"{path}:{number}: expected 'user:$pbkdf2-sha256$<iterations>$<salt>$<hash>'"
                " (create one with mgit_monitoring.http_auth.htpasswd_line)"
            )
            raise ConfigError(msg) from None
        users[user] = encoded
    if not users:
        msg = f"htpasswd file {path!r} holds no users"
        raise ConfigError(msg)
    return users


def _read_token_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        msg = f"cannot read token file {path!r}: {exc.strerror or exc}"
        raise ConfigError(msg) from None


class HttpAuth:
    """Decide whether a request may proceed: bearer token and/or basic auth.

    ``token`` (or ``token_file``) enables ``Authorization: Bearer``; ``users`` (a mapping of
    user -> ``$pbkdf2-sha256$`` hash) or ``htpasswd_file`` enables ``Authorization: Basic``.
    Either scheme is accepted when both are configured. ``public_probes=True`` leaves
    :data:`PROBE_PATHS` open.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        token_file: str | None = None,
        users: Mapping[str, str] | None = None,
        htpasswd_file: str | None = None,
        public_probes: bool = False,
        realm: str = "mgit-monitoring",
    ) -> None:
        if token_file is not None:
            token = _read_token_file(token_file)
        if token is not None and not token.strip():
            msg = "the bearer token is empty" + (f" (file {token_file!r})" if token_file else "")
            raise ConfigError(msg)
        merged: Dict[str, str] = {}
        if htpasswd_file is not None:
            merged.update(load_htpasswd(htpasswd_file))
        if users:
            merged.update(users)
        if token is None and not merged:
            msg = "HttpAuth needs a token, token_file, users or htpasswd_file"
            raise ConfigError(msg)
        if not realm.isascii() or not realm.isprintable() or '"' in realm or "\\" in realm:
            # It goes into a header verbatim: CR/LF would split the response, and a
            # non-ASCII character would fail every 401 on the wire.
            msg = f"invalid realm {realm!r}: printable ASCII without quotes or backslashes"
            raise ConfigError(msg)
        # Keep only a digest of the token: equal-length inputs for compare_digest.
        self._token_digest = (
            hashlib.sha256(token.encode("utf-8")).digest() if token is not None else None
        )
        self._users = merged
        self.public_probes = public_probes
        self.realm = realm
        # Any well-formed hash will do for equalising the timing of unknown users.
        self._dummy_hash = next(iter(merged.values()), None)
        # Successful basic logins are remembered under a keyed digest, so a scraper that sends
        # the same credentials every 15 s does not pay PBKDF2 on every scrape.
        self._cache_key = os.urandom(32)
        self._cache: Dict[bytes, str] = {}
        self._cache_lock = threading.Lock()

    @property
    def schemes(self) -> List[str]:
        """The enabled schemes, ``["Bearer", "Basic"]`` or a subset."""
        found = []
        if self._token_digest is not None:
            found.append("Bearer")
        if self._users:
            found.append("Basic")
        return found

    def describe(self) -> str:
        """A non-secret summary for ``/info``: e.g. ``"bearer+basic"``."""
        return "+".join(s.lower() for s in self.schemes)

    def challenges(self) -> Iterable[str]:
        """The ``WWW-Authenticate`` header values of a 401 response."""
        for scheme in self.schemes:
            extra = ', charset="UTF-8"' if scheme == "Basic" else ""
            yield f'{scheme} realm="{self.realm}"{extra}'

    def is_public(self, path: str) -> bool:
        """True when ``path`` is served without credentials."""
        return self.public_probes and path in PROBE_PATHS

    def allows(self, path: str, authorization: str | None) -> bool:
        """True when the request for ``path`` with this ``Authorization`` value may proceed."""
        if self.is_public(path):
            return True
        if not authorization:
            return False
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "bearer" and self._token_digest is not None:
            given = hashlib.sha256(credentials.encode("utf-8", "surrogateescape")).digest()
            return hmac.compare_digest(given, self._token_digest)
        if scheme == "basic" and self._users:
            return self._check_basic(credentials)
        return False

    def _check_basic(self, credentials: str) -> bool:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
        user, sep, password = decoded.partition(":")
        if not sep:
            return False
        cache_key = hmac.new(self._cache_key, decoded.encode("utf-8"), hashlib.sha256).digest()
        encoded = self._users.get(user)
        if encoded is not None and self._cache.get(cache_key) == encoded:
            return True
        if encoded is None:
            # Spend the same time as a real check so response timing does not reveal users.
            if self._dummy_hash is not None:
                verify_password(password, self._dummy_hash)
            return False
        if not verify_password(password, encoded):
            return False
        with self._cache_lock:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[cache_key] = encoded
        return True


def _read_password(from_stdin: bool) -> str | None:
    """The password from a pipe (one line, like ``htpasswd -i``) or a twice-asked prompt;
    None after printing a one-line error."""
    import getpass

    stdin = sys.stdin
    piped = stdin is None or not stdin.isatty()
    try:
        if from_stdin or piped:
            if stdin is None:
                print("error: no standard input to read the password from", file=sys.stderr)
                return None
            # Bytes, decoded as UTF-8 whatever the locale: basic auth credentials arrive in
            # UTF-8 (the challenge says charset="UTF-8"), so that is what gets hashed.
            buffer = getattr(stdin, "buffer", None)
            raw = buffer.readline() if buffer is not None else stdin.readline()
            if not raw:
                print("error: no password on standard input", file=sys.stderr)
                return None
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            return line.rstrip("\r\n")
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return None
        return password
    except EOFError:
        print("\nerror: no password given", file=sys.stderr)
    except UnicodeDecodeError:
        print("error: the password on standard input is not valid UTF-8", file=sys.stderr)
    except OSError as exc:
        print(f"error: cannot read the password: {exc.strerror or exc}", file=sys.stderr)
    return None


def main(argv: List[str] | None = None) -> int:
    """``python3 -m mgit_monitoring.http_auth USER [--stdin]``: print one htpasswd line.

    The password is asked twice on a terminal; from a pipe or with ``--stdin`` it is the
    first line of standard input (``echo "$PW" | python3 -m mgit_monitoring.http_auth USER``),
    as with ``htpasswd -i``. An empty or missing password is a one-line error, exit 2.
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog="python3 -m mgit_monitoring.http_auth",
        description="Print a user:hash line for the monitoring server's --htpasswd file. "
        "On a terminal the password is asked twice; otherwise the first line of standard "
        "input is the password.",
        epilog="examples: python3 -m mgit_monitoring.http_auth prometheus >> htpasswd\n"
        "          printf '%s\\n' \"$PW\" | python3 -m mgit_monitoring.http_auth prometheus",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("user")
    parser.add_argument(
        "--stdin",
        action="store_true",
        help="read the password from the first line of stdin even on a terminal",
    )
    args = parser.parse_args(argv)
    password = _read_password(args.stdin)
    if password is None:
        return 2
    if not password:
        print("error: empty password", file=sys.stderr)
        return 2
    try:
        print(htpasswd_line(args.user, password))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
