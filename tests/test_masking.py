"""Tests for mgit_monitoring.masking: the secrets catalogue, false positives, structures."""

from __future__ import annotations

import base64
import os
import random
import string
import subprocess
import unittest
from typing import Callable, List, Tuple

from mgit_monitoring.masking import (
    MASK,
    CredentialMasker,
    default_masker,
    is_sensitive_key,
    mask_credentials,
    mask_structure,
)
from tests.support import run_python

F4 = "FAKE"
ALNUM = string.ascii_letters + string.digits


def _b64u(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# (kind, input, expected) - the catalogue's fake examples (shared/docs/secrets-catalogue.md)
CATALOGUE = [
    (
        "github classic",
        f"push failed, token ghp_{F4 * 9} rejected",
        "push failed, token ghp_*** rejected",
    ),
    ("github oauth", f"gho_{F4 * 9}", "gho_***"),
    ("github server-to-server", f"x ghs_{F4 * 9}_x y", "x ghs_*** y"),
    (
        "github fine-grained",
        "GH_TOKEN=github_pat_11" + F4 * 5 + "00_" + F4 * 15,
        "GH_TOKEN=github_pat_***",
    ),
    ("gitlab pat", f"using glpat-{F4 * 5}", "using glpat-***"),
    ("gitlab runner", "token GR1348941" + F4 * 5, "token GR1348941***"),
    (
        "azure devops 84",
        "pat " + F4 * 13 + "JQQJ99BE" + F4 * 4 + "AZDO" + F4 + " ok",
        "pat ***ADO_PAT*** ok",
    ),
    (
        "bitbucket app password",
        f"https://jdoe:ATBB{F4 * 6}FAKE0000@bitbucket.org/ws/repo.git",
        "https://jdoe:ATBB***@bitbucket.org/ws/repo.git",
    ),
    (
        "bitbucket access token",
        f"https://x-token-auth:ATCTT3xFfGN0{F4 * 10}=DEADBEEF@bitbucket.org/ws/repo.git",
        "https://x-token-auth:ATCTT3***@bitbucket.org/ws/repo.git",
    ),
    ("aws access key", "key AKIAIOSFODNN7EXAMPLE", "key AKIA***"),
    (
        "jwt",
        "bearer eyJ"
        + _b64u('{"alg":"none","typ":"JWT"}')[3:]
        + "."
        + _b64u('{"sub":"x"}')
        + ". expired",
        "bearer ***JWT*** expired",
    ),
    (
        "private key block",
        "key:\n-----BEGIN RSA PRIVATE KEY-----\n"
        + F4 * 16
        + "\n-----END RSA PRIVATE KEY-----\ndone",
        "key:\n***PRIVATE_KEY***\ndone",
    ),
    (
        "truncated private key",
        "cut -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNz",
        "cut ***PRIVATE_KEY***",
    ),
    (
        "url user:password",
        "git clone https://x-access-token:FAKEFAKEx1@github.com/org/repo.git",
        "git clone https://x-access-token:***@github.com/org/repo.git",
    ),
    (
        "url token only",
        "remote https://" + "fake2345" * 6 + "fake@dev.azure.com/org/p/_git/r",
        "remote https://***@dev.azure.com/org/p/_git/r",
    ),
    (
        "authorization header",
        'git -c http.extraHeader="AUTHORIZATION: basic ' + _b64u("fake:fake") + '" fetch',
        'git -c http.extraHeader="AUTHORIZATION: basic ***" fetch',
    ),
    (
        "key=value pairs",
        "env GIT_PASSWORD=hunter2 aws_secret_access_key="
        + F4 * 10
        + ' {"client_secret": "s3cr3t"}',
        'env GIT_PASSWORD=*** aws_secret_access_key=*** {"client_secret": "***"}',
    ),
    (
        "token in a query string",
        "GET https://api.example.com/x?access_token=abcdef123456&page=2",
        "GET https://api.example.com/x?access_token=***&page=2",
    ),
]

NEGATIVES = [
    "commit 3f786850e387550fdab836ed7e6dc881de23001b (HEAD -> main)",
    "object 9e1f0b3c2d4a5b6c7d8e9f00112233445566778899aabbccddeeff0011223344",
    "abbrev 3f78685 and tag v1.2.3",
    "uuid 123e4567-e89b-12d3-a456-426614174000",
    "traceparent 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "remote git@github.com:org/repo.git",
    "remote ssh://git@github.com/org/repo.git",
    "remote https://myorg@dev.azure.com/myorg/proj/_git/repo",
    "remote https://github.com:443/org/repo.git",
    "branch refs/heads/feature/ghp-migration",
    "stats token_count=5 max_tokens=100 password_file=/etc/pw secret_name=deploy",
    "Authorization failed for https://github.com/org/repo.git",
    "Invalid token for org acme; the token expired",
    "path /home/runner/work/repo/repo/.git/objects/pack",
    "legacy-looking " + "abcdefghijklmnopqrstuvwxyz" * 2,
]


class TestCatalogue(unittest.TestCase):
    def test_every_catalogue_kind_is_masked(self) -> None:
        """Each secret format of the catalogue is masked exactly as documented."""
        for kind, text, expected in CATALOGUE:
            with self.subTest(kind=kind):
                self.assertEqual(expected, mask_credentials(text))

    def test_false_positives_are_left_alone(self) -> None:
        """Git SHAs, UUIDs, traceparents, SSH remotes, prose and look-alike keys are unchanged."""
        for text in NEGATIVES:
            with self.subTest(text=text):
                self.assertEqual(text, mask_credentials(text))

    def test_masking_is_idempotent(self) -> None:
        """Masking already-masked text changes nothing (no double masking swallows the URL)."""
        for _kind, text, _expected in CATALOGUE:
            once = mask_credentials(text)
            with self.subTest(text=once):
                self.assertEqual(once, mask_credentials(once))

    def test_legacy_azure_pats_are_masked_without_a_key(self) -> None:
        """A bare 52-char legacy Azure DevOps PAT is masked by default when it holds a digit
        (echo <pat> | az devops login); a 52-letter run only in strict mode."""
        pat = "fake2345" * 6 + "fake"
        self.assertEqual(
            "echo *** | az devops login", mask_credentials(f"echo {pat} | az devops login")
        )
        letters = "abcdefghijklmnopqrstuvwxyz" * 2
        self.assertEqual(f"run {letters}", mask_credentials(f"run {letters}"))
        self.assertEqual("run ***", CredentialMasker(strict=True).mask_text(f"run {letters}"))

    def test_password_in_host_is_replaced_by_position(self) -> None:
        """A password that also occurs in the host name does not corrupt the host."""
        self.assertEqual(
            "https://git:***@github.com/org/repo.git",
            mask_credentials("https://git:github@github.com/org/repo.git"),
        )

    def test_oversized_line_is_scanned_in_chunks(self) -> None:
        """A line longer than max_line keeps its text and is still masked, also when a
        secret sits on a chunk boundary."""
        masker = CredentialMasker(max_line=100)
        text = "ok password=hunter2\n" + "x" * 150 + "\nend"
        self.assertEqual(text.replace("hunter2", "***"), masker.mask_text(text))
        tok = "ghp_" + "A1b2" * 9
        words = " ".join(f"w{i}" for i in range(3000))
        for where in range(0, 4200, 97):  # a secret at every offset around the cuts
            line = words[:where] + " " + tok + " token=" + "s3cr3t" + " " + words[where:]
            out = CredentialMasker(max_line=2048).mask_text(line)
            self.assertNotIn(tok[4:], out, where)
            self.assertNotIn("s3cr3t", out, where)
            self.assertEqual(line.replace(tok, "ghp_***").replace("s3cr3t", "***"), out)
        blob = "x" * 5000 + "/" + tok + "/" + "y" * 5000  # no place to cut: hard cuts
        for max_line in (2048, 3000, 4100, 5010, 5030):
            out = CredentialMasker(max_line=max_line).mask_text(blob + blob)
            self.assertTrue(tok[4:] not in out, f"max_line={max_line}: token survived")
            self.assertTrue(out.startswith("x" * 2000), f"max_line={max_line}: text lost")

    def test_private_key_spanning_lines_in_long_text(self) -> None:
        """A key block in text longer than max_line is still masked as a whole."""
        masker = CredentialMasker(max_line=40)
        text = (
            "a\n-----BEGIN PRIVATE KEY-----\n"
            + "\n".join([F4 * 8] * 5)
            + "\n-----END PRIVATE KEY-----\nb"
        )
        self.assertEqual("a\n***PRIVATE_KEY***\nb", masker.mask_text(text))

    def test_cache_never_holds_secrets(self) -> None:
        """The clean-string cache remembers clean strings only, and can be switched off."""
        masker = CredentialMasker()
        masker.mask_text("clean text")
        masker.mask_text("password=hunter2")
        self.assertEqual({"clean text"}, masker.cached_strings())
        uncached = CredentialMasker(cache_size=0)
        uncached.mask_text("clean text")
        self.assertEqual(frozenset(), uncached.cached_strings())

    def test_caches_keep_only_short_strings(self) -> None:
        """Neither cache keeps a huge string (a body used as a dict key), so memory is bounded."""
        masker = CredentialMasker()
        huge = "x" * 100_000
        masker.mask({huge: 1, "repo": huge})
        self.assertNotIn(huge, masker.cached_strings())
        self.assertEqual({"repo"}, masker.cached_strings())
        self.assertTrue(masker.is_sensitive_key("repo_" + "y" * 1000 + "_token"))
        self.assertFalse(masker.is_sensitive_key(["not", "hashable"]))

    def test_default_masker_is_shared(self) -> None:
        """mask_credentials, mask_structure and default_masker() share one masker and cache."""
        masker = default_masker()
        self.assertIs(masker, default_masker())
        mask_credentials("a clean line only the default masker has seen")
        self.assertIn("a clean line only the default masker has seen", masker.cached_strings())
        self.assertEqual({"password": MASK}, mask_structure({"password": "x"}))
        self.assertFalse(masker.strict)

    def test_strict_is_fixed_at_construction(self) -> None:
        """strict cannot be flipped later, so cached clean verdicts always match the rules."""
        masker = CredentialMasker()
        pat = "abcdefghijklmnopqrstuvwxyz" * 2
        self.assertEqual(pat, masker.mask_text(pat))  # clean for this masker, now cached
        with self.assertRaises(AttributeError):
            masker.strict = True  # type: ignore[misc]
        self.assertEqual(MASK, CredentialMasker(strict=True).mask_text(pat))

    def test_characters_that_lowercase_to_two_do_not_shift_offsets(self) -> None:
        """Text with 'İ' (lower-cased to two characters) before a secret is still masked."""
        self.assertEqual(
            "İstanbul İİ password=*** done", mask_credentials("İstanbul İİ password=hunter2 done")
        )

    def test_pat_keys_of_environment_dumps(self) -> None:
        """AZURE_DEVOPS_EXT_PAT=... (an env dump) is masked; github_pat_ is not a key."""
        self.assertEqual(
            "env AZURE_DEVOPS_EXT_PAT=*** azure-devops-pat: *** HOME=/root",
            mask_credentials("env AZURE_DEVOPS_EXT_PAT=abcdefgh azure-devops-pat: xyz HOME=/root"),
        )
        self.assertEqual("github_pat_short", mask_credentials("github_pat_short"))

    def test_quoted_values_are_masked_to_the_closing_quote(self) -> None:
        """A quoted secret with spaces or separators is masked whole, not its first word."""
        cases = [
            (
                '{"password": "correct horse battery", "user": "bob"}',
                '{"password": "***", "user": "bob"}',
            ),
            ("passphrase='a;b&c d' next", "passphrase='***' next"),
            ('"client_secret": "x\\"y z"', '"client_secret": "***"'),
            ('token="" user=bob', 'token="" user=bob'),
        ]
        for text, expected in cases:
            with self.subTest(text=text):
                self.assertEqual(expected, mask_credentials(text))
                self.assertEqual(expected, mask_credentials(expected))

    def test_malformed_private_key_headers_fail_closed(self) -> None:
        """A BEGIN line run into its END line still hides everything after it."""
        text = (
            "a -----BEGIN PRIVATE KEY----------END PRIVATE KEY----- secret"
            " -----END PRIVATE KEY-----"
        )
        self.assertEqual("a ***PRIVATE_KEY***", mask_credentials(text))

    def test_adversarial_inputs_take_linear_time(self) -> None:
        """1 MB inputs built to make the rules backtrack finish (they took minutes to hours).

        Run in a child process (tests.support.run_python's 120 s deadline, hundreds of
        times what a linear scan needs), so a regression fails instead of hanging.
        """
        code = """
            from mgit_monitoring.masking import CredentialMasker
            m = CredentialMasker(max_line=2_000_000, cache_size=0)
            n = 1_000_000
            inputs = [
                "token=" * (n // 6),
                "eyJ-" * (n // 4),
                "ATCTT3-" * (n // 7),
                "-----BEGIN PRIVATE KEY-----\\n" * (n // 28),
                "a://u:" * (n // 6) + "@",
                ("x " * 200 + "token=" * 200 + "\\n") * (n // 2000),
            ]
            for text in inputs:
                assert "hunter2" not in m.mask_text(text + " password=hunter2")
            print("ok")
        """
        try:
            result = run_python(code)
        except subprocess.TimeoutExpired:
            self.fail("masking adversarial input did not finish within 120 s")
        self.assertEqual("ok", result.stdout.strip(), result.stderr)


class TestStructures(unittest.TestCase):
    def test_sensitive_keys_are_masked_whole(self) -> None:
        """Values of secret-named keys are replaced whole, whatever their shape."""
        data = {
            "password": "hunter2",
            "Authorization": "Bearer abc",
            "client_secret": {"nested": "x"},
            "GITHUB_TOKEN": "gh-anything",
            "azure-devops-pat": "x" * 52,
            "git_password": 1234,
            "repo": "org/repo",
        }
        self.assertEqual(
            {
                "password": MASK,
                "Authorization": MASK,
                "client_secret": MASK,
                "GITHUB_TOKEN": MASK,
                "azure-devops-pat": MASK,
                "git_password": MASK,
                "repo": "org/repo",
            },
            mask_structure(data),
        )

    def test_lookalike_keys_are_kept(self) -> None:
        """Keys that merely contain a sensitive word keep their values."""
        for key in ("token_count", "max_tokens", "password_file", "secret_name", "key_id", "url"):
            with self.subTest(key=key):
                self.assertFalse(is_sensitive_key(key))
                self.assertEqual({key: 5}, mask_structure({key: 5}))

    def test_none_and_booleans_under_sensitive_keys_are_kept(self) -> None:
        """token=None or password=False say nothing secret and stay readable."""
        self.assertEqual(
            {"token": None, "password": False}, mask_structure({"token": None, "password": False})
        )

    def test_nested_values_are_pattern_masked(self) -> None:
        """Strings inside nested dicts, lists and tuples are scrubbed; other values kept."""
        data = {
            "argv": ["git", "clone", "https://u:pw123@github.com/o/r.git"],
            "n": 3,
            "t": ("a", "password=x"),
        }
        self.assertEqual(
            {
                "argv": ["git", "clone", "https://u:***@github.com/o/r.git"],
                "n": 3,
                "t": ("a", "password=***"),
            },
            mask_structure(data),
        )

    def test_caller_structures_are_not_mutated(self) -> None:
        """Masking copies containers it changes and returns unchanged ones as they are."""
        inner = {"password": "hunter2"}
        data = {"a": inner, "b": ["ghp_" + F4 * 9]}
        masked = mask_structure(data)
        self.assertEqual({"password": "hunter2"}, inner)
        self.assertEqual("ghp_" + F4 * 9, data["b"][0])
        self.assertEqual({"a": {"password": MASK}, "b": ["ghp_***"]}, masked)
        clean = {"a": [1, 2], "b": "x"}
        self.assertIs(clean, mask_structure(clean))

    def test_secret_in_a_key_is_masked(self) -> None:
        """A dict key that is itself a URL with credentials is scrubbed."""
        self.assertEqual({"https://u:***@h.com/": 1}, mask_structure({"https://u:pw@h.com/": 1}))

    def test_deep_nesting_fails_closed(self) -> None:
        """Structures nested deeper than the limit are masked rather than recursed forever."""
        data: dict = {}
        cur = data
        for _ in range(100):
            cur["x"] = {}
            cur = cur["x"]
        out = mask_structure(data)
        depth = 0
        while isinstance(out, dict):
            out, depth = out["x"], depth + 1
        self.assertEqual(MASK, out)
        self.assertLess(depth, 100)


# ---------------------------------------------------------------------------------------
# Property-based test: random secrets at random positions in random surrounding text
# ---------------------------------------------------------------------------------------


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def secret_generators() -> List[Tuple[str, Callable[[random.Random], Tuple[str, str]]]]:
    """(kind, rng -> (text containing the secret, the secret part that must disappear))."""
    upper_hex = "0123456789ABCDEF"
    b64u = ALNUM + "-_"

    def ghp(rng: random.Random) -> Tuple[str, str]:
        body = _rand(rng, ALNUM, 36)
        return rng.choice(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]) + body, body

    def gpat(rng: random.Random) -> Tuple[str, str]:
        body = _rand(rng, ALNUM + "_", 82)
        return "github_pat_" + body, body

    def glpat(rng: random.Random) -> Tuple[str, str]:
        body = _rand(rng, ALNUM, 20 + rng.randrange(10))
        return rng.choice(["glpat-", "gldt-", "glrt-", "glptt-", "glcbt-"]) + body, body

    def gr(rng: random.Random) -> Tuple[str, str]:
        body = _rand(rng, ALNUM, 20)
        return "GR1348941" + body, body

    def ado84(rng: random.Random) -> Tuple[str, str]:
        tok = (
            _rand(rng, ALNUM, 52) + "JQQJ99" + _rand(rng, ALNUM, 18) + "AZDO" + _rand(rng, ALNUM, 4)
        )
        return tok, tok

    def atbb(rng: random.Random) -> Tuple[str, str]:
        body = _rand(rng, ALNUM, 32)
        return "ATBB" + body, body

    def atctt(rng: random.Random) -> Tuple[str, str]:
        body = _rand(rng, ALNUM, 40) + "=" + _rand(rng, upper_hex, 8)
        return rng.choice(["ATCTT3", "ATATT3"]) + body, body

    def aws(rng: random.Random) -> Tuple[str, str]:
        body = _rand(rng, string.ascii_uppercase + string.digits, 16)
        return "AKIA" + body, body

    def jwt(rng: random.Random) -> Tuple[str, str]:
        tok = (
            "eyJ"
            + _rand(rng, b64u, 20)
            + ".eyJ"
            + _rand(rng, b64u, 30)
            + "."
            + _rand(rng, b64u, 20)
        )
        return tok, tok

    def pem(rng: random.Random) -> Tuple[str, str]:
        body = "\n".join(_rand(rng, ALNUM, 64) for _ in range(3))
        kind = rng.choice(["RSA ", "EC ", "OPENSSH ", ""])
        return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----", body

    def url_pw(rng: random.Random) -> Tuple[str, str]:
        pw = _rand(rng, ALNUM, 16)
        user = rng.choice(["x-access-token", "oauth2", "jdoe", "x-token-auth"])
        host = rng.choice(["github.com", "gitlab.com", "dev.azure.com", "bitbucket.org"])
        return f"https://{user}:{pw}@{host}/org/repo.git", pw

    def url_token(rng: random.Random) -> Tuple[str, str]:
        tok = _rand(rng, ALNUM, 30) + "7a"
        return f"https://{tok}@github.com/org/repo.git", tok

    def auth_header(rng: random.Random) -> Tuple[str, str]:
        tok = _rand(rng, ALNUM, 24)
        scheme = rng.choice(["Bearer ", "basic ", "token ", ""])
        return rng.choice(
            ["Authorization: ", "AUTHORIZATION=", "Proxy-Authorization: "]
        ) + scheme + tok, tok

    def key_value(rng: random.Random) -> Tuple[str, str]:
        val = _rand(rng, ALNUM, 14)
        key = rng.choice(
            [
                "password",
                "GIT_PASSWORD",
                "access_token",
                "api_key",
                "aws_secret_access_key",
                "AZURE_DEVOPS_EXT_PAT",
            ]
        )
        return rng.choice([f"{key}={val}", f'"{key}": "{val}"', f"{key}: {val}"]), val

    def quoted_phrase(rng: random.Random) -> Tuple[str, str]:
        phrase = " ".join(_rand(rng, ALNUM, 5) for _ in range(3))
        key = rng.choice(["password", "client_secret", "passphrase"])
        return rng.choice([f'"{key}": "{phrase}"', f"{key}='{phrase}'"]), phrase

    return [
        ("github_classic", ghp),
        ("github_fine_grained", gpat),
        ("gitlab", glpat),
        ("gitlab_runner", gr),
        ("azure_devops_pat_84", ado84),
        ("bitbucket_app_password", atbb),
        ("atlassian_token", atctt),
        ("aws_access_key_id", aws),
        ("jwt", jwt),
        ("private_key", pem),
        ("url_userinfo_password", url_pw),
        ("url_userinfo_token", url_token),
        ("authorization_header", auth_header),
        ("key_value", key_value),
        ("quoted_phrase", quoted_phrase),
    ]


