"""The default set of checks, how configuration reaches it, and the process-wide default checker."""

from __future__ import annotations

import asyncio
import os
import tempfile
import unittest
from unittest import mock

import mgit_monitoring
from mgit_monitoring import collector, default_checks
from mgit_monitoring.check_support import Endpoint
from mgit_monitoring.config import MonitoringConfig
from mgit_monitoring.default_checks import (
    create_default_health_checker,
    get_health_checker,
    register_default_checks,
    reset_health_checker,
    set_health_checker,
)
from mgit_monitoring.health import (
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    UNKNOWN,
    HealthChecker,
    HealthCheckResult,
)
from tests.support import GH_TOKEN, ProviderApiCase, TempDirCase

POSIX = os.name == "posix"


class TestRegisterDefaults(TempDirCase):
    def test_flags_and_switches(self):
        """Defaults register with the documented critical flags; switches leave checks out."""
        checker = HealthChecker()
        register_default_checks(
            checker, environ={}, state_dir=self.tmp, network=False, providers=False
        )
        self.assertEqual(
            checker.check_names,
            [
                "system_basics",
                "git_availability",
                "disk_space",
                "memory_usage",
                "authentication_status",
            ],
        )
        critical = sorted(e.name for e in checker.registered_checks if e.critical)
        self.assertEqual(critical, ["disk_space", "git_availability", "system_basics"])

    def test_proxy_from_environ_and_provider_ttl(self):
        """HTTPS_PROXY/NO_PROXY come from the given environment; provider results live long."""
        checker = HealthChecker()
        env = {"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": "internal"}
        register_default_checks(checker, environ=env, state_dir=self.tmp, auth=False)
        network = checker.get_check("network_connectivity").check
        self.assertEqual((network.proxy.host, network.proxy.port), ("proxy.example", 3128))
        self.assertEqual(network.no_proxy, "internal")
        self.assertGreaterEqual(checker.get_check("provider_endpoints").ttl, 300)

    def test_local_checks_run_healthy_here(self):
        """System, disk and memory checks give real answers on this machine within the deadline."""
        checker = HealthChecker()
        register_default_checks(
            checker, environ={}, state_dir=self.tmp, network=False, providers=False, auth=False
        )
        doc = checker.check_health_sync()
        self.assertEqual(doc["checks"]["system_basics"]["status"], HEALTHY)
        self.assertIn(
            doc["checks"]["memory_usage"]["status"], (HEALTHY, DEGRADED, UNHEALTHY, UNKNOWN)
        )


