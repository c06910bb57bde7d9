"""MonitoringConfig: defaults, environment parsing, precedence and one-line errors."""

from __future__ import annotations

import json
import os
import re
import unittest

from mgit_monitoring.config import (
    _FIELDS,
    DEFAULT_NETWORK_HOSTS,
    DEFAULT_PROVIDER_URLS,
    ENV_PREFIX,
    ENV_WARNINGS,
    MonitoringConfig,
    default_state_dir,
    enabled_from_env,
    parse_bool,
)
from mgit_monitoring.errors import ConfigError

BASE = {"HOME": "/home/someone"}


def env(**values: str) -> dict:
    out = dict(BASE)
    out.update({f"MGIT_MONITORING_{k}": v for k, v in values.items()})
    return out


class TestDefaults(unittest.TestCase):
    def test_documented_defaults(self):
        """An empty environment gives the documented defaults."""
        config = MonitoringConfig.from_env(BASE)
        self.assertTrue(config.enabled)
        self.assertEqual("INFO", config.log_level)
        self.assertEqual("0.0.0.0", config.host)
        self.assertEqual(8080, config.port)
        self.assertEqual("/home/someone/.local/state/mgit-monitoring", config.state_dir)
        self.assertEqual(1024**3, config.disk_min_free_bytes)
        self.assertEqual(85.0, config.memory_warn_percent)

    def test_xdg_state_home(self):
        """An absolute XDG_STATE_HOME decides the state dir; a relative one is ignored."""
        self.assertEqual(
            "/xdg/mgit-monitoring", MonitoringConfig.from_env({"XDG_STATE_HOME": "/xdg"}).state_dir
        )
        self.assertEqual(
            "/home/someone/.local/state/mgit-monitoring",
            default_state_dir({"XDG_STATE_HOME": "rel", "HOME": "/home/someone"}),
        )

    def test_constructor_reads_no_environment(self):
        """Constructing directly ignores os.environ and leaves state_dir None (memory only)."""
        os.environ["MGIT_MONITORING_PORT"] = "1234"
        self.addCleanup(os.environ.pop, "MGIT_MONITORING_PORT", None)
        config = MonitoringConfig()
        self.assertEqual(8080, config.port)
        self.assertIsNone(config.state_dir)
        self.assertIsNone(config.store_dir)

    def test_none_reads_os_environ(self):
        """from_env(None) reads os.environ."""
        os.environ["MGIT_MONITORING_PORT"] = "1234"
        self.addCleanup(os.environ.pop, "MGIT_MONITORING_PORT", None)
        self.assertEqual(1234, MonitoringConfig.from_env().port)

    def test_frozen(self):
        """The configuration is immutable; replace() validates the copy."""
        config = MonitoringConfig()
        with self.assertRaises(AttributeError):
            config.port = 1  # type: ignore[misc]
        with self.assertRaises(ConfigError):
            config.replace(port=99999)
        with self.assertRaises(TypeError):
            config.replace(prot=1)
        copy = config.replace(port="9100")
        self.assertEqual((copy.port, config.port), (9100, 8080))
        self.assertEqual(copy, MonitoringConfig(port=9100))
        self.assertNotEqual(copy, config)
        self.assertEqual(hash(copy), hash(MonitoringConfig(port=9100)))
        self.assertIn("port=9100", repr(copy))

    def test_constructor_like_a_dataclass(self):
        """Positional arguments in field order, keywords, and the errors a dataclass gives."""
        self.assertEqual(MonitoringConfig(False, "debug").log_level, "DEBUG")
        # The positional order of earlier releases holds (new fields are added last).
        old_style = MonitoringConfig(True, "INFO", "127.0.0.1", 9090)
        self.assertEqual((old_style.host, old_style.port), ("127.0.0.1", 9090))
        self.assertFalse(MonitoringConfig(False).enabled)
        with self.assertRaises(TypeError):
            MonitoringConfig(nonsense=1)
        with self.assertRaises(TypeError):
            MonitoringConfig(True, enabled=False)
        import copy
        import pickle

        config = MonitoringConfig(port=0, network_hosts=("a:1",))
        self.assertEqual(pickle.loads(pickle.dumps(config)), config)
        self.assertEqual(copy.deepcopy(config), config)
        self.assertEqual(config.as_dict()["network_hosts"], ("a:1",))


