#!/usr/bin/env python3
"""Keep the package's shape: imports point down the layers, and only public names cross.

Reads every module of ``mgit_monitoring/`` with ``ast`` (nothing is imported) and fails on:
- a module missing from LAYERS, or a layer entry with no module;
- an import of a module in the same or a higher layer (function-level imports included),
  and any import of the package root from inside the package;
- a ``_private`` name imported from, or read as an attribute of, another package module.
A cycle is impossible when every import points to a strictly lower layer.

Run by ``make lint`` and by tests/test_package.py. LAYERS is the README's module map.
"""

from __future__ import annotations

import ast
import pathlib
import sys
from typing import Dict, List

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "mgit_monitoring"

#: Bottom to top. A module may import only modules of lower layers.
LAYERS: List[List[str]] = [
    # 0. Foundations: data and helpers that import nothing from the package.
    ["errors", "version", "metric_definitions", "fork_hooks", "warn_once", "masking",
     "wrapping", "api_responses", "check_support", "store_dir", "yaml_text", "page",
     "log_file", "package_log"],
    # 1. Values and settings: samples, configuration, correlation scopes, the store file.
    ["samples", "config", "context", "store", "health_report", "http_auth", "log_encoding",
     "context_threads", "log_writer",
     "promql"],
    # 2. Instruments, renderers and the single checks.
    ["metric_types", "exposition", "operation_stats", "log_formatter", "health",
     "host_checks", "git_check", "network_checks", "credential_check", "alert_rules",
     "grafana_dashboard"],
    # 3. Registries, the structured logger, the pure HTTP application, deployment files.
    ["registry", "push", "structured_logger", "log_console", "http_app", "deploy_files"],
    # 4. What builds on a registry or on the checks: shared state, the performance
    #    monitor, log setup, the default checker, process metrics, generate-config.
    ["shared_state", "performance", "logs", "default_checks", "process_metrics",
     "generate_config"],
    # 5. The seed's MetricsCollector.
    ["collector"],
    # 6. The decorators, and the two ways to serve the app (sockets, WSGI).
    ["operation_decorators", "server", "wsgi"],
    # 7. setup_monitoring_integration(): wires everything for an application.
    ["integration"],
    # 8. The demo (uses integration and server).
    ["demo"],
    # 9. The command line.
    ["cli"],
]  # fmt: skip


def _layer_of() -> Dict[str, int]:
    return {m: i for i, layer in enumerate(LAYERS) for m in layer}


def problems(package_dir: pathlib.Path = ROOT / PACKAGE) -> List[str]:
    rank = _layer_of()
    found: List[str] = []
    modules = sorted(p.stem for p in package_dir.glob("*.py") if p.stem != "__init__")
    for m in modules:
        if m not in rank and m != "__main__":
            found.append(f"{m}.py is not in tools/check_layers.py LAYERS")
    for m in rank:
        if m not in modules:
            found.append(f"LAYERS names {m}, which does not exist")
    for m in modules + ["__init__"]:
        path = package_dir / f"{m}.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases: Dict[str, str] = {}  # local name -> package module it stands for
        for node in ast.walk(tree):
            targets: List[tuple] = []
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name == PACKAGE or a.name.startswith(PACKAGE + "."):
                        sub = a.name[len(PACKAGE) + 1 :] or "__init__"
                        targets.append((sub, None))
                        if a.asname:
                            aliases[a.asname] = sub
            elif isinstance(node, ast.ImportFrom) and node.module:
                mod = node.module
                if node.level:
                    mod = f"{PACKAGE}.{mod}"
                if mod == PACKAGE:
                    for a in node.names:
                        if (package_dir / f"{a.name}.py").exists():
                            targets.append((a.name, None))
                            aliases[a.asname or a.name] = a.name
                        else:
                            targets.append(("__init__", a.name))
                elif mod.startswith(PACKAGE + "."):
                    sub = mod[len(PACKAGE) + 1 :]
                    for a in node.names:
                        targets.append((sub, a.name))
            for target, name in targets:
                where = f"{PACKAGE}/{m}.py:{node.lineno}"
                if m in ("__init__", "__main__"):
                    pass  # the table of contents and the entry point sit above everything
                elif target == "__init__":
                    found.append(f"{where} imports the package root (upward)")
                elif target in rank and m in rank and rank[target] >= rank[m]:
                    found.append(
                        f"{where} imports {target} (layer {rank[target]}) from layer {rank[m]}"
                    )
                if name is not None and name.startswith("_") and not name.startswith("__"):
                    found.append(f"{where} imports private name {target}.{name}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                found.append(
                    f"{PACKAGE}/{m}.py:{node.lineno} reads private "
                    f"{aliases[node.value.id]}.{node.attr}"
                )
    return found


def main() -> int:
    found = problems()
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} layering problem(s)", file=sys.stderr)
        return 1
    print(f"layers ok: {sum(len(x) for x in LAYERS)} modules in {len(LAYERS)} layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