# Surrounding text, including the false positives that must survive next to a secret.
FILLER = [
    "cloning",
    "repository",
    "synced",
    "token",
    "the token expired",
    "Authorization failed",
    "3f786850e387550fdab836ed7e6dc881de23001b",
    "123e4567-e89b-12d3-a456-426614174000",
    "git@github.com:org/repo.git",
    "https://github.com/org/repo.git",
    "max_tokens=100",
    "password_file=/etc/pw",
    "duration_ms=123.4",
    "café",
    "İstanbul",
    "42",
    "(HEAD -> main)",
]


def random_sentence(rng: random.Random, max_words: int = 6) -> str:
    return " ".join(rng.choice(FILLER) for _ in range(rng.randrange(max_words + 1)))


def embed(rng: random.Random, secret_text: str) -> Tuple[str, str, str]:
    """Return (prefix, suffix, full text) with the secret at a random word position."""
    prefix, suffix = random_sentence(rng), random_sentence(rng)
    parts = [p for p in (prefix, secret_text, suffix) if p]
    return prefix, suffix, " ".join(parts)


class TestProperty(unittest.TestCase):
    ITERATIONS = 400

    def test_random_secrets_never_survive(self) -> None:
        """Every secret kind at a random position in random text is masked; the rest is kept."""
        seed = int(
            os.environ.get("MGIT_MONITORING_TEST_SEED", random.SystemRandom().randrange(2**32))
        )
        rng = random.Random(seed)
        gens = secret_generators()
        for i in range(self.ITERATIONS):
            kind, gen = gens[i % len(gens)]
            secret_text, secret = gen(rng)
            prefix, suffix, text = embed(rng, secret_text)
            out = mask_credentials(text)
            where = f"seed={seed} iteration={i} kind={kind} text={text!r} out={out!r}"
            self.assertNotIn(secret, out, where)
            if prefix:
                self.assertTrue(out.startswith(prefix + " "), where)
            if suffix:
                self.assertTrue(out.endswith(" " + suffix), where)
            self.assertIn("***", out, where)


if __name__ == "__main__":
    unittest.main()