class TestParsing(unittest.TestCase):
    def test_booleans(self):
        """ENABLED accepts 1/0, true/false, yes/no, on/off in any case."""
        for raw in ("1", "true", "TRUE", "Yes", "on", " On "):
            self.assertTrue(MonitoringConfig.from_env(env(ENABLED=raw)).enabled, raw)
        for raw in ("0", "false", "False", "NO", "off"):
            self.assertFalse(MonitoringConfig.from_env(env(ENABLED=raw)).enabled, raw)

    def test_empty_means_unset(self):
        """A variable set to an empty string keeps the default."""
        self.assertEqual(8080, MonitoringConfig.from_env(env(PORT="")).port)

    def test_values_are_normalised(self):
        """Levels, hosts, sizes and numbers are parsed into their canonical form."""
        config = MonitoringConfig.from_env(
            env(
                LOG_LEVEL="warn",
                HOST="[::1]",
                PORT="0",
                DISK_MIN_FREE_BYTES="512MiB",
                FLUSH_INTERVAL="0.5",
                STATE_DIR="/srv/state",
            )
        )
        self.assertEqual("WARNING", config.log_level)
        self.assertEqual("::1", config.host)
        self.assertEqual(0, config.port)
        self.assertEqual(512 * 1024**2, config.disk_min_free_bytes)
        self.assertEqual(0.5, config.flush_interval_seconds)
        self.assertEqual("/srv/state", config.state_dir)

    def test_tilde_uses_the_given_home(self):
        """A leading ~ in STATE_DIR expands with the mapping's HOME, not the process's."""
        config = MonitoringConfig.from_env(env(STATE_DIR="~/mon"))
        self.assertEqual("/home/someone/mon", config.state_dir)

    def test_parse_bool_rejects(self):
        """parse_bool names the label and the bad value."""
        with self.assertRaisesRegex(ConfigError, "^X='maybe': expected one of"):
            parse_bool("maybe", "X")

    def test_store_dir(self):
        """store_dir is the absolute state dir, or None when persistence or monitoring is off."""
        self.assertEqual("/srv/s", MonitoringConfig(state_dir="/srv/s").store_dir)
        self.assertIsNone(MonitoringConfig(state_dir="/srv/s", persist=False).store_dir)
        self.assertIsNone(MonitoringConfig(state_dir="/srv/s", enabled=False).store_dir)

    def test_env_var_names(self):
        """Each field maps to its documented MGIT_MONITORING_* variable."""
        self.assertEqual("MGIT_MONITORING_PORT", MonitoringConfig.env_var("port"))
        self.assertEqual("MGIT_MONITORING_STATE_DIR", MonitoringConfig.env_var("state_dir"))
        with self.assertRaises(ConfigError):
            MonitoringConfig.env_var("nope")


