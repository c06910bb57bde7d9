#!/usr/bin/env python3
"""The project's PEP 517 build backend: wheels and sdists with the standard library only.

Why not setuptools: an air-gapped site often has a Python 3.12+ venv, which has no
setuptools, and no index to fetch it from; ``pip install --no-index .`` then fails before
it has read a line of this project. This backend needs nothing beyond the interpreter
(pyproject.toml names it with ``backend-path``, and ``requires = []``), so on any Python
3.8-3.13 with pip:

* ``pip install --no-index .`` and ``pip install --no-index -e .`` work offline;
* ``pip wheel --no-index --no-deps -w dist .`` builds the wheel;
* ``python3 tools/build_backend.py`` (what ``make dist`` runs) builds the wheel and the
  sdist into ``dist/`` without pip at all; ``python3 -m build --no-isolation`` works too.

The metadata lives in setup.cfg (read with :mod:`configparser`, so setuptools could still
read the same file): name, version (``attr:`` -> read from the module's source with
:mod:`ast`, nothing imported), summary, README as the long description, license files,
classifiers, ``python_requires``, package data and console scripts. The wheel holds the
package (``*.py`` plus the package data) and a ``*.dist-info``; the sdist holds the whole
source tree a distribution packager needs: package, tests, tools, bench, monitoring assets,
README, CHANGELOG, LICENSE, Makefile and the build configuration.

Archives are reproducible: sorted entries, fixed modes, owner 0, and every timestamp set to
``SOURCE_DATE_EPOCH`` (default 2000-01-01).
"""

from __future__ import annotations

