"""The package as a whole: stdlib only, a side-effect-free import, a complete table of contents."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import pathlib
import pkgutil
import subprocess
import sys
import sysconfig
import textwrap
import unittest

import mgit_monitoring

PACKAGE_DIR = pathlib.Path(mgit_monitoring.__file__).parent
ROOT = PACKAGE_DIR.parent


def _is_stdlib(name: str) -> bool:
    """True for a standard-library top-level module (3.10+: the interpreter's own list)."""
    names = getattr(sys, "stdlib_module_names", None)
    if names is not None:
        return name in names
    # 3.8/3.9: where the module lives - built in, or under the stdlib but not site-packages.
    if name in sys.builtin_module_names:
        return True
    spec = importlib.util.find_spec(name)
    if spec is None:
        return False
    origin = spec.origin or ""
    if origin in ("built-in", "frozen"):
        return True
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    path = os.path.realpath(origin)
    return path.startswith(stdlib + os.sep) and "site-packages" not in path


def _imports(path: pathlib.Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


class TestStandardLibraryOnly(unittest.TestCase):
    def test_every_import_is_stdlib_or_the_package(self):
        """No module of the package imports anything outside the standard library."""
        bad = []
        for path in sorted(PACKAGE_DIR.rglob("*.py")):
            for lineno, name in _imports(path):
                root = name.split(".")[0]
                if root not in ("__future__", "mgit_monitoring") and not _is_stdlib(root):
                    bad.append(f"{path.relative_to(ROOT)}:{lineno} imports {name}")
        self.assertEqual([], bad)

    def test_no_module_shadows_a_stdlib_module(self):
        """Module names never collide with the standard library (logs.py, not logging.py)."""
        clashes = [
            p.name
            for p in PACKAGE_DIR.glob("*.py")
            if not p.stem.startswith("__") and _is_stdlib(p.stem)
        ]
        self.assertEqual([], clashes)

    def test_every_module_imports(self):
        """Every module of the package imports cleanly on this interpreter."""
        for info in pkgutil.walk_packages(mgit_monitoring.__path__, "mgit_monitoring."):
            with self.subTest(module=info.name):
                importlib.import_module(info.name)


class TestTableOfContents(unittest.TestCase):
    def test_all_names_resolve(self):
        """Every name in __all__ resolves to an object."""
        for name in mgit_monitoring.__all__:
            with self.subTest(name=name):
                self.assertIsNotNone(getattr(mgit_monitoring, name))

    def test_all_is_sorted(self):
        """__all__ is sorted, so the table of contents reads like one."""
        self.assertEqual(sorted(mgit_monitoring.__all__), list(mgit_monitoring.__all__))

    def test_unknown_name_is_attribute_error(self):
        """A missing name raises AttributeError that names it."""
        with self.assertRaisesRegex(AttributeError, "no_such_thing"):
            mgit_monitoring.no_such_thing  # noqa: B018

    def test_import_has_no_side_effects(self):
        """Importing and resolving every export starts no thread, adds no handler, reads no env."""
        code = textwrap.dedent(
            """
            import logging, os, sys, threading
            reads = []
            class Spy(dict):
                def __getitem__(self, k):
                    reads.append(k); return dict.__getitem__(self, k)
                def get(self, k, d=None):
                    reads.append(k); return dict.get(self, k, d)
                def __contains__(self, k):
                    reads.append(k); return dict.__contains__(self, k)
            before_threads = threading.active_count()
            before_handlers = list(logging.getLogger().handlers)
            os.environ = Spy(os.environ)
            import mgit_monitoring
            for name in mgit_monitoring.__all__:
                getattr(mgit_monitoring, name)
            ours = [k for k in reads if k.startswith("MGIT")]
            assert threading.active_count() == before_threads, threading.enumerate()
            assert logging.getLogger().handlers == before_handlers
            assert not ours, ours
            print("clean")
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        self.assertEqual("clean", out.stdout.strip(), out.stderr)


if __name__ == "__main__":
    unittest.main()


class TestLayers(unittest.TestCase):
    def test_imports_point_down_and_only_public_names_cross(self):
        """tools/check_layers.py finds no cycle, upward import or private cross-module name."""
        spec = importlib.util.spec_from_file_location(
            "check_layers", ROOT / "tools" / "check_layers.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.assertEqual([], module.problems(PACKAGE_DIR))

    def test_the_checker_catches_an_upward_import(self):
        """The checker is not vacuous: a lower module importing a higher one is reported."""
        import tempfile

        spec = importlib.util.spec_from_file_location(
            "check_layers", ROOT / "tools" / "check_layers.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        with tempfile.TemporaryDirectory() as tmp:
            d = pathlib.Path(tmp)
            (d / "low.py").write_text("from mgit_monitoring.high import thing\n")
            (d / "high.py").write_text("from mgit_monitoring.low import _secret\n")
            (d / "__init__.py").write_text("")
            saved = module.LAYERS
            module.LAYERS = [["low"], ["high"]]
            try:
                found = module.problems(d)
            finally:
                module.LAYERS = saved
        self.assertTrue(any("low.py:1 imports high" in f for f in found), found)
        self.assertTrue(any("private name low._secret" in f for f in found), found)