class TestChecksFollowConfig(ProviderApiCase):
    def test_config_fields_reach_the_checks(self):
        """Hosts, endpoints, git minimum and validation come from MonitoringConfig."""
        config = MonitoringConfig(
            state_dir=self.tmp,
            network_hosts="127.0.0.1:1234, [::1]",
            provider_endpoints=f"ghe={self.base}/gh-ok/rate_limit",
            min_git_version="2.30",
            validate_credentials=True,
            health_timeout_seconds=2.0,
        )
        checker = create_default_health_checker(config=config, environ={})
        entries = {c.name: c for c in checker.registered_checks}
        self.assertEqual(
            entries["network_connectivity"].check.hosts, [("127.0.0.1", 1234), ("::1", 443)]
        )
        self.assertEqual(
            entries["provider_endpoints"].check.endpoints,
            [Endpoint("ghe", f"{self.base}/gh-ok/rate_limit", "github")],
        )
        self.assertEqual(entries["git_availability"].check.min_version, (2, 30))
        auth = entries["authentication_status"]
        self.assertTrue(auth.check.validate)
        self.assertEqual(auth.check.api_urls["github"], f"{self.base}/gh-ok")
        self.assertGreater(auth.timeout, auth.check.timeout)  # the runner outlasts the request

    def test_defaults_follow_mgit_config_not_the_internet(self):
        """Without overrides the network and provider checks probe what mgit's config names:
        nothing at all when there is no mgit config (healthy, said so); validation off."""
        missing = os.path.join(self.tmp, "no-mgit", "config.yaml")
        checker = create_default_health_checker(
            config=MonitoringConfig(state_dir=self.tmp), mgit_config_path=missing
        )
        entries = {c.name: c for c in checker.registered_checks}
        self.assertEqual(entries["network_connectivity"].check.hosts, [])
        self.assertEqual(entries["provider_endpoints"].check.endpoints, [])
        self.assertIsNone(entries["git_availability"].check.min_version)
        self.assertFalse(entries["authentication_status"].check.validate)
        for name in ("network_connectivity", "provider_endpoints"):
            result = checker.run_check_sync(name)
            self.assertEqual(result.status, HEALTHY, result.message)
            self.assertIn(f"no provider in mgit's config ({missing})", result.message)
            self.assertIn("nothing to check", result.message)

    def test_targets_from_mgit_config_are_reread(self):
        """GitHub Enterprise, Azure DevOps Server and Bitbucket Server URLs in mgit's config
        become the hosts and endpoints; a config written later is picked up."""
        path = os.path.join(self.tmp, "mgit", "config.yaml")
        checker = create_default_health_checker(
            config=MonitoringConfig(state_dir=self.tmp), mgit_config_path=path
        )
        network = checker.get_check("network_connectivity").check
        endpoints = checker.get_check("provider_endpoints").check
        self.assertEqual(network.hosts, [])
        self.write(
            "mgit/config.yaml",
            "providers:\n"
            "  ghe:\n    url: https://git.corp.example\n    token: t\n"
            "  tfs:\n    url: https://tfs.corp.example:8443/tfs/DefaultCollection\n"
            "    token: t\n"
            "  bbs:\n    type: bitbucket\n    url: https://bb.corp.example/bitbucket\n"
            "    token: t\n",
            mode=0o600,
        )
        self.assertEqual(
            network.hosts,
            [("git.corp.example", 443), ("tfs.corp.example", 8443), ("bb.corp.example", 443)],
        )
        self.assertEqual(
            [e.url for e in endpoints.endpoints],
            [
                "https://git.corp.example/api/v3/meta",
                "https://tfs.corp.example:8443/tfs/DefaultCollection/_apis/connectionData",
                "https://bb.corp.example/bitbucket/rest/api/1.0/application-properties",
            ],
        )
        self.assertEqual(
            [e.kind for e in endpoints.endpoints], ["github", "azure_devops", "bitbucket"]
        )

    def test_overrides_still_win_over_mgit_config(self):
        """MGIT_MONITORING_NETWORK_HOSTS / _PROVIDER_ENDPOINTS replace mgit's config's hosts."""
        self.write("mgit/config.yaml", "providers:\n  gh:\n    token: t\n", mode=0o600)
        env = {
            "HOME": self.tmp,
            "MGIT_CONFIG_PATH": os.path.join(self.tmp, "mgit", "config.yaml"),
            "MGIT_MONITORING_NETWORK_HOSTS": "git.internal:22",
            "MGIT_MONITORING_PROVIDER_ENDPOINTS": f"github={self.base}/gh-ok/rate_limit",
        }
        config = MonitoringConfig.from_env(env, state_dir=self.tmp)
        checker = create_default_health_checker(config=config, environ=env)
        self.assertEqual(
            checker.get_check("network_connectivity").check.hosts, [("git.internal", 22)]
        )
        self.assertEqual(
            [e.url for e in checker.get_check("provider_endpoints").check.endpoints],
            [f"{self.base}/gh-ok/rate_limit"],
        )
        env.pop("MGIT_MONITORING_NETWORK_HOSTS")
        env.pop("MGIT_MONITORING_PROVIDER_ENDPOINTS")
        config = MonitoringConfig.from_env(env, state_dir=self.tmp)
        checker = create_default_health_checker(config=config, environ=env)
        self.assertEqual(
            checker.get_check("network_connectivity").check.hosts, [("github.com", 443)]
        )

    def test_store_follows_persistence(self):
        """Persistence off: the state dir is not required and the disk check watches nothing;
        a reader's read-only store is healthy; an unusable one degrades, never unready."""
        mgit = os.path.join(self.tmp, "no-mgit.yaml")
        config = MonitoringConfig(state_dir="/nonexistent/state", persist=False)
        checker = create_default_health_checker(
            config=config, environ={}, network=False, mgit_config_path=mgit
        )
        system = checker.run_check_sync("system_basics")
        self.assertEqual(system.status, HEALTHY, system.message)
        self.assertEqual(system.details["store_access"], "memory")
        disk = checker.run_check_sync("disk_space")
        self.assertEqual(disk.status, HEALTHY)
        self.assertIn("nothing to watch", disk.message)
        self.assertTrue(checker.is_ready_sync())
        state = self.write("state-file", "x")  # a file where the state dir should be
        config = MonitoringConfig(state_dir=state)
        checker = create_default_health_checker(
            config=config, environ={}, network=False, mgit_config_path=mgit
        )
        self.assertEqual(checker.get_check("disk_space").check.path, os.path.abspath(state))
        self.assertEqual(checker.run_check_sync("system_basics").status, DEGRADED)
        self.assertTrue(checker.is_ready_sync())
        reader = HealthChecker()
        register_default_checks(
            reader, state_dir=self.tmp, store_access="read-only", mgit_config_path=mgit
        )
        self.assertEqual(reader.get_check("system_basics").check.store_access, "read-only")

    def test_none_disables_network_and_provider_checks(self):
        """MGIT_MONITORING_NETWORK_HOSTS=none and PROVIDER_ENDPOINTS=off leave those checks out."""
        env = {
            "HOME": self.tmp,
            "MGIT_MONITORING_NETWORK_HOSTS": "none",
            "MGIT_MONITORING_PROVIDER_ENDPOINTS": "off",
        }
        config = MonitoringConfig.from_env(env, state_dir=self.tmp)
        checker = create_default_health_checker(config=config, environ=env)
        self.assertNotIn("network_connectivity", checker.check_names)
        self.assertNotIn("provider_endpoints", checker.check_names)
        self.assertIn("authentication_status", checker.check_names)

    def test_explicit_arguments_win(self):
        """Arguments to register_default_checks override the configuration."""
        config = MonitoringConfig(
            network_hosts="none", min_git_version="2.30", validate_credentials=True
        )
        checker = HealthChecker()
        register_default_checks(
            checker,
            config=config,
            state_dir=self.tmp,
            network_hosts=["127.0.0.1:9"],
            min_git_version="2.1",
            validate_credentials=False,
            credential_urls={"github": "https://ghe.example/api/v3"},
        )
        self.assertEqual(checker.get_check("network_connectivity").check.hosts, [("127.0.0.1", 9)])
        self.assertEqual(checker.get_check("git_availability").check.min_version, (2, 1))
        auth = checker.get_check("authentication_status").check
        self.assertFalse(auth.validate)
        self.assertEqual(auth.api_urls["github"], "https://ghe.example/api/v3")

    def test_environment_end_to_end(self):
        """Env-configured endpoints and validation make the check validate at the loopback."""
        env = {
            "HOME": self.tmp,
            "GITHUB_TOKEN": GH_TOKEN,
            "MGIT_MONITORING_PROVIDER_ENDPOINTS": f"github={self.base}/gh-ok/rate_limit",
            "MGIT_MONITORING_VALIDATE_CREDENTIALS": "true",
            "MGIT_MONITORING_NETWORK_HOSTS": "off",
        }
        config = MonitoringConfig.from_env(env, state_dir=self.tmp)
        checker = create_default_health_checker(config=config, environ=env)
        result = checker.run_check_sync("authentication_status")
        self.assertEqual(result.status, HEALTHY, result.message)
        self.assertEqual(self.server.seen, [("/gh-ok/rate_limit", "Bearer " + GH_TOKEN)])

    @unittest.skipIf(not POSIX, "fake git scripts are shell scripts")
    def test_min_git_version_from_config(self):
        """A git older than MGIT_MONITORING_MIN_GIT_VERSION makes the git check unhealthy."""
        bindir = os.path.dirname(
            self.write("bin/git", "#!/bin/sh\necho 'git version 2.20.1'\n", 0o755)
        )
        config = MonitoringConfig.from_env(
            {"HOME": self.tmp, "MGIT_MONITORING_MIN_GIT_VERSION": "2.30"}
        )
        checker = HealthChecker()
        register_default_checks(checker, config=config, state_dir=self.tmp, git_search_path=bindir)
        with self.assertLogs("mgit_monitoring.health", "WARNING"):
            result = checker.run_check_sync("git_availability")
        self.assertEqual(result.status, UNHEALTHY)
        self.assertIn("older than the required 2.30", result.message)


