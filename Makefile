# mgit_monitoring developer commands. Every target is .PHONY. test-matrix skips a Python it
# cannot find; lint fails when a tool is missing (make test-deps installs them all).
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the interop tests talk to (real peers, never mocks).
DEB_PEERS := prometheus prometheus-node-exporter prometheus-pushgateway prometheus-alertmanager \
	docker-compose systemd jq wrk openssl git chromium faketime util-linux
PY_VERSIONS := 3.8 3.9 3.10 3.11 3.12 3.13
# A version test-matrix leaves out because the main pass ran it (.ci/run passes its own).
MATRIX_SKIP ?=

.PHONY: test test-matrix test-deps bench lint typecheck clean assets

test:
	$(PYTHON) -m unittest discover -s tests -t . $(if $(V),-v,)

test-matrix:
	@status=0; found=0; \
	for v in $(PY_VERSIONS); do \
	  py=""; \
	  if command -v pyenv >/dev/null 2>&1 && p=$$(pyenv prefix $$v 2>/dev/null); then py="$$p/bin/python3"; fi; \
	  [ -x "$$py" ] || py=$$(command -v python$$v || true); \
	  if [ -z "$$py" ]; then echo "== Python $$v: not found, skipped"; continue; fi; \
	  found=$$((found+1)); \
	  if [ "$$v" = "$(MATRIX_SKIP)" ]; then echo "== Python $$v: ran in the main pass (MATRIX_SKIP)"; continue; fi; \
	  echo "== Python $$v ($$py)"; \
	  MGIT_MONITORING_REQUIRE_INTEROP= MGIT_MONITORING_SOAK_SECONDS=0 MGIT_MONITORING_MATRIX_LANE=1 \
	    $$py -m unittest discover -s tests -t . || status=1; \
	done; \
	[ $$found -gt 0 ] || { echo "no Python 3.8-3.13 interpreter found"; exit 1; }; \
	exit $$status

test-deps:
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_PEERS)
	$(PYTHON) -m pip install -q -r requirements-test.txt -r requirements-lint.txt

# Regenerate the committed monitoring assets (a test fails when they drift).
assets:
	$(PYTHON) -c 'import sys; from mgit_monitoring.generate_config import main; sys.exit(main(sys.argv[1:]))' --output monitoring_assets --force

# Every bench/bench_*.py, then one table of all figures against their anchors; records the
# run in BENCHMARKS.md (bench-quick: a smoke run, nothing written).
bench:
	$(PYTHON) bench/report.py --markdown BENCHMARKS.md

.PHONY: bench-quick
bench-quick:
	$(PYTHON) bench/report.py --quick

# Every check runs, then the target fails if any found something. The tools are pinned in
# requirements-lint.txt; a missing one fails (CI runs this on a fresh machine). mypy is strict
# (pyproject.toml); bandit findings are fixed or justified inline (`# nosec BXXX # reason`);
# vermin holds the package to Python 3.8.
LINT_TOOLS := ruff mypy bandit vermin
VERMIN := $(PYTHON) -c 'import sys, vermin; sys.exit(vermin.main())'

lint:
	@missing=""; for t in $(LINT_TOOLS); do \
	  $(PYTHON) -c "import $$t" 2>/dev/null || missing="$$missing $$t"; \
	done; \
	[ -z "$$missing" ] || { echo "lint: not installed:$$missing (make test-deps installs them)"; exit 1; }
	@status=0; \
	echo "== layers"; $(PYTHON) tools/check_layers.py || status=1; \
	echo "== ruff"; $(PYTHON) -m ruff check mgit_monitoring tests bench || status=1; \
	$(PYTHON) -m ruff format --check mgit_monitoring || status=1; \
	echo "== mypy (strict)"; $(PYTHON) -m mypy mgit_monitoring || status=1; \
	echo "== bandit"; $(PYTHON) -m bandit -q -r mgit_monitoring -f custom \
	  --msg-template '{relpath}:{line}:{col}: {test_id} [{severity}] {msg}' || status=1; \
	echo "== vermin (Python 3.8+)"; $(VERMIN) -q -t=3.8- --violations --no-tips mgit_monitoring || status=1; \
	exit $$status

typecheck:
	@$(PYTHON) -c "import mypy" 2>/dev/null || { echo "typecheck: mypy is not installed (make test-deps installs it)"; exit 1; }
	$(PYTHON) -m mypy mgit_monitoring

# The wheel and the sdist in $(DIST), offline: tools/build_backend.py (the PEP 517 backend that
# pyproject.toml names) needs no setuptools, wheel, build or index. Install the wheel anywhere
# with `pip install --no-index dist/mgit_monitoring-*.whl`.
DIST ?= dist
.PHONY: dist
dist:
	$(PYTHON) tools/build_backend.py --outdir $(DIST) wheel sdist

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