class TestErrors(unittest.TestCase):
    CASES = (
        ("PORT", "80a", "MGIT_MONITORING_PORT='80a': expected an integer"),
        ("PORT", "65536", "MGIT_MONITORING_PORT='65536': expected a value in [0, 65535]"),
        ("PORT", "-1", "MGIT_MONITORING_PORT='-1'"),
        ("ENABLED", "maybe", "MGIT_MONITORING_ENABLED='maybe'"),
        ("LOG_LEVEL", "loud", "MGIT_MONITORING_LOG_LEVEL='loud'"),
        ("HOST", "a b", "MGIT_MONITORING_HOST='a b'"),
        ("DISK_MIN_FREE_BYTES", "lots", "MGIT_MONITORING_DISK_MIN_FREE_BYTES='lots'"),
        ("MEMORY_WARN_PERCENT", "101", "MGIT_MONITORING_MEMORY_WARN_PERCENT='101'"),
        ("FLUSH_INTERVAL", "0", "MGIT_MONITORING_FLUSH_INTERVAL='0'"),
        ("FLUSH_INTERVAL", "nan", "MGIT_MONITORING_FLUSH_INTERVAL='nan'"),
        ("PERF_MAX_TRACES", "1.5", "MGIT_MONITORING_PERF_MAX_TRACES='1.5'"),
        ("NETWORK_HOSTS", "a b", "MGIT_MONITORING_NETWORK_HOSTS='a b': bad entry 'a b'"),
        ("NETWORK_HOSTS", "ok.example,::1", "bad entry '::1': expected host, host:port or [IPv6]"),
        ("NETWORK_HOSTS", "h:0", "MGIT_MONITORING_NETWORK_HOSTS='h:0'"),
        ("NETWORK_HOSTS", "h:65536", "MGIT_MONITORING_NETWORK_HOSTS='h:65536'"),
        ("NETWORK_HOSTS", "[nope]:443", "MGIT_MONITORING_NETWORK_HOSTS='[nope]:443'"),
        ("PROVIDER_ENDPOINTS", "github", "MGIT_MONITORING_PROVIDER_ENDPOINTS='github': bad entry"),
        ("PROVIDER_ENDPOINTS", "x=ftp://h/", "expected name=http(s)://host/path"),
        ("PROVIDER_ENDPOINTS", "x=https://h:99999/", "MGIT_MONITORING_PROVIDER_ENDPOINTS="),
        ("PROVIDER_ENDPOINTS", "a=https://h,a=https://i", "endpoint name 'a' given twice"),
        ("MIN_GIT_VERSION", "2.x", "MGIT_MONITORING_MIN_GIT_VERSION='2.x': expected a version"),
        ("VALIDATE_CREDENTIALS", "maybe", "MGIT_MONITORING_VALIDATE_CREDENTIALS='maybe'"),
    )

    def test_bad_environment_values(self):
        """Each bad value raises one ConfigError line naming the variable and the value."""
        for var, raw, expected in self.CASES:
            with self.subTest(var=var, raw=raw):
                with self.assertRaises(ConfigError) as caught:
                    MonitoringConfig.from_env(env(**{var: raw}))
                message = str(caught.exception)
                self.assertIn(expected, message)
                self.assertNotIn("\n", message)
                self.assertIsInstance(caught.exception, ValueError)

    def test_inconsistent_thresholds_name_both_variables(self):
        """A warn threshold above the fail threshold names both settings."""
        with self.assertRaisesRegex(
            ConfigError, "MGIT_MONITORING_MEMORY_WARN_PERCENT=99.0 must be <= memory_fail_percent"
        ):
            MonitoringConfig.from_env(env(MEMORY_WARN_PERCENT="99"))

    def test_bad_override_names_the_field(self):
        """A bad keyword override names the field; an unknown field is refused."""
        with self.assertRaisesRegex(ConfigError, "^port=70000: "):
            MonitoringConfig.from_env(BASE, port=70000)
        with self.assertRaisesRegex(ConfigError, "colour"):
            MonitoringConfig.from_env(BASE, colour="red")

    def test_bool_is_not_a_port(self):
        """True is refused where an integer is expected."""
        with self.assertRaises(ConfigError):
            MonitoringConfig(port=True)


