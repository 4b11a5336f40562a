# The README's commands. `make install` creates .venv with the project and its dev tools;
# every other target depends on it, so on a fresh machine `make demo` and `make test` just work.

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then echo $$p; break; fi; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_DB ?= demo.db
SOURCES := cymetica_mcp tests examples benchmarks

DEMO_KEY ?= $(DEMO_DB).key
PORT ?= 8000

.PHONY: install demo test lint typecheck architecture bench bench-quick bench-pg bench-pg-quick bench-100m soak clean assets screenshots

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is required (python3.11, python3.12, python3.13 or python3)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

# The main job on the embedded default: a demo store (built once), an API key that may read and ingest
# (created once, kept in $(DEMO_KEY)), the dashboard as the CLI shows it, then the server with every
# door and, beside it, a simulator sending live trades (SIMULATE=0 leaves it out) until Ctrl-C.
SIMULATE ?= 1

demo: install
	@test -f $(DEMO_DB) || { rm -f $(DEMO_KEY); $(BIN)/cymetica-mcp --db $(DEMO_DB) demo; }
	@test -s $(DEMO_KEY) || $(BIN)/cymetica-mcp --db $(DEMO_DB) keys create --name make-demo --scope read,ingest > $(DEMO_KEY)
	@$(BIN)/cymetica-mcp --db $(DEMO_DB) dashboard --filter all --period 24h
	@echo
	@echo "Dashboard page: http://127.0.0.1:$(PORT)/ (sign in with the key below)"
	@echo "API key (also in $(DEMO_KEY)): $$(cat $(DEMO_KEY))"
	@echo "MCP over stdio: CYMETICA_DB=$(DEMO_DB) CYMETICA_API_KEY=$$(cat $(DEMO_KEY)) $(BIN)/cymetica-mcp mcp"
	@echo "Try (once it serves): curl -H \"Authorization: Bearer $$(cat $(DEMO_KEY))\" \"http://127.0.0.1:$(PORT)/api/v1/analytics/dashboard?filter=agents&period=7d\""
	@if [ "$(SIMULATE)" != 0 ]; then echo "Live trades: a simulator sends about 20 a second (Ctrl-C stops both; make demo SIMULATE=0 for none)"; fi
	@echo
	@if [ "$(SIMULATE)" != 0 ]; then \
		$(BIN)/cymetica-mcp simulate --url http://127.0.0.1:$(PORT) --key $$(cat $(DEMO_KEY)) --rate 20 --quiet & \
	fi; \
	CYMETICA_API_KEY=$$(cat $(DEMO_KEY)) $(BIN)/cymetica-mcp --db $(DEMO_DB) serve --port $(PORT)

lint: install
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)

typecheck: install
	$(BIN)/mypy cymetica_mcp tests

# The layers of docs/architecture.md, as import-linter contracts in pyproject.toml: a wrong arrow fails here.
architecture: install
	$(BIN)/lint-imports --no-cache

# Branch coverage of the package, in this process (commands run as subprocesses are exercised, not
# counted); under 90% fails.
test: lint typecheck architecture
	$(BIN)/coverage run -m pytest -q
	@total=$$($(BIN)/coverage report --format=total); \
	echo "branch coverage of cymetica_mcp: $$total% (90% at least)"; test "$$total" -ge 90

# Issue 6's targets as ratios against references measured in the same run (see README: Performance).
bench: install
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m benchmarks.run --size full

bench-quick: install
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m benchmarks.run --size quick

# Issue 17's PostgreSQL targets alone, on a throwaway cluster (needs the distribution's postgresql):
# import vs psql \copy, a PostgreSQL-backed server vs a SQLite-backed one, replica catch-up.
bench-pg: install
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m benchmarks.pg --size full

bench-pg-quick: install
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m benchmarks.pg --size quick

# The dashboard page, the MCP App view and the test host page, rebuilt from frontend/ with the versions
# of frontend/package-lock.json (needs Node.js 20+ and npm). The built files are committed, so demo and
# test need no Node.js.
assets:
	cd frontend && npm ci --ignore-scripts --no-audit --no-fund && node build.mjs

# The page (1280x800 and 390x844, light and dark) and the MCP App view as PNGs under docs/, over a fresh
# demo store at a fixed CYMETICA_NOW (needs /usr/bin/chromium: apt-get install -y chromium).
screenshots: install
	$(BIN)/python -m tests.browser.screenshots docs/screenshots

# Every door under load at once against a real `cymetica-mcp serve` on 127.0.0.1, then the proof (see
# benchmarks/soak/__init__.py): 120 s by default (the run `make test` makes), longer with SOAK_SECONDS=1800.
SOAK_SECONDS ?= 120
SOAK_JSON ?= benchmarks/results/soak-latest.json

soak: install
	$(BIN)/python -m benchmarks.soak --seconds $(SOAK_SECONDS) --json $(SOAK_JSON)

# Issue 16's scale targets at 100M trades by 200k users over 95 days: not in CI. It needs about 45 GB
# free under benchmarks/data (the CSV, the pristine store, the run's copies, the kept index) and about
# 25 minutes on 2 cores the first time (10 of them generating the data), 12 after.
BENCH_100M_GB ?= 45

bench-100m: install
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	@mkdir -p benchmarks/data
	@free=$$(df -Pk benchmarks/data | awk 'NR == 2 {print int($$4 / 1048576)}'); \
	echo "bench-100m: 100M trades, 200k users, 95 days; needs about $(BENCH_100M_GB) GB of disk (free: $$free GB) and about 25 minutes the first time (10 of them generating the data), 12 after"; \
	test "$$free" -ge "$(BENCH_100M_GB)" || { echo "not enough free disk under benchmarks/data: $$free GB < $(BENCH_100M_GB) GB"; exit 1; }
	$(BIN)/python -m benchmarks.run --size 100m --no-doors

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm $(DEMO_KEY)
