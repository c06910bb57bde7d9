"""Tests for mgit_monitoring.http_auth: PBKDF2 hashes, htpasswd files, bearer and basic auth."""

from __future__ import annotations

import base64
import hashlib
import os
import select
import subprocess
import sys
import tempfile
import time
import unittest
from typing import Dict, List, Tuple
from unittest import mock

from mgit_monitoring import http_auth
from mgit_monitoring.errors import ConfigError
from mgit_monitoring.http_auth import (
    HttpAuth,
    hash_password,
    htpasswd_line,
    load_htpasswd,
    main,
    verify_password,
)
from tests.support import ROOT, TempDirCase, basic_auth

FAST = 1000  # iterations for tests; the default (600,000) is for real files


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class TestHashes(unittest.TestCase):
    def test_hash_verifies_and_rejects_wrong_password(self) -> None:
        """A hash matches its password and no other."""
        encoded = hash_password("s3cret", iterations=FAST)
        self.assertTrue(encoded.startswith("$pbkdf2-sha256$1000$"))
        self.assertTrue(verify_password("s3cret", encoded))
        self.assertFalse(verify_password("s3cret ", encoded))

    def test_hashes_are_salted(self) -> None:
        """Two hashes of the same password differ (random salt)."""
        self.assertNotEqual(
            hash_password("x", iterations=FAST), hash_password("x", iterations=FAST)
        )

    def test_known_vector_matches_pbkdf2(self) -> None:
        """The checksum is PBKDF2-HMAC-SHA256 over the salt, in passlib's adapted base64."""
        salt = b"0123456789abcdef"
        encoded = hash_password("pw", iterations=FAST, salt=salt)
        key = hashlib.pbkdf2_hmac("sha256", b"pw", salt, FAST, 32)
        expected = base64.b64encode(key).decode().rstrip("=").replace("+", ".")
        self.assertEqual(expected, encoded.rsplit("$", 1)[1])

    def test_malformed_hash_never_matches(self) -> None:
        """Garbage in the hash field is a mismatch, not an exception."""
        for bad in ("", "plain", "$pbkdf2-sha256$x$y$z", "$pbkdf2-sha256$10$AAAA$AAAA"):
            self.assertFalse(verify_password("pw", bad), bad)

    def test_too_few_iterations_rejected(self) -> None:
        """Creating a hash with a trivially low iteration count is refused."""
        with self.assertRaises(ConfigError):
            hash_password("pw", iterations=10)

    def test_htpasswd_line_rejects_bad_user(self) -> None:
        """A user name with ':' would corrupt the file and is refused with its value named."""
        with self.assertRaisesRegex(ConfigError, "'a:b'"):
            htpasswd_line("a:b", "pw", iterations=FAST)