class TestHealthCheckFields(unittest.TestCase):
    def test_defaults(self):
        """Unset hosts and endpoints are None ("follow mgit's config"), not the public hosts."""
        config = MonitoringConfig.from_env(BASE)
        self.assertIsNone(config.network_hosts)
        self.assertIsNone(config.provider_endpoints)
        self.assertIsNone(MonitoringConfig().network_hosts)
        self.assertIsNone(MonitoringConfig(provider_endpoints=None).provider_endpoints)
        # The public lists stay available, and setting them explicitly is honoured as given.
        self.assertEqual(
            ("github.com:443", "dev.azure.com:443", "bitbucket.org:443"), DEFAULT_NETWORK_HOSTS
        )
        public = MonitoringConfig.from_env(
            env(NETWORK_HOSTS=",".join(DEFAULT_NETWORK_HOSTS)),
            provider_endpoints=DEFAULT_PROVIDER_URLS,
        )
        self.assertEqual(DEFAULT_NETWORK_HOSTS, public.network_hosts)
        self.assertEqual(
            ["github", "azure_devops", "bitbucket"], [n for n, _ in public.provider_endpoints]
        )
        self.assertIsNone(config.min_git_version)
        self.assertFalse(config.validate_credentials)

    def test_network_hosts(self):
        """Hosts get port 443 when omitted; IPv6 literals are bracketed; duplicates collapse."""
        config = MonitoringConfig.from_env(
            env(NETWORK_HOSTS=" ghe.example , 10.0.0.5:8443,[2001:DB8::1]:22, ghe.example:443,")
        )
        self.assertEqual(
            ("ghe.example:443", "10.0.0.5:8443", "[2001:db8::1]:22"), config.network_hosts
        )
        self.assertEqual(
            ("[::1]:443", "h:80"),
            MonitoringConfig(network_hosts=[("::1", 443), "h:80"]).network_hosts,
        )

    def test_none_and_off_disable(self):
        """none/off (any case) disable a list; so does an empty argument, not an empty variable."""
        for raw in ("none", "OFF", " None "):
            config = MonitoringConfig.from_env(env(NETWORK_HOSTS=raw, PROVIDER_ENDPOINTS=raw))
            self.assertEqual((), config.network_hosts, raw)
            self.assertEqual((), config.provider_endpoints, raw)
        self.assertEqual(
            (), MonitoringConfig(network_hosts="", provider_endpoints=()).network_hosts
        )
        unset = MonitoringConfig.from_env(env(NETWORK_HOSTS="", PROVIDER_ENDPOINTS=" "))
        self.assertIsNone(unset.network_hosts)
        self.assertIsNone(unset.provider_endpoints)

    def test_provider_endpoints(self):
        """name=url pairs, from the environment or a mapping, keep their order."""
        raw = "github=https://ghe.example/api/v3/rate_limit, ado=http://ado.example:8080/tfs/C"
        self.assertEqual(
            (
                ("github", "https://ghe.example/api/v3/rate_limit"),
                ("ado", "http://ado.example:8080/tfs/C"),
            ),
            MonitoringConfig.from_env(env(PROVIDER_ENDPOINTS=raw)).provider_endpoints,
        )
        self.assertEqual(
            (("mirror", "https://m.example/health"),),
            MonitoringConfig(
                provider_endpoints={"mirror": "https://m.example/health"}
            ).provider_endpoints,
        )

    def test_credentials_in_endpoint_urls_are_refused_and_not_echoed(self):
        """A user:password@ URL is refused, and the error does not repeat the password."""
        with self.assertRaises(ConfigError) as caught:
            MonitoringConfig.from_env(env(PROVIDER_ENDPOINTS="gh=https://me:s3cr3tpw@ghe.example/"))
        message = str(caught.exception)
        self.assertIn("MGIT_MONITORING_PROVIDER_ENDPOINTS=", message)
        self.assertIn("no user:password@", message)
        self.assertNotIn("s3cr3tpw", message)

    def test_min_git_version_and_validation(self):
        """A git version is normalised; VALIDATE_CREDENTIALS is a boolean."""
        config = MonitoringConfig.from_env(
            env(MIN_GIT_VERSION=" 2.30 ", VALIDATE_CREDENTIALS="yes")
        )
        self.assertEqual("2.30", config.min_git_version)
        self.assertTrue(config.validate_credentials)
        self.assertEqual("2.30.1", MonitoringConfig(min_git_version=(2, 30, 1)).min_git_version)
        self.assertIsNone(MonitoringConfig.from_env(env(MIN_GIT_VERSION="none")).min_git_version)

    def test_env_var_names_and_json(self):
        """The new fields have their MGIT_MONITORING_* names and serialise to JSON."""
        for field, var in (
            ("network_hosts", "NETWORK_HOSTS"),
            ("provider_endpoints", "PROVIDER_ENDPOINTS"),
            ("min_git_version", "MIN_GIT_VERSION"),
            ("validate_credentials", "VALIDATE_CREDENTIALS"),
        ):
            self.assertEqual("MGIT_MONITORING_" + var, MonitoringConfig.env_var(field))
        data = json.loads(json.dumps(MonitoringConfig.from_env(BASE).as_dict()))
        self.assertIsNone(data["provider_endpoints"])
        data = json.loads(
            json.dumps(
                MonitoringConfig.from_env(env(PROVIDER_ENDPOINTS="gh=https://g.example/")).as_dict()
            )
        )
        self.assertEqual([["gh", "https://g.example/"]], data["provider_endpoints"])

    def test_override_wins(self):
        """Keyword overrides beat the environment for the new fields too."""
        config = MonitoringConfig.from_env(
            env(NETWORK_HOSTS="a.example", VALIDATE_CREDENTIALS="1"),
            network_hosts="b.example:1",
            validate_credentials=False,
        )
        self.assertEqual(("b.example:1",), config.network_hosts)
        self.assertFalse(config.validate_credentials)


