# Two commands from a fresh clone: `make demo` and `make test`.
# Needs only Python 3.11+ and make; uv is installed into .tools/ and everything else
# into .venv/ from the lock file.

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
RUN := $(UV) run --locked --no-sync
SRC := contracts/src libs/runtime/src libs/ops/src libs/devstack/src libs/testing/src \
       libs/simulation/src services/voice/src services/consent/src services/escalation/src \
       services/sip-bridge/src services/demo-crm/src services/webhook-relay/src
# Test folders are type-checked one at a time: each has its own conftest module.
TESTS := "contracts/tests libs/runtime/tests libs/ops/tests libs/devstack/tests \
          libs/testing/tests tests" services/consent/tests services/escalation/tests \
         services/sip-bridge/tests services/voice/tests libs/simulation/tests \
         services/demo-crm/tests services/webhook-relay/tests

.PHONY: install demo test lint typecheck pytest schemas contracts-wheel bench clean \
	container-tools images deploy-check

# What `make images` and `make deploy-check` need from the system's packages (Debian).
CONTAINER_TOOLS := podman runc mmdebstrap

$(UV):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

install: $(UV)
	$(UV) sync --locked --python $(PYTHON)

demo: install
	$(RUN) python -m switchboard.simulation demo $(if $(AUDIO),--audio)

test: install lint typecheck pytest

lint:
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck:
	$(RUN) mypy $(SRC) bench tools
	@for dirs in $(TESTS); do echo "mypy $$dirs"; $(RUN) mypy $$dirs || exit 1; done

pytest:
	$(RUN) pytest

schemas: install
	$(RUN) python -m switchboard.ops schemas contracts/schemas

# The contracts package as a wheel in $(DIST)/ for integrators (not published on an index).
DIST ?= dist
contracts-wheel: $(UV)
	$(UV) build --package switchboard-contracts --wheel --out-dir $(DIST)

bench: install
	$(RUN) python -m bench.consent_bench
	$(RUN) python -m bench.router_bench
	$(RUN) python -m bench.webhook_bench
	$(RUN) python -m bench.voice_bench
	$(RUN) python -m bench.job_memory

# Installs podman, runc and mmdebstrap with apt-get when one is missing (needs root).
container-tools:
	@missing=""; for tool in $(CONTAINER_TOOLS); do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
		echo "Installing$$missing (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(CONTAINER_TOOLS); \
	fi

# Every image from this checkout, without a registry (base images made with mmdebstrap).
images: install container-tools
	$(RUN) python -m tools.images

# Run every Deployment of the production overlay under podman as its manifest says.
deploy-check: install container-tools
	$(RUN) python -m tools.deploycheck

clean:
	rm -rf .venv $(TOOLS) var .mypy_cache .ruff_cache .pytest_cache
