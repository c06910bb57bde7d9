"""Deployment files for an mgit monitoring stack: Prometheus, Alertmanager, Compose, Grafana
provisioning, Kubernetes manifests and a systemd unit.

Each function returns plain data (or text) for one file; :mod:`generate_config` writes
them. The files are written to the subset that both the Debian 12 tools (Prometheus 2.42,
Alertmanager 0.25, docker-compose 1.29, systemd 252) and the pinned container images
accept.
"""

from __future__ import annotations

from typing import Any, Dict, List

from mgit_monitoring.alert_rules import ALERTS_FILE

__all__ = [
    "ALERTMANAGER_IMAGE",
    "COMPOSE_MOUNTS",
    "GRAFANA_IMAGE",
    "IMAGE",
    "PROMETHEUS_IMAGE",
    "PUSHGATEWAY_IMAGE",
    "alertmanager_config",
    "compose_file",
    "cronjob",
    "deployment",
    "grafana_dashboards_provider",
    "grafana_datasources",
    "prometheus_config",
    "prometheus_rule",
    "service",
    "service_monitor",
    "systemd_unit",
]

PROMETHEUS_IMAGE = "prom/prometheus:v2.53.0"
ALERTMANAGER_IMAGE = "prom/alertmanager:v0.27.0"
PUSHGATEWAY_IMAGE = "prom/pushgateway:v1.9.0"
GRAFANA_IMAGE = "grafana/grafana:10.4.2"
IMAGE = "mgit:latest"
"""The container image that has mgit and mgit_monitoring installed (build your own)."""

DATASOURCE_UID = "mgit-prometheus"
STATE_DIR = "/var/lib/mgit-monitoring"
# The pod's own /tmp: an emptyDir volume of the pod (the root filesystem is read-only).
_POD_TMP = "/tmp"  # nosec B108 # a per-pod emptyDir, shared with no other user
# In a container, the server must listen on the pod IP the Service and the probes use.
_POD_HOST = "0.0.0.0"  # nosec B104 # inside the pod's own network namespace

COMPOSE_MOUNTS: Dict[str, str] = {
    "prometheus.yml": "/etc/prometheus/prometheus.yml",
    ALERTS_FILE: f"/etc/prometheus/{ALERTS_FILE}",
    "alertmanager.yml": "/etc/alertmanager/alertmanager.yml",
    "grafana/provisioning/datasources/mgit.yml":
        "/etc/grafana/provisioning/datasources/mgit.yml",
    "grafana/provisioning/dashboards/mgit.yml": "/etc/grafana/provisioning/dashboards/mgit.yml",
    "grafana-dashboard.json": "/etc/grafana/dashboards/mgit/grafana-dashboard.json",
}  # fmt: skip
"""Output file -> where docker-compose.yml mounts it."""


def prometheus_config(job: str, port: int) -> Dict[str, Any]:
    """prometheus.yml: the mgit server, the Pushgateway, the rules and Alertmanager."""
    return {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        # Relative to prometheus.yml: compose mounts both files in /etc/prometheus.
        "rule_files": [ALERTS_FILE],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]},
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"host.docker.internal:{port}"]}],
            },
            {
                "job_name": "pushgateway",
                "honor_labels": True,
                "static_configs": [{"targets": ["pushgateway:9091"]}],
            },
            {"job_name": "prometheus", "static_configs": [{"targets": ["localhost:9090"]}]},
        ],
    }


