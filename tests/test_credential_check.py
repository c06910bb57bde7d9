"""The credential check: configured credentials by name, validation against a loopback server."""

from __future__ import annotations

import io
import json
import logging
import os
import unittest

from mgit_monitoring.credential_check import (
    AuthenticationCheck,
    ConfiguredProvider,
    configured_providers,
    credential_api_urls,
    default_mgit_config_path,
)
from mgit_monitoring.default_checks import register_default_checks
from mgit_monitoring.health import (
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    HealthChecker,
    health_to_dict,
    to_health_json,
)
from mgit_monitoring.network_checks import DEFAULT_PROVIDER_ENDPOINTS
from tests.support import (
    ADO_PAT,
    BB_PASSWORD,
    GH_TOKEN,
    ProviderApiCase,
    TempDirCase,
    basic_auth,
    closed_port,
)

POSIX = os.name == "posix"
ALL_ENV = {
    "GITHUB_TOKEN": GH_TOKEN,
    "AZURE_DEVOPS_EXT_PAT": ADO_PAT,
    "BITBUCKET_APP_PASSWORD": BB_PASSWORD,
    "BITBUCKET_USERNAME": "me",
}


class LoopbackCase(ProviderApiCase):
    """The provider API server with the credential check pointed at its routes."""

    def urls(self, github="gh-ok", azure="org-ok", bitbucket="bb"):
        return {
            "github": f"{self.base}/{github}",
            "azure_devops": f"{self.base}/{azure}",
            "bitbucket": f"{self.base}/{bitbucket}",
        }

    def check(self, environ, validate=True, config_path=None, **urls):
        return AuthenticationCheck(
            environ, config_path, validate=validate, api_urls=self.urls(**urls), timeout=5
        )

    def paths(self):
        return sorted(path for path, _auth in self.server.seen)


class TestAuthentication(TempDirCase):
    SECRET = "ghp_" + "S3CR3T" * 6

    def test_env_credentials_are_named_not_shown(self):
        """A token in the environment counts, and only the variable name is reported."""
        check = AuthenticationCheck({"GITHUB_TOKEN": self.SECRET}, config_path=None)
        result = check()
        self.assertEqual(result.status, HEALTHY)
        self.assertEqual(result.details["providers_configured"], ["github"])
        self.assertEqual(result.details["credential_sources"]["github"], ["env:GITHUB_TOKEN"])
        self.assertNotIn(self.SECRET, json.dumps(result.to_dict()))

    def test_no_mgit_config_yet_is_healthy(self):
        """No mgit config and no credential variable: nothing to authenticate, healthy, said so."""
        missing = os.path.join(self.tmp, "none.yaml")
        result = AuthenticationCheck({}, config_path=missing)()
        self.assertEqual(result.status, HEALTHY)
        self.assertIn(f"no mgit config at {missing}", result.message)
        self.assertFalse(result.details["config_file_exists"])
        empty = self.write("empty.yaml", "global:\n  log_level: INFO\n", mode=0o600)
        result = AuthenticationCheck({}, config_path=empty)()
        self.assertEqual(result.status, HEALTHY)
        self.assertIn("names no provider", result.message)

    def test_providers_without_credentials_degrade(self):
        """mgit's config names providers but none has a credential: degraded, names them."""
        path = self.write(
            "config.yaml",
            "providers:\n  work:\n    url: https://dev.azure.com/org\n    token: ''\n",
            mode=0o600,
        )
        result = AuthenticationCheck({}, config_path=path)()
        self.assertEqual(result.status, DEGRADED)
        self.assertIn("work", result.message)

    def test_configured_providers(self):
        """configured_providers lists name, kind and URL; Server and Enterprise URLs included."""
        path = self.write(
            "config.yaml",
            "global:\n  default_provider: ghe\n"
            "providers:\n"
            "  ghe:\n    url: https://git.corp.example\n    user: me\n    token: t1\n"
            "  tfs:\n    url: https://tfs.corp.example/tfs/DefaultCollection\n"
            "    user: me\n    token: t2\n"
            "  bbs:\n    type: bitbucket\n    url: https://bitbucket.corp.example\n"
            "    token: t3\n"
            "  cloud:\n    username: me\n    app_password: t4\n",
            mode=0o600,
        )
        self.assertEqual(
            configured_providers(path),
            [
                ConfiguredProvider("ghe", "github", "https://git.corp.example"),
                ConfiguredProvider(
                    "tfs", "azure_devops", "https://tfs.corp.example/tfs/DefaultCollection"
                ),
                ConfiguredProvider("bbs", "bitbucket", "https://bitbucket.corp.example"),
                ConfiguredProvider("cloud", "bitbucket", ""),
            ],
        )
        self.assertEqual(configured_providers(os.path.join(self.tmp, "missing.yaml")), [])

    def test_mgit_config_file(self):
        """Providers in mgit's config.yaml are detected by URL and keys; values are never shown."""
        path = self.write(
            "config.yaml",
            "global:\n  default_provider: work\n"
            "providers:\n"
            "  work:\n    url: https://dev.azure.com/myorg\n    user: me\n"
            f"    token: '{self.SECRET}'\n"
            "  personal:\n    url: https://github.com/me\n    token: ''\n"
            "  bb:\n    username: me\n    app_password: ATBBxyz  # comment\n",
            mode=0o600,
        )
        result = AuthenticationCheck({}, config_path=path)()
        self.assertEqual(result.status, HEALTHY)
        self.assertEqual(result.details["providers_configured"], ["azure_devops", "bitbucket"])
        self.assertEqual(result.details["credential_sources"]["azure_devops"], ["config:work"])
        self.assertEqual(result.details["provider_details"]["github"], "none")
        text = json.dumps(result.to_dict())
        self.assertNotIn(self.SECRET, text)
        self.assertNotIn("ATBBxyz", text)

    @unittest.skipIf(not POSIX, "POSIX permissions")
    def test_world_readable_config_degrades(self):
        """A config file holding tokens that others can read is degraded with the fix."""
        path = self.write("config.yaml", "providers:\n  gh:\n    token: abc\n", mode=0o644)
        result = AuthenticationCheck({}, config_path=path)()
        self.assertEqual(result.status, DEGRADED)
        self.assertIn("chmod 600", result.message)

    def test_default_config_path(self):
        """mgit's config path honours MGIT_CONFIG_PATH, else ~/.config/mgit/config.yaml."""
        self.assertEqual(default_mgit_config_path({"MGIT_CONFIG_PATH": "/x.yaml"}), "/x.yaml")
        self.assertEqual(
            default_mgit_config_path({"HOME": "/home/u"}),
            os.path.join("/home/u", ".config", "mgit", "config.yaml"),
        )