class TestPrecedence(unittest.TestCase):
    def test_defaults_env_overrides(self):
        """Defaults < environment < explicit overrides; None overrides mean 'not given'."""
        environ = env(PORT="9000", HOST="127.0.0.1")
        config = MonitoringConfig.from_env(environ, port=9100, host=None)
        self.assertEqual(9100, config.port)
        self.assertEqual("127.0.0.1", config.host)
        self.assertEqual("INFO", config.log_level)

    def test_override_wins_over_bad_environment_only_when_valid(self):
        """A bad environment value still fails even when an override replaces it."""
        with self.assertRaises(ConfigError):
            MonitoringConfig.from_env(env(PORT="x"), port=1)

    def test_as_dict(self):
        """as_dict holds every field."""
        data = MonitoringConfig.from_env(BASE).as_dict()
        self.assertEqual(8080, data["port"])
        self.assertIn("state_dir", data)


class TestEnabledAlone(unittest.TestCase):
    def test_reads_only_its_variable(self):
        """enabled_from_env honours ENABLED whatever other variables hold; default true."""
        self.assertTrue(enabled_from_env({}))
        self.assertTrue(enabled_from_env(env(ENABLED="  ")))
        self.assertFalse(enabled_from_env(env(ENABLED="off", PORT="80a", HOST="a b")))
        with self.assertRaisesRegex(ConfigError, "^MGIT_MONITORING_ENABLED='maybe': "):
            enabled_from_env(env(ENABLED="maybe"))