def alertmanager_config() -> Dict[str, Any]:
    """alertmanager.yml: one route to one receiver, ``default``, that the user fills in."""
    return {
        "route": {
            "receiver": "default",
            "group_by": ["alertname", "job"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
        },
        "receivers": [{"name": "default"}],
    }


ALERTMANAGER_HEADER = """\
Where mgit alerts go. Edit the "default" receiver below, for example:
  receivers:
    - name: default
      webhook_configs:
        - url: http://chat-bridge.example:8080/alerts
(or email_configs / slack_configs; see the Alertmanager configuration docs)."""


def compose_file() -> Dict[str, Any]:
    """docker-compose.yml: Prometheus, Alertmanager, Pushgateway and Grafana."""

    def mount(name: str) -> str:
        return f"./{name}:{COMPOSE_MOUNTS[name]}:ro"

    def required(variable: str) -> str:
        """A reference to a variable (no secret here): compose refuses to start without it."""
        return f"${{{variable}:?set {variable} (see README.md)}}"

    return {
        "services": {
            "prometheus": {
                "image": PROMETHEUS_IMAGE,
                "command": [
                    "--config.file=/etc/prometheus/prometheus.yml",
                    "--storage.tsdb.path=/prometheus",
                    "--storage.tsdb.retention.time=15d",
                ],
                "ports": ["9090:9090"],
                "volumes": [mount("prometheus.yml"), mount(ALERTS_FILE),
                            "prometheus-data:/prometheus"],
                "extra_hosts": ["host.docker.internal:host-gateway"],
                "restart": "unless-stopped",
            },
            "alertmanager": {
                "image": ALERTMANAGER_IMAGE,
                "command": [
                    "--config.file=/etc/alertmanager/alertmanager.yml",
                    "--storage.path=/alertmanager",
                ],
                "ports": ["9093:9093"],
                "volumes": [mount("alertmanager.yml"), "alertmanager-data:/alertmanager"],
                "restart": "unless-stopped",
            },
            "pushgateway": {
                "image": PUSHGATEWAY_IMAGE,
                "ports": ["9091:9091"],
                "restart": "unless-stopped",
            },
            "grafana": {
                "image": GRAFANA_IMAGE,
                "ports": ["3000:3000"],
                "environment": {
                    "GF_SECURITY_ADMIN_PASSWORD": required("GRAFANA_ADMIN_PASSWORD"),
                    "GF_USERS_ALLOW_SIGN_UP": "false",
                },
                "volumes": [
                    mount("grafana/provisioning/datasources/mgit.yml"),
                    mount("grafana/provisioning/dashboards/mgit.yml"),
                    mount("grafana-dashboard.json"),
                    "grafana-data:/var/lib/grafana",
                ],
                "depends_on": ["prometheus"],
                "restart": "unless-stopped",
            },
        },
        "volumes": {"alertmanager-data": {}, "grafana-data": {}, "prometheus-data": {}},
    }  # fmt: skip


def grafana_datasources(datasource: str) -> Dict[str, Any]:
    """Grafana datasource provisioning: the compose Prometheus, as the default."""
    return {
        "apiVersion": 1,
        "datasources": [{
            "name": datasource,
            "type": "prometheus",
            "uid": DATASOURCE_UID,
            "access": "proxy",
            "url": "http://prometheus:9090",
            "isDefault": True,
            "editable": False,
        }],
    }  # fmt: skip


def grafana_dashboards_provider() -> Dict[str, Any]:
    """Grafana dashboard provisioning: load the dashboard from its mounted folder."""
    folder = COMPOSE_MOUNTS["grafana-dashboard.json"].rsplit("/", 1)[0]
    return {
        "apiVersion": 1,
        "providers": [{
            "name": "mgit",
            "folder": "mgit",
            "type": "file",
            "disableDeletion": False,
            "allowUiUpdates": True,
            "options": {"path": folder},
        }],
    }  # fmt: skip


# -- Kubernetes --------------------------------------------------------------------------

_LABELS = {"app": "mgit"}


def _pod_security() -> Dict[str, Any]:
    """Pods run as nobody with the runtime's default seccomp profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": 65534,
        "runAsGroup": 65534,
        "fsGroup": 65534,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security() -> Dict[str, Any]:
    """Containers gain no privilege, drop every capability and write only their volumes."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _meta(name: str, namespace: str) -> Dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(_LABELS)}


def deployment(namespace: str, port: int) -> Dict[str, Any]:
    """The mgit monitoring server: probes, non-root, read-only root, emptyDir state."""

    def probe(path: str, **timing: int) -> Dict[str, Any]:
        return dict({"httpGet": {"path": path, "port": "monitoring"}}, **timing)

    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta("mgit", namespace),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(_LABELS)},
            "template": {
                "metadata": {"labels": dict(_LABELS)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": _pod_security(),
                    "containers": [{
                        "name": "mgit",
                        "image": IMAGE,
                        "command": ["mgit-monitoring", "server", "--host", _POD_HOST,
                                    "--port", str(port)],
                        "env": [
                            {"name": "MGIT_MONITORING_STATE_DIR", "value": STATE_DIR},
                            {"name": "HOME", "value": _POD_TMP},
                        ],
                        "ports": [{"containerPort": port, "name": "monitoring",
                                   "protocol": "TCP"}],
                        "startupProbe": probe("/health/live", periodSeconds=2,
                                              failureThreshold=30),
                        "readinessProbe": probe("/health/ready", initialDelaySeconds=10,
                                                periodSeconds=5),
                        "livenessProbe": probe("/health/live", initialDelaySeconds=30,
                                               periodSeconds=10),
                        "resources": {
                            "requests": {"cpu": "50m", "memory": "64Mi"},
                            "limits": {"cpu": "500m", "memory": "256Mi"},
                        },
                        "securityContext": _container_security(),
                        "volumeMounts": [
                            {"name": "state", "mountPath": STATE_DIR},
                            {"name": "tmp", "mountPath": _POD_TMP},
                        ],
                    }],
                    "volumes": [
                        {"name": "state", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    ],
                },
            },
        },
    }  # fmt: skip