class TestHtpasswdFile(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.path = os.path.join(self.dir.name, "htpasswd")

    def _write(self, text: str) -> None:
        with open(self.path, "w", encoding="utf-8") as handle:
            handle.write(text)

    def test_loads_users_skipping_comments(self) -> None:
        """Comment and blank lines are ignored; every user line is loaded."""
        self._write("# users\n\n" + htpasswd_line("prom", "a", iterations=FAST) + "\n")
        users = load_htpasswd(self.path)
        self.assertEqual(["prom"], list(users))
        self.assertTrue(verify_password("a", users["prom"]))

    def test_bad_line_names_file_and_line_not_content(self) -> None:
        """A malformed line gives path:line and never echoes the line itself."""
        self._write(htpasswd_line("ok", "a", iterations=FAST) + "\nbob:plaintextpw\n")
        with self.assertRaises(ConfigError) as caught:
            load_htpasswd(self.path)
        self.assertIn(f"{self.path}:2", str(caught.exception))
        self.assertNotIn("plaintextpw", str(caught.exception))

    def test_missing_file_is_config_error(self) -> None:
        """A missing file is a one-line ConfigError naming it."""
        with self.assertRaisesRegex(ConfigError, "cannot read htpasswd file"):
            load_htpasswd(os.path.join(self.dir.name, "nope"))


class TestMain(unittest.TestCase):
    def test_main_prints_a_line_from_stdin(self) -> None:
        """The module's command prints a user:hash line that verifies the given password."""
        import contextlib
        import io
        import sys

        self.addCleanup(setattr, sys, "stdin", sys.stdin)
        sys.stdin = io.StringIO("pw\n")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(0, main(["prom", "--stdin"]))
        user, encoded = out.getvalue().strip().split(":", 1)
        self.assertEqual("prom", user)
        self.assertTrue(verify_password("pw", encoded))


def _command(*args: str) -> List[str]:
    return [sys.executable, "-m", "mgit_monitoring.http_auth", *args]


def _env() -> Dict[str, str]:
    return dict(os.environ, PYTHONPATH=ROOT)


class TestCommandLine(TempDirCase):
    """``python3 -m mgit_monitoring.http_auth USER`` as a script runs it: a real process."""

    def run_with_stdin(self, data: bytes, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            _command(*args),
            input=data,
            capture_output=True,
            env=_env(),
            cwd=self.tmp,
            timeout=60,
        )

    def assert_one_line_error(self, out: subprocess.CompletedProcess, text: str) -> None:
        self.assertEqual(2, out.returncode, out.stderr)
        self.assertEqual(b"", out.stdout)
        err = out.stderr.decode()
        self.assertNotIn("Traceback", err)
        self.assertEqual(1, len(err.strip().splitlines()), err)
        self.assertIn(text, err)

    def test_password_from_a_pipe_verifies(self) -> None:
        """`echo PW | python3 -m ...http_auth USER` prints a line HttpAuth accepts for PW only."""
        out = self.run_with_stdin(b"s3cret pass\n", "prometheus")
        self.assertEqual(0, out.returncode, out.stderr)
        self.assertEqual(b"", out.stderr)
        lines = out.stdout.decode().splitlines()
        self.assertEqual(1, len(lines), lines)
        path = self.write("htpasswd", lines[0] + "\n")
        auth = HttpAuth(htpasswd_file=path)
        self.assertTrue(auth.allows("/metrics", basic_auth("prometheus", "s3cret pass")))
        self.assertFalse(auth.allows("/metrics", basic_auth("prometheus", "s3cret pass\n")))
        self.assertFalse(auth.allows("/metrics", basic_auth("prometheus", "s3cret")))

    def test_only_the_first_line_counts_and_crlf_is_stripped(self) -> None:
        """Like `htpasswd -i`: the first line is the password, without its line ending."""
        out = self.run_with_stdin("pä\r\nignored\n".encode(), "prom")
        self.assertEqual(0, out.returncode, out.stderr)
        user, encoded = out.stdout.decode().strip().split(":", 1)
        self.assertEqual("prom", user)
        self.assertTrue(verify_password("pä", encoded))

    def test_empty_or_missing_password_is_a_one_line_error(self) -> None:
        """Nothing, an empty line, or invalid UTF-8 on stdin: exit 2 and one line, no traceback."""
        for data, text in (
            (b"", "no password on standard input"),
            (b"\n", "empty password"),
            (b"\xff\xfe\n", "not valid UTF-8"),
        ):
            with self.subTest(data=data):
                self.assert_one_line_error(self.run_with_stdin(data, "prom"), text)

    def test_closed_stdin_is_a_one_line_error(self) -> None:
        """Run with standard input closed (`<&-`): an error line, not an AttributeError."""
        out = subprocess.run(
            ["/bin/sh", "-c", '"$0" -m mgit_monitoring.http_auth prom <&-', sys.executable],
            capture_output=True,
            env=_env(),
            cwd=self.tmp,
            timeout=60,
        )
        self.assert_one_line_error(out, "no standard input")


@unittest.skipUnless(sys.platform.startswith("linux"), "needs a Linux pty")
class TestTerminal(TempDirCase):
    """On a terminal the command still prompts twice (the pipe path does not take over)."""

    def spawn(self) -> Tuple[subprocess.Popen, int]:
        master, slave = os.openpty()
        # The child makes the pty its controlling terminal, as a login shell's would be,
        # so getpass reads /dev/tty with echo off.
        boot = (
            "import fcntl, runpy, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
            "sys.argv = ['http_auth', 'prom']; "
            "runpy.run_module('mgit_monitoring.http_auth', run_name='__main__')"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", boot],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=_env(),
            cwd=self.tmp,
            start_new_session=True,
        )
        os.close(slave)
        self.addCleanup(os.close, master)
        self.addCleanup(_reap, proc)
        return proc, master

    def test_prompts_twice_and_prints_a_line(self) -> None:
        """Typing the password twice at the prompts prints a verifying line."""
        proc, master = self.spawn()
        _read_until(master, b"password: ")
        os.write(master, b"tty-secret\n")
        _read_until(master, b"again: ")
        os.write(master, b"tty-secret\n")
        self.assertEqual(0, proc.wait(60))
        text = _read_until(master, None).decode()
        line = next(x for x in text.splitlines() if x.startswith("prom:"))
        self.assertTrue(verify_password("tty-secret", line.split(":", 1)[1]))
        self.assertNotIn("tty-secret", text)  # never echoed

    def test_ctrl_d_at_the_prompt_is_a_one_line_error(self) -> None:
        """End of input at the prompt (Ctrl-D) exits 2 with an error line, not an EOFError."""
        proc, master = self.spawn()
        _read_until(master, b"password: ")
        os.write(master, b"\x04")
        self.assertEqual(2, proc.wait(60))
        text = _read_until(master, None).decode()
        self.assertIn("error: no password given", text)
        self.assertNotIn("Traceback", text)


def _reap(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def _read_until(fd: int, marker: bytes | None, timeout: float = 30.0) -> bytes:
    """Read ``fd`` until ``marker`` appears (or, for None, until the other side closes)."""
    deadline = time.monotonic() + timeout
    data = b""
    while marker is None or marker not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{marker!r} did not appear; got {data!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            chunk = b""
        if not chunk:
            if marker is None:
                return data
            raise AssertionError(f"{marker!r} did not appear before the end; got {data!r}")
        data += chunk
    return data


class TestHttpAuth(unittest.TestCase):
    def setUp(self) -> None:
        self.users = {"prom": hash_password("pw", iterations=FAST)}

    def test_bearer_token(self) -> None:
        """Only the exact token passes."""
        auth = HttpAuth(token="t0ken")
        self.assertTrue(auth.allows("/metrics", "Bearer t0ken"))
        self.assertTrue(auth.allows("/metrics", "bearer t0ken"))
        self.assertFalse(auth.allows("/metrics", "Bearer t0ke"))
        self.assertFalse(auth.allows("/metrics", None))
        self.assertFalse(auth.allows("/metrics", _basic("prom", "t0ken")))

    def test_basic_auth(self) -> None:
        """The right user and password pass; wrong password, unknown user and junk do not."""
        auth = HttpAuth(users=self.users)
        self.assertTrue(auth.allows("/metrics", _basic("prom", "pw")))
        self.assertTrue(auth.allows("/metrics", _basic("prom", "pw")))  # cached path
        self.assertFalse(auth.allows("/metrics", _basic("prom", "pW")))
        self.assertFalse(auth.allows("/metrics", _basic("eve", "pw")))
        self.assertFalse(auth.allows("/metrics", "Basic !!notbase64"))

    def test_secrets_are_compared_in_constant_time(self) -> None:
        """Tokens and password hashes go through hmac.compare_digest, never ``==``."""
        real = http_auth.hmac.compare_digest
        calls = []

        def spy(a: bytes, b: bytes) -> bool:
            calls.append((len(a), len(b)))
            return real(a, b)

        with mock.patch.object(http_auth.hmac, "compare_digest", spy):
            self.assertFalse(HttpAuth(token="t0ken").allows("/", "Bearer wrong-and-longer"))
            self.assertEqual([(32, 32)], calls)  # digests: equal lengths, no length leak
            calls.clear()
            self.assertFalse(HttpAuth(users=self.users).allows("/", _basic("prom", "nope")))
            self.assertEqual(1, len(calls))

    def test_unknown_user_costs_a_hash_too(self) -> None:
        """An unknown user is checked against a real hash, so timing does not reveal users."""
        auth = HttpAuth(users=self.users)
        with mock.patch.object(http_auth, "verify_password", return_value=False) as verify:
            self.assertFalse(auth.allows("/", _basic("eve", "pw")))
        verify.assert_called_once_with("pw", self.users["prom"])

    def test_both_schemes_and_challenges(self) -> None:
        """With token and users either scheme works; 401 advertises both."""
        auth = HttpAuth(token="t", users=self.users, realm="mon")
        self.assertTrue(auth.allows("/", "Bearer t"))
        self.assertTrue(auth.allows("/", _basic("prom", "pw")))
        self.assertEqual(
            ['Bearer realm="mon"', 'Basic realm="mon", charset="UTF-8"'], list(auth.challenges())
        )
        self.assertEqual("bearer+basic", auth.describe())

    def test_public_probes(self) -> None:
        """public_probes opens exactly the two kubelet probes."""
        auth = HttpAuth(token="t", public_probes=True)
        self.assertTrue(auth.allows("/health/live", None))
        self.assertTrue(auth.allows("/health/ready", None))
        self.assertFalse(auth.allows("/health", None))
        self.assertFalse(HttpAuth(token="t").allows("/health/live", None))

    def test_token_file(self) -> None:
        """A token file's surrounding whitespace is ignored; an empty one is refused."""
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "token")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write("abc\n")
            self.assertTrue(HttpAuth(token_file=path).allows("/", "Bearer abc"))
            with open(path, "w", encoding="utf-8") as handle:
                handle.write("\n")
            with self.assertRaisesRegex(ConfigError, "empty"):
                HttpAuth(token_file=path)

    def test_realm_must_be_safe_in_a_header(self) -> None:
        """A realm that would break the WWW-Authenticate header is refused, naming it."""
        for realm in ('a"b', "a\\b", "mon\r\nSet-Cookie: x=1", "監視"):
            with self.assertRaisesRegex(ConfigError, "invalid realm"):
                HttpAuth(token="t", realm=realm)
        self.assertEqual(
            ['Bearer realm="mgit prod"'], list(HttpAuth(token="t", realm="mgit prod").challenges())
        )

    def test_needs_something(self) -> None:
        """HttpAuth without any credential source is a configuration error."""
        with self.assertRaises(ConfigError):
            HttpAuth()


if __name__ == "__main__":
    unittest.main()