class TestDefault(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        env = {"HOME": tmp.name, "XDG_STATE_HOME": os.path.join(tmp.name, "state")}
        patcher = mock.patch.dict(os.environ, env)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.addCleanup(reset_health_checker)
        reset_health_checker()

    def test_lazy_resettable_default(self):
        """get_health_checker returns one object until reset."""
        first = get_health_checker()
        self.assertIs(get_health_checker(), first)
        reset_health_checker()
        self.assertIsNot(get_health_checker(), first)

    def test_default_checks_and_critical_flags(self):
        """The default has the seven original checks; system, git and disk are critical."""
        checker = get_health_checker()
        self.assertEqual(
            checker.check_names,
            [
                "system_basics",
                "git_availability",
                "disk_space",
                "memory_usage",
                "network_connectivity",
                "provider_endpoints",
                "authentication_status",
            ],
        )
        critical = {c.name for c in checker.registered_checks if c.critical}
        self.assertEqual(critical, {"system_basics", "git_availability", "disk_space"})

    def test_environment_configures_the_default(self):
        """MGIT_MONITORING_* health variables shape the default; a bad one names itself."""
        os.environ.update(
            MGIT_MONITORING_NETWORK_HOSTS="none",
            MGIT_MONITORING_PROVIDER_ENDPOINTS="off",
            MGIT_MONITORING_MIN_GIT_VERSION="2.30",
            MGIT_MONITORING_VALIDATE_CREDENTIALS="true",
        )
        checker = get_health_checker()
        self.assertNotIn("network_connectivity", checker.check_names)
        self.assertNotIn("provider_endpoints", checker.check_names)
        self.assertEqual(checker.get_check("git_availability").check.min_version, (2, 30))
        self.assertTrue(checker.get_check("authentication_status").check.validate)
        reset_health_checker()
        os.environ["MGIT_MONITORING_NETWORK_HOSTS"] = "bad host"
        # The default checker serves applications: a bad value is one warning naming the
        # variable, and its default (follow mgit's own config) is used.
        with self.assertLogs("mgit_monitoring.config", "WARNING") as logs:
            checker = get_health_checker()
        self.assertIn("MGIT_MONITORING_NETWORK_HOSTS='bad host'", logs.output[0])
        self.assertIsInstance(checker, HealthChecker)

    def test_set_health_checker(self):
        """An installed checker becomes the default and the previous one is returned."""
        mine = HealthChecker()
        set_health_checker(mine)
        self.assertIs(get_health_checker(), mine)
        self.assertIs(set_health_checker(None), mine)

    def test_original_module_helpers(self):
        """readiness_probe, liveness_probe and health_check_endpoint use the default checker."""
        mine = HealthChecker()
        mine.register_check("git", lambda: "fail", critical=True)
        set_health_checker(mine)
        with self.assertLogs("mgit_monitoring.health", "WARNING"):  # git turned unhealthy
            self.assertFalse(asyncio.run(default_checks.readiness_probe()))
        self.assertTrue(asyncio.run(default_checks.liveness_probe()))
        self.assertEqual(asyncio.run(default_checks.health_check_endpoint())["status"], UNHEALTHY)

    def test_package_exports(self):
        """The module's public names are listed in __all__, and the package root has them."""
        for name in default_checks.__all__:
            self.assertTrue(hasattr(default_checks, name), name)
        for name in (
            "create_default_health_checker",
            "get_health_checker",
            "reset_health_checker",
            "set_health_checker",
        ):
            self.assertIs(getattr(mgit_monitoring, name), getattr(default_checks, name), name)

    def test_seed_example_exports_health_metrics(self):
        """A check registered on get_health_checker() and run shows in get_metrics_collector()'s
        export: the default checker and the default collector share the default registry."""
        collector.reset_metrics_collector()
        self.addCleanup(collector.reset_metrics_collector)
        health_checker = get_health_checker()

        async def custom_health_check():
            return HealthCheckResult(
                name="custom_check", status="healthy", message="Custom check passed"
            )

        health_checker.register_check("custom", custom_health_check)
        result = asyncio.run(health_checker.run_check("custom"))
        self.assertEqual(result.status, HEALTHY)
        text = collector.get_metrics_collector().export_prometheus()
        self.assertIn('mgit_health_check_status{check="custom"} 1.0\n', text)
        self.assertIn('mgit_health_check_duration_seconds_count{check="custom"} 1\n', text)
        self.assertIn("mgit_health_overall ", text)
        self.assertIn("mgit_health_percentage ", text)


if __name__ == "__main__":
    unittest.main()
