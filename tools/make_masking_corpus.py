# ruff: noqa: E501  (the corpus templates read best as one line each)
"""Build the masking corpus: fake secrets in realistic mgit log lines, and ordinary lines.

Writes tests/data/masking/corpus.jsonl, one JSON record a line:

    {"group": "claimed" | "other" | "ordinary", "kind": "...", "context": "...",
     "text": "<one log message, may span lines>", "secrets": [[start, end], ...]}

``secrets`` are the character spans of ``text`` that must not survive masking (a public
prefix such as ``ghp_`` or ``ATBB`` is outside the span: keeping it is deliberate).
``ordinary`` records have no span and must come out of the masker byte-identical.

Every secret is generated here from a seeded ``random.Random`` in the provider's published
format (never a real credential); the same seed gives the same file, byte for byte
(tests/test_masking_corpus.py checks it). Usage:

    python3 tools/make_masking_corpus.py            # rewrite the corpus
    python3 tools/make_masking_corpus.py --check    # exit 1 when the file is stale
"""

from __future__ import annotations

import base64
import json
import os
import random
import string
import sys
from typing import Callable, Dict, List, Sequence, Tuple

SEED = 20240614
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "masking", "corpus.jsonl")

UP = string.ascii_uppercase
LO = string.ascii_lowercase
DIG = string.digits
ALNUM = UP + LO + DIG
B64 = ALNUM + "+/"
B64U = ALNUM + "-_"
HEX = "0123456789abcdef"
B32L = LO + "234567"

# A record under construction: a list of (text piece, is_secret).
Pieces = List[Tuple[str, bool]]


class Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.records: List[Dict[str, object]] = []

    # -- random helpers ------------------------------------------------------------------

    def s(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def mixed(self, alphabet: str, n: int) -> str:
        """n characters of ``alphabet`` with at least one upper, one lower and one digit
        (a real random token of this length has them; keeps the corpus honest)."""
        while True:
            v = self.s(alphabet, n)
            if all(
                any(test(c) for c in v)
                for test in (str.isupper, str.islower, str.isdigit)
                if any(test(c) for c in alphabet)
            ):
                return v

    def pick(self, seq: Sequence[str]) -> str:
        return self.rng.choice(list(seq))

    def repo(self) -> str:
        return f"{self.pick(['acme', 'contoso', 'example-org', 'infra', 'platform'])}/" + self.pick(
            ["api", "web", "mgit", "deploy-tools", "docs", "monorepo", "billing"]
        )

    def sha(self, n: int = 40) -> str:
        return self.s(HEX, n)

    def uuid(self) -> str:
        h = self.s(HEX, 32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def user(self) -> str:
        return self.pick(["jdoe", "build-bot", "ci", "alice", "svc_mgit", "deploy"])

    def password(self) -> str:
        return self.pick(["", "P@", "s3cr", "Hx", "pw-"]) + self.mixed(ALNUM + "!$%^*()_+-", 14)

    # -- output --------------------------------------------------------------------------

    def add(self, group: str, kind: str, context: str, pieces: Pieces) -> None:
        text, spans, pos = [], [], 0
        for piece, secret in pieces:
            if secret:
                spans.append([pos, pos + len(piece)])
            text.append(piece)
            pos += len(piece)
        self.records.append(
            {
                "group": group,
                "kind": kind,
                "context": context,
                "text": "".join(text),
                "secrets": spans,
            }
        )


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def b64u(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# ---------------------------------------------------------------------------------------
# Contexts: where a token travels in an mgit log line. Each takes (public prefix, secret)
# and returns pieces; the secret is glued to its prefix like the real token.
# ---------------------------------------------------------------------------------------

Context = Callable[[Gen, str, str], Pieces]


def _ctx_table() -> Dict[str, Context]:
    def plain(g: Gen, p: str, s: str) -> Pieces:
        return [
            (f"push to {g.repo()} failed: token {p}", False),
            (s, True),
            (" rejected (401)", False),
        ]

    def env(g: Gen, p: str, s: str) -> Pieces:
        var = g.pick(["GH_TOKEN", "GITLAB_TOKEN", "MGIT_TOKEN", "CI_JOB_TOKEN", "TOKEN"])
        return [(f"environment: HOME=/root {var}={p}", False), (s, True), (" LANG=C.UTF-8", False)]

    def clone_url(g: Gen, p: str, s: str) -> Pieces:
        user = g.pick(["x-access-token", "oauth2", "jdoe", "x-token-auth"])
        return [
            (f"running git clone https://{user}:{p}", False),
            (s, True),
            (f"@github.com/{g.repo()}.git", False),
        ]

    def token_url(g: Gen, p: str, s: str) -> Pieces:
        return [
            ("git remote set-url origin https://" + p, False),
            (s, True),
            (f"@github.com/{g.repo()}.git", False),
        ]

    def json_field(g: Gen, p: str, s: str) -> Pieces:
        key = g.pick(["token", "access_token", "private_token", "auth_token"])
        return [
            (f'{{"repo": "{g.repo()}", "{key}": "{p}', False),
            (s, True),
            ('", "ok": false}', False),
        ]

    def escaped_json(g: Gen, p: str, s: str) -> Pieces:
        return [
            ('api error body: {\\"message\\": \\"Bad credentials\\", \\"token\\": \\"' + p, False),
            (s, True),
            ('\\"}', False),
        ]

    def dict_header(g: Gen, p: str, s: str) -> Pieces:
        scheme = g.pick(["token ", "Bearer ", "bearer "])
        return [
            (
                f"request headers: {{'Accept': 'application/json', 'Authorization': '{scheme}{p}",
                False,
            ),
            (s, True),
            ("'}", False),
        ]

    def bytes_header(g: Gen, p: str, s: str) -> Pieces:
        return [
            (
                f"sent b'GET /repos/{g.repo()} HTTP/1.1\\r\\nHost: api.github.com\\r\\nAuthorization: token {p}",
                False,
            ),
            (s, True),
            ("\\r\\nUser-Agent: mgit\\r\\n\\r\\n'", False),
        ]

    def argv_flag(g: Gen, p: str, s: str) -> Pieces:
        flag = g.pick(["--token", "--pat", "--access-token", "--auth-token"])
        return [(f"argv: mgit sync {g.repo()} {flag} {p}", False), (s, True), (" --verbose", False)]

    def argv_list(g: Gen, p: str, s: str) -> Pieces:
        return [
            (f"argv=['mgit', 'push', '--token', '{p}", False),
            (s, True),
            ("', '--force']", False),
        ]

    def url_encoded(g: Gen, p: str, s: str) -> Pieces:
        return [
            ("GET /oauth/callback?redirect=https%3A%2F%2Fexample.com%2Fcb%3Ftoken%3D" + p, False),
            (s, True),
            ("%26state%3Dabc HTTP/1.1", False),
        ]

    def escaped_newline(g: Gen, p: str, s: str) -> Pieces:
        return [
            ('{"stderr": "remote: invalid credentials\\n' + p, False),
            (s, True),
            ('\\nfatal: Authentication failed"}', False),
        ]

    def k8s_env(g: Gen, p: str, s: str) -> Pieces:
        var = g.pick(["GITLAB_TOKEN", "GITHUB_TOKEN", "MGIT_PAT", "REGISTRY_PASSWORD"])
        return [
            (
                f'pod env: [{{"name": "LOG_LEVEL", "value": "debug"}}, {{"name": "{var}", "value": "{p}',
                False,
            ),
            (s, True),
            ('"}]', False),
        ]

    def xml(g: Gen, p: str, s: str) -> Pieces:
        tag = g.pick(["password", "token", "accessToken", "secret"])
        return [
            (f"settings.xml: <server><id>repo</id><username>ci</username><{tag}>{p}", False),
            (s, True),
            (f"</{tag}></server>", False),
        ]

    def traceback(g: Gen, p: str, s: str) -> Pieces:
        return [
            (
                'Traceback (most recent call last):\n  File "/usr/lib/mgit/sync.py", line 88, in push\n'
                f"    run(['git', 'push', url])\nsubprocess.CalledProcessError: Command '['git', 'push', "
                f"'https://ci:{p}",
                False,
            ),
            (s, True),
            (f"@gitlab.com/{g.repo()}.git']' returned non-zero exit status 128.", False),
        ]

    def walrus(g: Gen, p: str, s: str) -> Pieces:
        sep = g.pick([":=", "=>", "?="])
        key = g.pick(["token", "GH_TOKEN", "api_token"])
        return [(f"config {key} {sep} {p}", False), (s, True), ("", False)]

    return {
        "plain": plain,
        "env": env,
        "clone_url": clone_url,
        "token_url": token_url,
        "json": json_field,
        "escaped_json": escaped_json,
        "dict_header": dict_header,
        "bytes_header": bytes_header,
        "argv_flag": argv_flag,
        "argv_list": argv_list,
        "url_encoded": url_encoded,
        "escaped_newline": escaped_newline,
        "k8s_env": k8s_env,
        "xml": xml,
        "traceback": traceback,
        "separator": walrus,
    }


CONTEXTS = _ctx_table()
# Contexts where a key or header names the value, and the bare ones where only the token's
# shape can give it away.
BARE_CONTEXTS = ("plain", "url_encoded", "escaped_newline", "token_url")


def token_kinds(g: Gen) -> Dict[str, Callable[[], Tuple[str, str]]]:
    """kind -> () -> (public prefix kept by the masker, secret part)."""
    return {
        "github_classic_pat": lambda: ("ghp_", g.mixed(ALNUM, 36)),
        "github_oauth": lambda: ("gho_", g.mixed(ALNUM, 36)),
        "github_app_installation": lambda: ("ghs_", g.mixed(ALNUM, 36)),
        "github_app_user_to_server": lambda: ("ghu_", g.mixed(ALNUM, 36)),
        "github_refresh": lambda: ("ghr_", g.mixed(ALNUM, 76)),
        "github_fine_grained": lambda: (
            "github_pat_",
            "11" + g.mixed(UP + DIG, 20) + "_" + g.mixed(ALNUM, 59),
        ),
        "gitlab_pat": lambda: (
            g.pick(["glpat-", "gldt-", "glptt-", "glft-", "glcbt-"]),
            g.mixed(ALNUM + "_-", 20),
        ),
        "gitlab_routable": lambda: (
            g.pick(["glpat-", "glrt-", "gldt-"]),
            g.mixed(ALNUM + "_-", g.rng.randrange(27, 60)) + ".01." + g.s(LO + DIG, 9),
        ),
        "gitlab_runner_registration": lambda: ("GR1348941", g.mixed(ALNUM + "_-", 20)),
        "azure_devops_pat_84": lambda: (
            "",
            g.mixed(ALNUM, 52)
            + "JQQJ99"
            + g.pick("BCDEF")
            + g.pick("ABCDEFGHIJKL")
            + g.mixed(ALNUM, 16)
            + "AZDO"
            + g.mixed(ALNUM, 4),
        ),
        "bitbucket_app_password": lambda: ("ATBB", g.mixed(ALNUM, 24) + g.s(UP + DIG, 8)),
        "bitbucket_atbb_27": lambda: ("ATBB", g.mixed(ALNUM, 15) + g.s(UP + DIG, 8)),
        "atlassian_token": lambda: (
            g.pick(["ATATT3", "ATCTT3"]),
            "xFfGF0" + g.mixed(B64U, 170) + "=" + g.s("0123456789ABCDEF", 8),
        ),
        "aws_access_key_id": lambda: (g.pick(["AKIA", "ASIA"]), g.s(UP + "234567", 16)),
        "jwt": lambda: ("", jwt(g, signed=True)),
        "jwt_unsigned": lambda: ("", jwt(g, signed=False)),
        "azure_ad_client_secret": lambda: (
            "",
            g.mixed(ALNUM + "_~.", 3) + "8Q~" + g.mixed(ALNUM + "_~.-", 34),
        ),
    }


def jwt(g: Gen, signed: bool) -> str:
    head = b64u(json.dumps({"alg": "RS256" if signed else "none", "typ": "JWT"}))
    body = b64u(
        json.dumps(
            {
                "sub": g.user(),
                "iss": "https://token.actions.githubusercontent.com",
                "exp": g.rng.randrange(1700000000, 1800000000),
            }
        )
    )
    if signed:
        return f"{head}.{body}.{g.s(B64U, 43)}"
    return g.pick([f"{head}.{body}", f"{head}.{body}."])


OTHER_PROVIDERS: Dict[str, Callable[[Gen], Tuple[str, str]]] = {
    "slack_bot": lambda g: ("xoxb-", f"{g.s(DIG, 12)}-{g.s(DIG, 13)}-{g.mixed(ALNUM, 24)}"),
    "slack_user": lambda g: (
        "xoxp-",
        f"{g.s(DIG, 12)}-{g.s(DIG, 12)}-{g.s(DIG, 13)}-{g.s(HEX, 32)}",
    ),
    "slack_app": lambda g: ("xapp-", f"1-A{g.s(UP + DIG, 10)}-{g.s(DIG, 13)}-{g.s(HEX, 64)}"),
    "slack_webhook": lambda g: (
        "https://hooks.slack.com/services/",
        f"T{g.s(UP + DIG, 8)}/B{g.s(UP + DIG, 10)}/{g.mixed(ALNUM, 24)}",
    ),
    "stripe_secret": lambda g: (
        g.pick(["sk_live_", "sk_test_"]),
        g.mixed(ALNUM, 24 + g.rng.randrange(0, 76)),
    ),
    "stripe_restricted": lambda g: ("rk_live_", g.mixed(ALNUM, 24 + g.rng.randrange(0, 76))),
    "google_api_key": lambda g: ("AIza", g.mixed(ALNUM + "-_", 35)),
    "npm": lambda g: ("npm_", g.mixed(ALNUM, 36)),
    "pypi": lambda g: ("pypi-AgEIcHlwaS5vcmc", g.mixed(B64U, 70 + g.rng.randrange(0, 60))),
    "docker_hub_pat": lambda g: ("dckr_pat_", g.mixed(ALNUM + "-_", 27)),
    "sendgrid": lambda g: ("SG.", f"{g.mixed(B64U, 22)}.{g.mixed(B64U, 43)}"),
    "twilio_api_key": lambda g: ("SK", g.s(HEX, 32)),
    "openai": lambda g: (g.pick(["sk-proj-", "sk-"]), g.mixed(B64U, 48)),
    "anthropic": lambda g: ("sk-ant-api03-", g.mixed(B64U, 93) + "AA"),
    "huggingface": lambda g: ("hf_", g.mixed(UP + LO, 34)),
    "shopify": lambda g: (g.pick(["shpat_", "shpss_", "shpca_"]), g.s(HEX, 32)),
    "digitalocean": lambda g: (g.pick(["dop_v1_", "doo_v1_"]), g.s(HEX, 64)),
    "grafana_service_account": lambda g: ("glsa_", g.mixed(ALNUM, 32) + "_" + g.s(HEX, 8)),
    "hashicorp_vault": lambda g: ("hvs.", g.mixed(B64U, 90)),
    "postman": lambda g: ("PMAK-", f"{g.s(HEX, 24)}-{g.s(HEX, 34)}"),
    "mailgun": lambda g: ("key-", g.s(HEX, 32)),
    "linear": lambda g: ("lin_api_", g.mixed(ALNUM, 40)),
    "new_relic": lambda g: ("NRAK-", g.s(UP + DIG, 27)),
    "sentry_auth": lambda g: ("sntrys_", g.mixed(B64U, 60)),
}


def private_key_block(
    g: Gen, label: str, lines: int, width: int, lower: bool = False
) -> Tuple[str, List[str]]:
    first = {
        "RSA ": "MIIEpAIBAAKCAQEA",
        "OPENSSH ": "b3BlbnNzaC1rZXktdjEAAAAA",
        "EC ": "MHcCAQEEI",
        "": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
    }.get(label, "MII")
    body = (
        [first + g.s(B64, width - len(first))]
        + [g.s(B64, width) for _ in range(lines - 2)]
        + [g.s(B64, g.rng.randrange(12, width - 4)) + g.pick(["", "=", "=="])]
    )
    begin, end = f"-----BEGIN {label}PRIVATE KEY-----", f"-----END {label}PRIVATE KEY-----"
    if lower:
        begin, end = begin.lower(), end.lower()
    return begin + "\n" + "\n".join(body) + "\n" + end, body


def build(seed: int = SEED) -> List[Dict[str, object]]:
    g = Gen(seed)
    kinds = token_kinds(g)
    ctx_names = sorted(CONTEXTS)

    # 1. Provider-shaped tokens of the catalogue's kinds, in every context.
    for kind in sorted(kinds):
        for ctx in ctx_names:
            for _ in range(2):
                p, s = kinds[kind]()
                g.add("claimed", kind, ctx, CONTEXTS[ctx](g, p, s))
        # JWTs also travel as "Bearer%20eyJ..." (URL-encoded header in a query or a trace).
        if kind.startswith("jwt"):
            for _ in range(6):
                _, s = kinds[kind]()
                g.add(
                    "claimed",
                    kind,
                    "bearer_urlencoded",
                    [
                        ("GET /proxy?auth=Bearer%20", False),
                        (s, True),
                        ("&next=%2F HTTP/1.1", False),
                    ],
                )

    # 2. Azure DevOps legacy 52-char PATs: with a key, in Basic auth, and bare.
    for i in range(40):
        pat = g.s(B32L, 52)
        while not any(c.isdigit() for c in pat):
            pat = g.s(B32L, 52)
        ctx = i % 8
        if ctx == 0:
            g.add(
                "claimed",
                "azure_devops_pat_52",
                "env",
                [("AZURE_DEVOPS_EXT_PAT=", False), (pat, True)],
            )
        elif ctx == 1:
            g.add(
                "claimed",
                "azure_devops_pat_52",
                "bare_echo",
                [
                    ("running: echo ", False),
                    (pat, True),
                    (" | az devops login --organization https://dev.azure.com/contoso", False),
                ],
            )
        elif ctx == 2:
            g.add(
                "claimed",
                "azure_devops_pat_52",
                "json",
                [('{"pat": "', False), (pat, True), ('", "org": "contoso"}', False)],
            )
        elif ctx == 3:
            cred = b64(":" + pat)
            g.add(
                "claimed",
                "azure_devops_pat_52",
                "basic_dict",
                [
                    ("headers={'Authorization': 'Basic ", False),
                    (cred, True),
                    ("', 'Accept': 'application/json'}", False),
                ],
            )
        elif ctx == 4:
            g.add(
                "claimed",
                "azure_devops_pat_52",
                "clone_url",
                [
                    ("git clone https://contoso:", False),
                    (pat, True),
                    ("@dev.azure.com/contoso/proj/_git/repo", False),
                ],
            )
        elif ctx == 5:
            g.add(
                "claimed",
                "azure_devops_pat_52",
                "token_url",
                [
                    ("git fetch https://", False),
                    (pat, True),
                    ("@dev.azure.com/contoso/proj/_git/repo", False),
                ],
            )
        elif ctx == 6:
            cred = b64("user:" + pat)
            g.add(
                "claimed",
                "azure_devops_pat_52",
                "extraheader",
                [
                    ('git -c http.extraHeader="AUTHORIZATION: basic ', False),
                    (cred, True),
                    ('" fetch origin', False),
                ],
            )
        else:
            g.add(
                "claimed",
                "azure_devops_pat_52",
                "plain",
                [("using personal access token ", False), (pat, True), (" for contoso", False)],
            )

    # 3. AWS secret access keys under many key names.
    aws_keys = [
        "aws_secret_access_key",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SECRET_KEY",
        "secret_key",
        "SecretAccessKey",
        "aws_secret",
        "secretAccessKey",
        "AWS_SECRET",
        "s3_secret_key",
        "secret-access-key",
    ]
    for i in range(60):
        key = aws_keys[i % len(aws_keys)]
        sk = g.mixed(B64, 40)
        akid = "AKIA" + g.s(UP + "234567", 16)
        form = i % 5
        if form == 0:
            pieces: Pieces = [(f"{key}=", False), (sk, True)]
        elif form == 1:
            pieces = [
                (f'{{"AccessKeyId": "{akid[:4]}', False),
                (akid[4:], True),
                (f'", "{key}": "', False),
                (sk, True),
                ('"}', False),
            ]
        elif form == 2:
            pieces = [(f"{key}: ", False), (sk, True)]
        elif form == 3:
            pieces = [(f"export {key}='", False), (sk, True), ("'", False)]
        else:
            pieces = [
                (f"aws credentials loaded: {akid[:4]}", False),
                (akid[4:], True),
                (" / ", False),
                (sk, True),
            ]
        g.add("claimed", "aws_secret_access_key", f"form{form}", pieces)

    # 4. Private keys: PEM blocks, lowercase markers, OpenSSH, PuTTY, truncated, line by line.
    for i in range(30):
        label = ["RSA ", "EC ", "OPENSSH ", "", "DSA ", "ENCRYPTED "][i % 6]
        block, body = private_key_block(
            g, label, 4 + i % 5, 70 if label == "OPENSSH " else 64, lower=(i % 4 == 3)
        )
        text_pieces: Pieces = [("ssh-add failed for key:\n", False)]
        rest = block
        for line in body:
            before, _, rest = rest.partition(line)
            text_pieces += [(before, False), (line, True)]
        text_pieces.append((rest + "\nexit status 1", False))
        g.add(
            "claimed",
            "private_key_lowercase" if i % 4 == 3 else "private_key",
            label.strip().lower() or "pkcs8",
            text_pieces,
        )
    for _ in range(12):
        block, body = private_key_block(g, "RSA ", 6, 64)
        cut = body[0][:40]
        g.add(
            "claimed",
            "private_key_truncated",
            "truncated",
            [("git: error: key too long: -----BEGIN RSA PRIVATE KEY-----\n", False), (cut, True)],
        )
    for _ in range(12):
        pub = [g.s(B64, 64) for _ in range(2)]
        priv = [g.s(B64, 64) for _ in range(3)] + [g.s(B64, 20) + "="]
        mac = g.s(HEX, 64)
        pieces = [
            (
                "loaded key file:\nPuTTY-User-Key-File-3: ssh-rsa\nEncryption: none\nComment: rsa-key-20240101\n"
                f"Public-Lines: 2\n{pub[0]}\n{pub[1]}\nPrivate-Lines: 4\n",
                False,
            )
        ]
        for line in priv:
            pieces += [(line, True), ("\n", False)]
        pieces += [("Private-MAC: ", False), (mac, True)]
        g.add("claimed", "private_key_putty", "putty", pieces)
    for i in range(
        10
    ):  # a key body logged one line per record (a subprocess' stderr, line by line)
        label = ["RSA ", "OPENSSH ", ""][i % 3]
        block, body = private_key_block(
            g, label, 6, 70 if label == "OPENSSH " else 64, lower=(i % 5 == 4)
        )
        for line in block.split("\n"):
            if line in body:  # the BEGIN/END marker records carry no secret
                g.add("claimed", "private_key_line_by_line", "line", [(line, True)])

    # 5. Secrets in context (no provider shape): URLs, headers, key=value, argv, etc.
    hosts = [
        "github.com",
        "gitlab.example.com",
        "dev.azure.com/contoso/proj/_git",
        "bitbucket.org",
        "git.internal:8443",
    ]
    for i in range(80):
        pw = g.password().replace("@", "").replace("/", "").replace("?", "").replace("#", "")
        user = g.user()
        host = hosts[i % len(hosts)]
        form = i % 4
        if form == 0:
            g.add(
                "claimed",
                "url_userinfo_password",
                "clone",
                [
                    (f"git clone https://{user}:", False),
                    (pw, True),
                    (f"@{host}/{g.repo()}.git", False),
                ],
            )
        elif form == 1:
            g.add(
                "claimed",
                "url_userinfo_password",
                "quoted",
                [
                    (f"remote.origin.url='https://{user}:", False),
                    (pw, True),
                    (f"@{host}/repo.git'", False),
                ],
            )
        elif form == 2:
            g.add(
                "claimed",
                "url_userinfo_password",
                "query",
                [
                    (f"fetching https://{user}:", False),
                    (pw, True),
                    (f"@{host}/repo.git?ref=main#readme", False),
                ],
            )
        else:
            g.add(
                "claimed",
                "url_userinfo_password",
                "proxy",
                [(f"HTTPS_PROXY=http://{user}:", False), (pw, True), ("@proxy.corp:3128 ", False)],
            )
    for _ in range(30):
        tok = g.mixed(ALNUM, 40)
        g.add(
            "claimed",
            "url_userinfo_token",
            "remote",
            [
                ("origin\thttps://", False),
                (tok, True),
                (f"@github.com/{g.repo()}.git (fetch)", False),
            ],
        )

    header_forms = [
        ("Authorization: Basic {v}", "curl_verbose"),
        ("> Authorization: Bearer {v}", "curl_verbose"),
        ("{{'Authorization': 'Basic {v}'}}", "dict"),
        ('{{"Authorization": "Bearer {v}"}}', "json"),
        ("headers=[('Authorization', 'token {v}')]", "tuple_list"),
        ("b'POST /api HTTP/1.1\\r\\nAuthorization: Basic {v}\\r\\n\\r\\n'", "bytes"),
        ("Proxy-Authorization: Basic {v}", "proxy"),
        ('git -c http.extraheader="Authorization: Bearer {v}" clone', "extraheader"),
        ("curl -H 'Authorization: token {v}' https://api.github.com/user", "curl"),
        ("request: {{'headers': {{'authorization': 'Bearer {v}'}}}}", "nested_dict"),
    ]
    for i in range(60):
        tmpl, ctx = header_forms[i % len(header_forms)]
        if "Basic" in tmpl:
            v = b64(f"{g.user()}:{g.password()}")
        else:
            v = g.mixed(ALNUM + "-._~", 32)
        pre, _, post = tmpl.partition("{v}")
        pre, post = (
            pre.replace("{{", "{").replace("}}", "}"),
            post.replace("{{", "{").replace("}}", "}"),
        )
        g.add("claimed", "authorization_header", ctx, [(pre, False), (v, True), (post, False)])
    for _ in range(20):
        v = g.mixed(ALNUM + "-._", 40)
        g.add(
            "claimed",
            "bearer_token",
            "bare_bearer",
            [
                (g.pick(["using Bearer ", "auth=Bearer ", "retrying with bearer "]), False),
                (v, True),
                (g.pick([" (expired)", "", " for api.github.com"]), False),
            ],
        )

    kv_keys = [
        "password",
        "GIT_PASSWORD",
        "client_secret",
        "SECRET_KEY",
        "DB_PASS",
        "pass",
        "auth",
        "creds",
        "_auth",
        "api_key",
        "apiKey",
        "X-Api-Key",
        "private_token",
        "PASSWORD",
        "db_password",
        "smtp_pass",
        "REGISTRY_PASSWORD",
        "secret",
        "passphrase",
        "GIT_CREDS",
        "django_secret_key",
        "access_token",
        "refresh_token",
        "credentials",
        "mysql_pwd",
        "pwd",
    ]
    kv_forms = [
        ("{k}={v}", "env"),
        ('"{k}": "{v}"', "json"),
        ("'{k}': '{v}'", "repr"),
        ("{k}: {v}", "yaml"),
        ("{k} := {v}", "walrus"),
        ('"{k}" => "{v}"', "fat_arrow"),
        ("{k} ?= {v}", "make"),
        ('{{\\"{k}\\": \\"{v}\\"}}', "escaped_json"),
        ("<{k}>{v}</{k}>", "xml"),
        ("{k}={v}&page=2", "query"),
    ]
    for i in range(len(kv_keys) * len(kv_forms)):
        k = kv_keys[i % len(kv_keys)]
        tmpl, ctx = kv_forms[(i // len(kv_keys) + i) % len(kv_forms)]
        if ctx == "xml" and not k.replace("_", "").isalnum():
            tmpl, ctx = kv_forms[0]
        v = g.password() if i % 3 else g.mixed(ALNUM, 24)
        v = v.replace("&", "").replace("<", "")
        pre, _, post = tmpl.partition("{v}")
        pre = pre.replace("{k}", k).replace("{{", "{")
        post = post.replace("{k}", k).replace("}}", "}")
        lead = g.pick(["config loaded: ", "settings ", "env: ", "", "debug: payload="])
        g.add("claimed", "key_value", ctx, [(lead + pre, False), (v, True), (post, False)])

    for i in range(40):
        v = g.password()
        form = i % 8
        if form == 0:
            pieces = [("argv: mgit login --password ", False), (v, True), (" --user ci", False)]
        elif form == 1:
            pieces = [
                ("exec: docker login -u ci -p ", False),
                (v, True),
                (" registry.example.com", False),
            ]
        elif form == 2:
            pieces = [
                (f"running: curl -u {g.user()}:", False),
                (v, True),
                (" https://api.bitbucket.org/2.0/user", False),
            ]
        elif form == 3:
            pieces = [("argv=['mgit', 'login', '--password', '", False), (v, True), ("']", False)]
        elif form == 4:
            pieces = [("cmd: mysql -h db -u mgit -p", False), (v, True), (" mgit_state", False)]
        elif form == 5:
            pieces = [("argv: mgit clone --secret=", False), (v, True), (" acme/web", False)]
        elif form == 6:
            pieces = [
                ("running: curl --user ci:", False),
                (v, True),
                (" -X POST https://ci.example.com/job", False),
            ]
        else:
            pieces = [("argv: mgit sync --api-key ", False), (v, True), ("", False)]
        g.add("claimed", "argv_secret", f"form{form}", pieces)

    for _ in range(20):
        cred = b64(f"{g.user()}:{g.password()}")
        g.add(
            "claimed",
            "docker_config_auth",
            "config",
            [
                ('{"auths": {"registry.example.com": {"auth": "', False),
                (cred, True),
                ('"}}}', False),
            ],
        )
        var = g.pick(
            ["GITLAB_TOKEN", "DB_PASSWORD", "API_KEY", "AZURE_DEVOPS_EXT_PAT", "SECRET_KEY"]
        )
        v = g.mixed(ALNUM, 28)
        g.add(
            "claimed",
            "kubernetes_env",
            "pod_spec",
            [
                (
                    f'container env: [{{"name": "HOME", "value": "/root"}}, {{"name": "{var}", "value": "',
                    False,
                ),
                (v, True),
                ('"}]', False),
            ],
        )

    # 6. Providers outside the catalogue, half bare, half behind a key.
    for kind in sorted(OTHER_PROVIDERS):
        for ctx in (
            "plain",
            "env",
            "json",
            "url_encoded",
            "escaped_newline",
            "argv_flag",
            "dict_header",
            "separator",
        ):
            for _ in range(2):
                p, s = OTHER_PROVIDERS[kind](g)
                if kind == "slack_webhook":
                    g.add(
                        "other",
                        kind,
                        ctx,
                        [("posting to " + p, False), (s, True), (" failed: 404", False)],
                    )
                    continue
                g.add("other", kind, ctx, CONTEXTS[ctx](g, p, s))

    # 7. Ordinary lines: must come out byte-identical.
    ordinary(g)
    return g.records


def ordinary(g: Gen) -> None:
    def add(ctx: str, text: str) -> None:
        g.add("ordinary", ctx, ctx, [(text, False)])

    for _ in range(30):
        home = g.pick(["/home/runner", "/home/jdoe", "/root", "/var/lib/mgit"])
        add("env_pwd", f"PWD={home}/work/{g.repo()}")
        add("env_pwd", f"OLDPWD={home}")
        add("env_pwd", f"env: HOME={home} PWD={home}/src OLDPWD={home} SHELL=/bin/bash")
        add("env_empty", f"GH_TOKEN=\nGIT_TERMINAL_PROMPT=0\nPWD={home}")
        add("env_empty", f"GITLAB_TOKEN=\nCI_PROJECT_DIR={home}/build")
    for _ in range(20):
        f = g.pick(
            [
                "/etc/passwd",
                "/etc/shadow",
                "/home/ci/.git-credentials",
                "/run/secrets/token",
                "/etc/mgit/secret_key.pem",
            ]
        )
        add("path", f"cat: {f}: Permission denied")
        add("path", f"open {f}: no such file or directory")
        add(
            "path",
            f"read {g.pick(['/var/run/secrets/kubernetes.io/serviceaccount/token', '/home/ci/.ssh/id_rsa', '/tmp/password.txt'])} ok",
        )
    for _ in range(20):
        add(
            "boolean_flag",
            f"options: use_token={g.pick(['True', 'False'])} require_password={g.pick(['false', 'true'])} verify_ssl=True",
        )
        add(
            "boolean_flag",
            f'{{"use_token": {g.pick(["true", "false"])}, "require_password": false, "token_ttl": {g.rng.randrange(60, 3600)}}}',
        )
        add(
            "boolean_flag",
            f"auth_required=None secret_scanning=enabled token_count={g.rng.randrange(100)}",
        )
    subjects = [
        "password: enforce minimum length",
        "token: refresh before expiry",
        "auth: retry on 401 with backoff",
        "secret scanning: ignore vendored files",
        "Fix token refresh race",
        "docs: explain how to rotate the password",
        "credentials: read from the keychain first",
    ]
    for _ in range(40):
        add("commit_subject", f"{g.sha(7)} {g.pick(subjects)}")
        add(
            "commit_subject",
            f"commit {g.sha()}\nAuthor: Jane Doe <jane@example.com>\n\n    {g.pick(subjects)}",
        )
    for _ in range(25):
        port = g.pick(["8080", "8443", "3000", "443"])
        add("url_port_query", f"GET https://git.example.com:{port}?next=/login@team&ref=main")
        add("url_port_query", f"opening https://docs.example.com:{port}#contact@support")
        add("url_port_query", f"redirect to http://localhost:{port}/?email=jane@example.com")
        add("url_port_query", f"remote https://github.com:{port}/{g.repo()}.git")
    for _ in range(40):
        add("sha", f"commit {g.sha()} (HEAD -> main, origin/main)")
        add("sha", f"object {g.sha(64)} type commit")
        add("sha", f"{g.sha(7)}..{g.sha(7)}  main -> main")
        add("sha", g.sha())
        add("uuid", f"correlation_id={g.uuid()} span_id={g.sha(16)}")
        add("uuid", f"traceparent 00-{g.sha(32)}-{g.sha(16)}-01")
    for _ in range(25):
        payload = g.pick(
            ["hello world", "README updated", "version: 1.2.3", '{"a": 1}', "line one\nline two"]
        )
        add("base64_nonsecret", f"blob content (base64): {b64(payload)}")
        add(
            "base64_nonsecret",
            f'{{"encoding": "base64", "content": "{b64(payload + g.s(LO, 5))}"}}',
        )
        add("base64_nonsecret", f"image digest sha256:{g.sha(64)}")
    for _ in range(25):
        r = g.repo()
        add("remote", f"remote git@github.com:{r}.git")
        add("remote", f"remote ssh://git@gitlab.com/{r}.git")
        add("remote", f"remote https://contoso@dev.azure.com/contoso/proj/_git/{r.split('/')[1]}")
        add("remote", f"fetch https://github.com/{r}.git")
        add("email", f"Author: {g.user()} <{g.user()}@example.com>")
    prose = [
        "Authorization failed for https://github.com/{r}.git",
        "Invalid token for org acme; the token expired",
        "the bearer token was rejected; refreshing",
        "Enter password for https://github.com:",
        "stats token_count={n} max_tokens=100 password_file=/etc/pw secret_name=deploy key_id=abc123",
        "git-credential: no password found for {r}",
        "remote: Support for password authentication was removed on August 13, 2021.",
        "synced {r} in {n} ms",
        "branch refs/heads/feature/ghp-migration",
        "ssh -p 2222 git@git.example.com",
        "mkdir -p /var/lib/mgit/{r}",
        "git log -p --stat HEAD~{n}",
        "path /home/runner/work/repo/repo/.git/objects/pack",
        "token endpoint https://login.microsoftonline.com/common/oauth2/v2.0/token",
        "using credential helper 'store' for github.com",
        "skip-token-check: true",
        "pass {n} of 3 complete",
        "secret_name=prod-db secret_version={n}",
        "installed sk-learn==1.{n} and npm_config_cache=/root/.npm",
        "legacy-looking abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz",
        "api_key_id=key-{n} api_key_name=deploy",
    ]
    for _ in range(12):
        for tmpl in prose:
            add("prose", tmpl.format(r=g.repo(), n=g.rng.randrange(1, 500)))


def dump(records: List[Dict[str, object]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)


def main(argv: List[str]) -> int:
    text = dump(build())
    if "--check" in argv:
        with open(OUT, encoding="utf-8") as f:
            if f.read() != text:
                print(f"{OUT} is stale: run python3 tools/make_masking_corpus.py", file=sys.stderr)
                return 1
        return 0
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {OUT}: {text.count(chr(10))} records")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