def service(namespace: str, port: int) -> Dict[str, Any]:
    """The Service in front of the server, with the named ``monitoring`` port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta("mgit-monitoring", namespace),
        "spec": {
            "selector": dict(_LABELS),
            "ports": [{"name": "monitoring", "port": port, "targetPort": "monitoring",
                       "protocol": "TCP"}],
        },
    }  # fmt: skip


def service_monitor(namespace: str, job: str) -> Dict[str, Any]:
    """Prometheus Operator ServiceMonitor scraping the Service's ``monitoring`` port."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _meta("mgit", namespace),
        "spec": {
            "jobLabel": "app",
            "selector": {"matchLabels": dict(_LABELS)},
            "endpoints": [{"port": "monitoring", "path": "/metrics", "interval": "30s"}],
        },
    }


def prometheus_rule(namespace: str, groups: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Prometheus Operator PrometheusRule holding exactly the alerts file's groups."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _meta("mgit", namespace),
        "spec": {"groups": groups},
    }


def cronjob(namespace: str, job: str) -> Dict[str, Any]:
    """A nightly mgit run that pushes its metrics to a Pushgateway, even when it fails."""
    script = (
        'mgit sync "$MGIT_ORGANIZATION" /work; status=$?\n'
        f'mgit-monitoring metrics --push-gateway "$PUSHGATEWAY_URL" --job {job}-cronjob\n'
        "exit $status\n"
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _meta("mgit-sync", namespace),
        "spec": {
            "schedule": "0 2 * * *",
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": {"app": "mgit-sync"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "securityContext": _pod_security(),
                        "containers": [{
                            "name": "mgit",
                            "image": IMAGE,
                            "command": ["/bin/sh", "-c", script],
                            "env": [
                                {"name": "MGIT_ORGANIZATION", "value": "my-org"},
                                {"name": "PUSHGATEWAY_URL",
                                 "value": f"http://pushgateway.{namespace}.svc:9091"},
                                {"name": "MGIT_MONITORING_STATE_DIR", "value": STATE_DIR},
                                {"name": "HOME", "value": _POD_TMP},
                            ],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"cpu": "1", "memory": "512Mi"},
                            },
                            "securityContext": _container_security(),
                            "volumeMounts": [
                                {"name": "state", "mountPath": STATE_DIR},
                                {"name": "work", "mountPath": "/work"},
                                {"name": "tmp", "mountPath": _POD_TMP},
                            ],
                        }],
                        "volumes": [
                            {"name": "state", "emptyDir": {}},
                            {"name": "work", "emptyDir": {}},
                            {"name": "tmp", "emptyDir": {}},
                        ],
                    },
                },
            }},
        },
    }  # fmt: skip


SYSTEMD_EXEC = "/usr/local/bin/mgit-monitoring"
"""Where ``pip install`` puts the console script system-wide; change it for a venv."""


def systemd_unit(port: int) -> str:
    """mgit-monitoring.service: the server as a sandboxed dynamic user."""
    return f"""\
[Unit]
Description=mgit monitoring server (Prometheus metrics and health endpoints)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={SYSTEMD_EXEC} server --host 0.0.0.0 --port {port}
Environment=MGIT_MONITORING_STATE_DIR=/var/lib/mgit-monitoring
Restart=on-failure
RestartSec=5s
DynamicUser=yes
StateDirectory=mgit-monitoring
StateDirectoryMode=0750
UMask=0027
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectClock=yes
ProtectHostname=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources

[Install]
WantedBy=multi-user.target
"""
