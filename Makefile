# The two commands a new machine needs: `make demo` and `make test`. Both create .venv when it is
# missing and install the project into it (re-installing only when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install compile bench image clean

# pip compiles every installed module to bytecode one file at a time (about 80 s of CPU here);
# compileall does the same on every core. Bytecode is needed: with PYTHONDONTWRITEBYTECODE set,
# as on our machines, modules without it are compiled again by every process that imports them.
# (Some packages ship files that do not compile on purpose, hence the ignored status.) Left out:
# the packages' own test suites, RLlib and pip, which no process here imports (a quarter of the
# files).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -e '.[test]'
	-$(BIN)/python -m compileall -q -j 0 -x '/(tests?|rllib|pip)/' $(VENV)/lib >/dev/null 2>&1
	touch $(STAMP)

install: $(STAMP)

# The project's own modules, compiled like the venv's: the editable install leaves them as
# source, and every process that imports them (each Ray worker among them) compiled them again.
SOURCES := core models pipeline jobs training
compile: $(STAMP)
	-$(BIN)/python -m compileall -q -j 0 $(SOURCES) >/dev/null

demo: compile
	$(BIN)/framestyle demo

# lint-imports checks the layer contract in pyproject.toml: a wrong-way import fails the build.
# The report test opens a job report in a real browser: Debian's chromium, driven by Playwright
# (which cannot download browsers of its own here).
test: compile
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest

# Every benchmark (hours on 2 CPUs; `python -m benchmarks all --quick` checks they run), with the
# packages only benchmarks compare against (OpenVINO).
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	$(BIN)/python -m benchmarks all

# The cluster image (infra/docker/Dockerfile), tagged with the project's version.
VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
image:
	docker build -f infra/docker/Dockerfile -t framestyle:$(VERSION) .

clean:
	rm -rf out .pytest_cache