class TestLenient(unittest.TestCase):
    """from_env(strict=False): what an application gets; the strict default is the CLI's."""

    def setUp(self) -> None:
        ENV_WARNINGS.clear()
        self.addCleanup(ENV_WARNINGS.clear)

    def lenient(self, environ: dict, **overrides: object) -> tuple:
        with self.assertLogs("mgit_monitoring.config", "DEBUG") as logs:
            config = MonitoringConfig.from_env(environ, strict=False, **overrides)
        warnings = [r.getMessage() for r in logs.records if r.levelname == "WARNING"]
        return config, warnings

    def test_bad_variable_is_one_warning_and_its_default(self):
        """Each bad value names its variable once and falls back to the documented default."""
        for suffix, raw, field, default in (
            ("PORT", "abc", "port", 8080),
            ("HEALTH_INTERVAL", "0", "health_interval_seconds", 30.0),
            ("LOG_LEVEL", "loud", "log_level", "INFO"),
            ("NETWORK_HOSTS", "a:b:c", "network_hosts", None),
        ):
            with self.subTest(variable=suffix):
                config, warnings = self.lenient(env(**{suffix: raw}))
                self.assertEqual(default, getattr(config, field))
                self.assertEqual(1, len(warnings), warnings)
                self.assertTrue(warnings[0].startswith(f"MGIT_MONITORING_{suffix}={raw!r}: "))
                self.assertIn("using the default", warnings[0])
                with self.assertRaisesRegex(ConfigError, f"^MGIT_MONITORING_{suffix}="):
                    MonitoringConfig.from_env(env(**{suffix: raw}))  # strict: the CLI's

    def test_bad_enabled_means_disabled(self):
        """ENABLED=maybe: off (the choice that cannot touch mgit), said once."""
        config, warnings = self.lenient(env(ENABLED="maybe", PORT="9000"))
        self.assertFalse(config.enabled)
        self.assertIsNone(config.store_dir)
        self.assertEqual(9000, config.port)  # the good variables still apply
        self.assertEqual(1, len(warnings), warnings)
        self.assertIn("MGIT_MONITORING_ENABLED='maybe'", warnings[0])
        self.assertIn("disabled", warnings[0])
        with self.assertLogs("mgit_monitoring.config", "DEBUG") as logs:
            self.assertFalse(enabled_from_env(env(ENABLED="maybe"), strict=False))
        # Already said for this value: the repeat is DEBUG, not a second warning.
        self.assertEqual(["DEBUG"], [r.levelname for r in logs.records])

    def test_thresholds_out_of_order_fall_back_to_defaults(self):
        """Two variables out of order: both defaults, one warning naming both."""
        config, warnings = self.lenient(env(MEMORY_WARN_PERCENT="99", MEMORY_FAIL_PERCENT="90"))
        self.assertEqual((85.0, 95.0), (config.memory_warn_percent, config.memory_fail_percent))
        self.assertEqual(1, len(warnings), warnings)
        self.assertIn("MGIT_MONITORING_MEMORY_WARN_PERCENT", warnings[0])
        self.assertIn("MGIT_MONITORING_MEMORY_FAIL_PERCENT", warnings[0])

    def test_overrides_stay_strict(self):
        """A bad keyword override is the calling code's bug: it raises in both modes."""
        with self.assertRaisesRegex(ConfigError, "^port="):
            MonitoringConfig.from_env(BASE, strict=False, port="x")
        with self.assertRaises(ConfigError):
            MonitoringConfig.from_env(
                BASE, strict=False, memory_warn_percent=99, memory_fail_percent=90
            )
        # An override wins over a bad variable, which is still reported once.
        config, warnings = self.lenient(env(PORT="x"), port=1)
        self.assertEqual(1, config.port)
        self.assertEqual(1, len(warnings))


class TestDocumentation(unittest.TestCase):
    def test_every_variable_is_documented(self):
        """Each field has a docstring bullet naming its variable, then its default."""
        doc = MonitoringConfig.__doc__ or ""
        for name, (suffix, _parser) in _FIELDS.items():
            with self.subTest(field=name):
                match = re.search(rf"- ``{name}`` \({suffix}\): \S", doc)
                self.assertIsNotNone(match, f"{name} ({suffix}) is not documented")
                self.assertEqual(ENV_PREFIX + suffix, MonitoringConfig.env_var(name))
        self.assertIn("MGIT_MONITORING_LOG_FORMAT", doc)  # read by setup_structured_logging


if __name__ == "__main__":
    unittest.main()