import ast
import base64
import configparser
import fnmatch
import gzip
import hashlib
import io
import os
import re
import sys
import tarfile
import time
import zipfile
from typing import Dict, Iterator, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: What the sdist carries besides PKG-INFO (files, or directories walked recursively).
SDIST_INCLUDE = (
    "BENCHMARKS.md",
    "CHANGELOG.md",
    "LICENSE",
    "Makefile",
    "README.md",
    "pyproject.toml",
    "requirements-lint.txt",
    "requirements-test.txt",
    "setup.cfg",
    "bench",
    "mgit_monitoring",
    "monitoring_assets",
    "tests",
    "tools",
)
_SKIP_DIRS = {"__pycache__", ".git", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
_SKIP_FILES = ("*.pyc", "*.pyo", "*~", ".*.swp", ".DS_Store")
_DEFAULT_EPOCH = 946684800  # 2000-01-01T00:00:00Z


# -- metadata from setup.cfg ---------------------------------------------------------------


class Project:
    """The distribution as setup.cfg describes it."""

    def __init__(self, root: str = ROOT) -> None:
        self.root = root
        cfg = configparser.ConfigParser(interpolation=None)
        with open(os.path.join(root, "setup.cfg"), encoding="utf-8") as handle:
            cfg.read_file(handle)
        meta = cfg["metadata"]
        options = cfg["options"] if cfg.has_section("options") else {}
        self.name: str = meta["name"].strip()
        self.version: str = self._value(meta["version"])
        self.summary: str = meta.get("description", "").strip()
        self.license: str = meta.get("license", "").strip()
        self.license_files: List[str] = _lines(meta.get("license_files", ""))
        self.classifiers: List[str] = _lines(meta.get("classifiers", ""))
        self.readme_type: str = meta.get("long_description_content_type", "text/plain").strip()
        self.readme: str = self._value(meta.get("long_description", ""))
        self.requires_python: str = options.get("python_requires", "").strip()
        if _lines(options.get("install_requires", "")):
            raise ValueError("this backend builds dependency-free distributions only")
        find = cfg["options.packages.find"] if cfg.has_section("options.packages.find") else {}
        self.packages: List[str] = [
            p for p in _lines(find.get("include", "").replace(",", "\n")) if "*" not in p
        ]
        self.package_data: Dict[str, List[str]] = {}
        if cfg.has_section("options.package_data"):
            for package, patterns in cfg["options.package_data"].items():
                self.package_data[package] = [
                    p.strip() for p in patterns.replace("\n", ",").split(",") if p.strip()
                ]
        self.entry_points: Dict[str, List[str]] = {}
        if cfg.has_section("options.entry_points"):
            for group, lines in cfg["options.entry_points"].items():
                self.entry_points[group] = _lines(lines)
        if not re.fullmatch(
            r"[0-9]+(\.[0-9]+)*((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?", self.version
        ):
            raise ValueError(f"version {self.version!r} is not a normalized PEP 440 version")

    def _value(self, raw: str) -> str:
        raw = raw.strip()
        if raw.startswith("attr:"):
            dotted = raw[len("attr:") :].strip()
            module, _, attr = dotted.rpartition(".")
            path = os.path.join(self.root, *module.split(".")) + ".py"
            with open(path, encoding="utf-8") as handle:
                tree = ast.parse(handle.read(), path)
            for node in tree.body:
                if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == attr for t in node.targets
                ):
                    return str(ast.literal_eval(node.value))
            raise ValueError(f"{dotted} is not assigned a literal in {path}")
        if raw.startswith("file:"):
            names = [n.strip() for n in raw[len("file:") :].split(",") if n.strip()]
            texts = []
            for name in names:
                with open(os.path.join(self.root, name), encoding="utf-8") as handle:
                    texts.append(handle.read())
            return "\n".join(texts)
        return raw

    @property
    def dist_name(self) -> str:
        """The name as it appears in file names: ``mgit_monitoring``."""
        return re.sub(r"[-_.]+", "_", self.name).lower()

    @property
    def dist_info(self) -> str:
        return f"{self.dist_name}-{self.version}.dist-info"

    @property
    def wheel_name(self) -> str:
        return f"{self.dist_name}-{self.version}-py3-none-any.whl"

    @property
    def sdist_name(self) -> str:
        return f"{self.dist_name}-{self.version}.tar.gz"

    def metadata(self) -> bytes:
        """The core metadata (METADATA / PKG-INFO), version 2.1."""
        lines = [
            "Metadata-Version: 2.1",
            f"Name: {self.name}",
            f"Version: {self.version}",
        ]
        if self.summary:
            lines.append(f"Summary: {self.summary}")
        if self.license:
            lines.append(f"License: {self.license}")
        lines += [f"Classifier: {c}" for c in self.classifiers]
        if self.requires_python:
            lines.append(f"Requires-Python: {self.requires_python}")
        if self.readme:
            lines.append(f"Description-Content-Type: {self.readme_type}")
        text = "\n".join(lines) + "\n"
        if self.readme:
            text += "\n" + self.readme
        return text.encode("utf-8")

    def entry_points_txt(self) -> bytes:
        out = []
        for group, entries in sorted(self.entry_points.items()):
            out.append(f"[{group}]")
            out += [" = ".join(part.strip() for part in e.split("=", 1)) for e in entries]
            out.append("")
        return "\n".join(out).encode("utf-8")

    def wheel_file(self) -> bytes:
        return (
            "Wheel-Version: 1.0\n"
            f"Generator: {self.dist_name} tools/build_backend.py\n"
            "Root-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ).encode()

    def package_files(self) -> List[str]:
        """Source-relative paths of the files the wheel installs (``*.py`` and package data)."""
        found = []
        for package in self.packages:
            folder = os.path.join(self.root, *package.split("."))
            patterns = ["*.py", *self.package_data.get(package, [])]
            for name in sorted(os.listdir(folder)):
                path = os.path.join(folder, name)
                if os.path.isfile(path) and any(fnmatch.fnmatch(name, p) for p in patterns):
                    found.append(os.path.relpath(path, self.root).replace(os.sep, "/"))
        return found

    def dist_info_files(self) -> List[Tuple[str, bytes]]:
        files = [
            ("METADATA", self.metadata()),
            ("WHEEL", self.wheel_file()),
        ]
        if self.entry_points:
            files.append(("entry_points.txt", self.entry_points_txt()))
        for name in self.license_files:
            with open(os.path.join(self.root, name), "rb") as handle:
                files.append((os.path.basename(name), handle.read()))
        return [(f"{self.dist_info}/{name}", data) for name, data in files]

    def sdist_files(self) -> List[str]:
        found = []
        for top in SDIST_INCLUDE:
            path = os.path.join(self.root, top)
            if os.path.isfile(path):
                found.append(top)
            elif os.path.isdir(path):
                for folder, dirs, files in os.walk(path):
                    dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
                    for name in sorted(files):
                        if not any(fnmatch.fnmatch(name, p) for p in _SKIP_FILES):
                            rel = os.path.relpath(os.path.join(folder, name), self.root)
                            found.append(rel.replace(os.sep, "/"))
        return found


def _lines(text: str) -> List[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    return max(int(value), 315532800) if value.isdigit() else _DEFAULT_EPOCH


# -- archives --------------------------------------------------------------------------------


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _write_wheel(project: Project, directory: str, contents: List[Tuple[str, bytes]]) -> str:
    os.makedirs(directory, exist_ok=True)
    stamp = time.gmtime(_epoch())[:6]
    record_name = f"{project.dist_info}/RECORD"
    record = io.StringIO()
    path = os.path.join(directory, project.wheel_name)
    with zipfile.ZipFile(path + ".tmp", "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in contents:
            info = zipfile.ZipInfo(name, stamp)
            info.external_attr = (0o644 | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
            record.write(f"{name},{_record_hash(data)},{len(data)}\n")
        record.write(f"{record_name},,\n")
        info = zipfile.ZipInfo(record_name, stamp)
        info.external_attr = (0o644 | 0o100000) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, record.getvalue().encode("utf-8"))
    os.replace(path + ".tmp", path)
    return project.wheel_name


def _read(project: Project, rel: str) -> bytes:
    with open(os.path.join(project.root, rel), "rb") as handle:
        return handle.read()


# -- PEP 517 / PEP 660 hooks -----------------------------------------------------------------


def get_requires_for_build_wheel(config_settings: Optional[dict] = None) -> List[str]:
    return []


def get_requires_for_build_sdist(config_settings: Optional[dict] = None) -> List[str]:
    return []


def get_requires_for_build_editable(config_settings: Optional[dict] = None) -> List[str]:
    return []


def prepare_metadata_for_build_wheel(
    metadata_directory: str, config_settings: Optional[dict] = None
) -> str:
    project = Project()
    for name, data in project.dist_info_files():
        target = os.path.join(metadata_directory, *name.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as handle:
            handle.write(data)
    return project.dist_info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(
    wheel_directory: str,
    config_settings: Optional[dict] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    project = Project()
    contents = [(rel, _read(project, rel)) for rel in project.package_files()]
    return _write_wheel(project, wheel_directory, contents + project.dist_info_files())


def build_editable(
    wheel_directory: str,
    config_settings: Optional[dict] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    """A wheel whose ``.pth`` puts this source tree on ``sys.path`` (edits apply at once)."""
    project = Project()
    pth = (project.root + "\n").encode("utf-8")
    contents = [(f"__editable__.{project.dist_name}.pth", pth)]
    return _write_wheel(project, wheel_directory, contents + project.dist_info_files())


def build_sdist(sdist_directory: str, config_settings: Optional[dict] = None) -> str:
    project = Project()
    os.makedirs(sdist_directory, exist_ok=True)
    top = f"{project.dist_name}-{project.version}"
    epoch = _epoch()
    path = os.path.join(sdist_directory, project.sdist_name)

    def entries() -> Iterator[Tuple[str, bytes, int]]:
        yield "PKG-INFO", project.metadata(), 0o644
        for rel in project.sdist_files():
            full = os.path.join(project.root, rel)
            mode = 0o755 if os.stat(full).st_mode & 0o111 else 0o644
            yield rel, _read(project, rel), mode

    with open(path + ".tmp", "wb") as raw, gzip.GzipFile(
        filename="", mode="wb", fileobj=raw, mtime=epoch
    ) as zipped, tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel, data, mode in entries():
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size = len(data)
            info.mtime = epoch
            info.mode = mode
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    os.replace(path + ".tmp", path)
    return project.sdist_name


# -- make dist ---------------------------------------------------------------------------------


def main(argv: Optional[List[str]] = None) -> int:
    """``python3 tools/build_backend.py [--outdir DIR] [wheel] [sdist]``: print what was built."""
    import argparse

    parser = argparse.ArgumentParser(description="Build the wheel and/or sdist offline.")
    parser.add_argument("kinds", nargs="*", metavar="wheel|sdist")
    parser.add_argument("--outdir", default=os.path.join(ROOT, "dist"))
    args = parser.parse_args(argv)
    kinds = args.kinds or ["wheel", "sdist"]
    unknown = [k for k in kinds if k not in ("wheel", "sdist")]
    if unknown:
        parser.error(f"unknown kind {unknown[0]!r}: choose wheel and/or sdist")
    outdir = os.path.abspath(args.outdir)
    try:
        for kind in kinds:
            name = build_wheel(outdir) if kind == "wheel" else build_sdist(outdir)
            print(os.path.join(outdir, name))
    except (OSError, ValueError, KeyError, configparser.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