class TestCredentialValidation(LoopbackCase):
    def test_off_by_default_sends_nothing(self):
        """Without validation the check only names credentials: the server sees no request."""
        result = self.check(ALL_ENV, validate=False)()
        self.assertEqual(result.status, HEALTHY)
        self.assertFalse(result.details["validation_enabled"])
        self.assertNotIn("validation", result.details)
        checker = HealthChecker()
        register_default_checks(
            checker,
            environ=ALL_ENV,
            state_dir=self.tmp,
            network=False,
            providers=False,
            credential_urls=self.urls(),
            mgit_config_path=os.path.join(self.tmp, "none.yaml"),
        )
        self.assertEqual(checker.run_check_sync("authentication_status").status, HEALTHY)
        self.assertEqual(self.server.seen, [])

    def test_valid_credentials_are_healthy(self):
        """Each provider gets one request with its own auth scheme; all valid is healthy."""
        result = self.check(ALL_ENV)()
        self.assertEqual(result.status, HEALTHY, result.message)
        validation = result.details["validation"]
        self.assertEqual(
            {p: v["status"] for p, v in validation.items()},
            {"github": "valid", "azure_devops": "valid", "bitbucket": "valid"},
        )
        self.assertEqual(validation["github"]["rate_limit_remaining"], 4999)
        self.assertEqual(validation["github"]["source"], "env:GITHUB_TOKEN")
        self.assertEqual(
            sorted(self.server.seen),
            [
                ("/bb/2.0/user", basic_auth("me", BB_PASSWORD)),
                ("/gh-ok/rate_limit", "Bearer " + GH_TOKEN),
                ("/org-ok/_apis/connectionData", basic_auth("", ADO_PAT)),
            ],
        )
        self.assertIn("github valid", result.message)

    def test_github_401_alone_is_unhealthy(self):
        """A rejected token with no other usable provider is unhealthy and says HTTP 401."""
        result = self.check({"GITHUB_TOKEN": GH_TOKEN}, github="gh-bad")()
        self.assertEqual(result.status, UNHEALTHY)
        self.assertEqual(result.details["validation"]["github"]["status"], "invalid")
        self.assertEqual(result.details["validation"]["github"]["http_status"], 401)
        self.assertIn("401", result.message)
        self.assertEqual(result.details["validation"]["bitbucket"], {"status": "not_configured"})

    def test_one_invalid_next_to_a_valid_one_degrades(self):
        """One rejected credential while another provider works is degraded."""
        env = {"GITHUB_TOKEN": GH_TOKEN, "BITBUCKET_APP_PASSWORD": "wrong", "BITBUCKET_USER": "me"}
        result = self.check(env)()
        self.assertEqual(result.status, DEGRADED)
        self.assertEqual(result.details["validation"]["bitbucket"]["status"], "invalid")
        self.assertEqual(result.details["validation"]["github"]["status"], "valid")

    def test_azure_sign_in_answers_are_invalid(self):
        """Azure DevOps' HTTP 203 sign-in page, HTML 200 and a redirect all mean invalid."""
        env = {"AZURE_DEVOPS_EXT_PAT": ADO_PAT}
        for route in ("org-203", "org-html", "org-redirect"):
            with self.subTest(route=route):
                result = self.check(env, azure=route)()
                report = result.details["validation"]["azure_devops"]
                self.assertEqual(report["status"], "invalid")
                self.assertEqual(result.status, UNHEALTHY)
                self.assertIn("sign", report["error"])
        self.assertEqual(
            self.check(env, azure="org-203")().details["validation"]["azure_devops"]["http_status"],
            203,
        )
        self.assertNotIn("/in", self.paths())  # the redirect was not followed

    def test_unreachable_degrades_with_a_message(self):
        """A provider that cannot be reached gives no verdict: degraded, with the reason."""
        check = AuthenticationCheck(
            {"GITHUB_TOKEN": GH_TOKEN},
            validate=True,
            api_urls={"github": f"http://127.0.0.1:{closed_port()}"},
            timeout=2,
        )
        result = check()
        self.assertEqual(result.status, DEGRADED)
        report = result.details["validation"]["github"]
        self.assertEqual(report["status"], "unreachable")
        self.assertTrue(report["error"])
        self.assertIn("github unreachable (", result.message)

    def test_no_verdict_answers_are_unreachable(self):
        """Rate limiting, a 5xx and HTML from GitHub give no verdict on the token."""
        env = {"GITHUB_TOKEN": GH_TOKEN}
        for route, words in (
            ("gh-limited", "rate limited"),
            ("gh-down", "503"),
            ("gh-html", "expected JSON"),
        ):
            with self.subTest(route=route):
                result = self.check(env, github=route)()
                self.assertEqual(result.status, DEGRADED)
                self.assertEqual(result.details["validation"]["github"]["status"], "unreachable")
                self.assertIn(words, result.details["validation"]["github"]["error"])

    def test_bitbucket_403_is_valid_without_scope(self):
        """Bitbucket's 403 means the credential works but lacks the account scope."""
        env = {"BITBUCKET_APP_PASSWORD": BB_PASSWORD, "BITBUCKET_USERNAME": "me"}
        result = self.check(env, bitbucket="bb-scope")()
        self.assertEqual(result.status, HEALTHY)
        self.assertIn("scope", result.details["validation"]["bitbucket"]["note"])

    def test_github_token_expiry_is_reported(self):
        """GitHub's token expiration header is passed on (it is not a secret)."""
        result = self.check({"GH_TOKEN": GH_TOKEN}, github="gh-expiring")()
        self.assertEqual(result.details["validation"]["github"]["expires"], "2031-01-01 UTC")
        self.assertEqual(result.details["validation"]["github"]["source"], "env:GH_TOKEN")

    def test_secrets_never_in_results_or_logs(self):
        """Valid, invalid and unreachable outcomes leak no secret into JSON or log output."""
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        # The root logger catches everything that propagates; the runner's own logger is
        # tapped directly because other test modules stop it from propagating.
        for logger in (logging.getLogger(), logging.getLogger("mgit_monitoring.health")):
            self.addCleanup(logger.setLevel, logger.level)
            self.addCleanup(logger.removeHandler, handler)
            logger.setLevel(logging.DEBUG)
            logger.addHandler(handler)
        env = dict(ALL_ENV, AZURE_DEVOPS_ORG_URL=f"{self.base}/org-203")
        checker = HealthChecker()
        urls = {"github": self.base + "/gh-ok", "bitbucket": f"http://127.0.0.1:{closed_port()}"}
        checker.register_check(
            "authentication_status",
            AuthenticationCheck(env, None, validate=True, api_urls=urls, timeout=2),
        )
        results = checker.run_checks_sync()
        states = {p: v["status"] for p, v in results[0].details["validation"].items()}
        self.assertEqual(
            states, {"github": "valid", "azure_devops": "invalid", "bitbucket": "unreachable"}
        )
        text = json.dumps(health_to_dict(results)) + json.dumps(to_health_json(results))
        text += repr(results) + stream.getvalue()
        self.assertIn("authentication_status", stream.getvalue())  # the log did get the result
        for secret in (GH_TOKEN, ADO_PAT, BB_PASSWORD):
            self.assertNotIn(secret, text)
        for header in (basic_auth("", ADO_PAT), basic_auth("me", BB_PASSWORD)):
            self.assertNotIn(header.split()[1], text)

    def test_mgit_config_file_credentials(self):
        """Credentials in mgit's config.yaml are validated: Azure at the entry's own org URL."""
        path = self.write(
            "config.yaml",
            "providers:\n"
            f"  work:\n    org_url: {self.base}/org-ok/\n    user: x\n"
            f"    pat: '{ADO_PAT}'\n"
            f"  bb:\n    username: me\n    app_password: {BB_PASSWORD}  # comment\n",
            mode=0o600,
        )
        check = AuthenticationCheck(
            {}, path, validate=True, api_urls={"bitbucket": self.base + "/bb"}, timeout=5
        )
        result = check()
        self.assertEqual(result.status, HEALTHY, result.message)
        self.assertEqual(result.details["validation"]["azure_devops"]["source"], "config:work")
        self.assertEqual(self.paths(), ["/bb/2.0/user", "/org-ok/_apis/connectionData"])
        self.assertNotIn(ADO_PAT, json.dumps(result.to_dict()))

    def test_azure_without_organisation_is_skipped(self):
        """An Azure PAT with no organisation URL anywhere is skipped (degraded), not sent."""
        check = AuthenticationCheck({"AZURE_DEVOPS_EXT_PAT": ADO_PAT}, validate=True)
        result = check()
        self.assertEqual(result.status, DEGRADED)
        self.assertEqual(result.details["validation"]["azure_devops"]["status"], "skipped")
        self.assertIn("AZURE_DEVOPS_ORG_URL", result.message)
        self.assertEqual(self.server.seen, [])

    def test_plain_http_to_a_remote_host_is_refused(self):
        """A credential is never sent over plain http except to loopback."""
        check = AuthenticationCheck(
            {"GITHUB_TOKEN": GH_TOKEN},
            validate=True,
            api_urls={"github": "http://mirror.example.invalid/api/v3"},
        )
        report = check().details["validation"]["github"]
        self.assertEqual(report["status"], "skipped")
        self.assertIn("plain http", report["note"])

    def test_world_readable_config_does_not_hide_invalid(self):
        """A too-open config file degrades, but an all-invalid verdict stays unhealthy."""
        path = self.write("config.yaml", "providers:\n  gh:\n    token: abc\n", mode=0o644)
        result = self.check({}, config_path=path, github="gh-bad")()
        if POSIX:
            self.assertIn("chmod 600", result.message)
        self.assertEqual(result.status, UNHEALTHY)
        self.assertIn("github invalid", result.message)


class TestCredentialUrls(unittest.TestCase):
    def test_derived_from_provider_endpoints(self):
        """Validation base URLs follow the provider endpoints; the Azure status API is skipped."""
        self.assertEqual(
            credential_api_urls(DEFAULT_PROVIDER_ENDPOINTS),
            {"github": "https://api.github.com", "bitbucket": "https://api.bitbucket.org"},
        )
        urls = credential_api_urls(
            [
                ("github", "https://ghe.example/api/v3/rate_limit?x=1"),
                ("ado", "https://ado.example/tfs/Coll/_apis/connectionData"),
                ("bitbucket", "https://bb.example/2.0/"),
                ("mirror", "https://mirror.example/health"),
            ]
        )
        self.assertEqual(
            urls,
            {
                "github": "https://ghe.example/api/v3",
                "azure_devops": "https://ado.example/tfs/Coll",
                "bitbucket": "https://bb.example",
            },
        )
        self.assertEqual(
            credential_api_urls([("azure_devops", "https://dev.azure.com/org/proj/_apis/x")]),
            {"azure_devops": "https://dev.azure.com/org"},
        )


if __name__ == "__main__":
    unittest.main()
