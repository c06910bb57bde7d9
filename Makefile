# mgit_monitoring developer commands. Every target is .PHONY; optional dev tools are
# skipped with a message when absent.
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the interop tests talk to (real peers, never mocks).
DEB_PEERS := prometheus prometheus-node-exporter prometheus-pushgateway prometheus-alertmanager \
	docker-compose systemd jq wrk openssl git chromium faketime util-linux
PY_VERSIONS := 3.8 3.9 3.10 3.11 3.12 3.13

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
	  found=$$((found+1)); echo "== Python $$v ($$py)"; \
	  MGIT_MONITORING_REQUIRE_INTEROP= MGIT_MONITORING_SOAK_SECONDS=0 $$py -m unittest discover -s tests -t . || status=1; \
	done; \
	[ $$found -gt 0 ] || { echo "no Python 3.8-3.13 interpreter found"; exit 1; }; \
	exit $$status

test-deps:
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_PEERS)
	$(PYTHON) -m pip install -q -r requirements-test.txt

# Regenerate the committed monitoring assets (a test fails when they drift).
assets:
	$(PYTHON) -c 'import sys; from mgit_monitoring.generate_config import main; sys.exit(main(sys.argv[1:]))' --output monitoring_assets --force

bench:
	@for b in bench/bench_*.py; do echo "== $$b"; $(PYTHON) $$b || exit 1; done

lint:
	$(PYTHON) tools/check_layers.py
	@if $(PYTHON) -m ruff --version >/dev/null 2>&1; then \
	  $(PYTHON) -m ruff check mgit_monitoring tests bench && $(PYTHON) -m ruff format --check mgit_monitoring; \
	else echo "ruff not installed: lint skipped"; fi
	@if $(PYTHON) -m mypy --version >/dev/null 2>&1; then \
	  $(PYTHON) -m mypy mgit_monitoring; \
	else echo "mypy not installed: typecheck skipped"; fi

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
