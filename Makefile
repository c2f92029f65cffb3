# The two commands of the README: `make run` and `make test`. Everything lands in .venv/ and var/.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/receiver.example.yaml
TOKEN  := var/dev-token
# `make run` sends nothing anywhere: placeholder vendor secrets and delivery.dry_run
DEV_ENV := RECEIVER_AUTH__BEARER_TOKENS_FILE=$(TOKEN) \
	RECEIVER_RECEIVERS__PAGERDUTY_CRITICAL__ROUTING_KEY_FILE=var/dev-pagerduty-key \
	RECEIVER_RECEIVERS__SLACK_WARNINGS__TOKEN_FILE=var/dev-slack-token \
	RECEIVER_DELIVERY__DRY_RUN=true \
	RECEIVER_UI__USERS_FILE=var/dev-ui-users.json RECEIVER_UI__SECRET_KEY_FILE=var/dev-ui-secret \
	RECEIVER_UI__COOKIE_SECURE=false

.PHONY: run test lint format lock clean

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "python3 -m venv is missing: installing Debian's python3-venv"; \
	    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); \
	  else \
	    echo "python3 -m venv failed: install Debian's python3-venv (sudo apt-get install python3-venv)"; exit 1; \
	  fi; }

$(VENV)/.installed: $(BIN)/python requirements.lock pyproject.toml
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

$(TOKEN):
	@mkdir -p var && umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(32))" > $(TOKEN)
	@umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_hex(16))" > var/dev-pagerduty-key
	@umask 077 && echo "xoxb-dev-placeholder" > var/dev-slack-token

var/dev-ui-users.json: $(VENV)/.installed
	@mkdir -p var && umask 077 && $(BIN)/python -c "import json, secrets; \
	from werkzeug.security import generate_password_hash; \
	password = secrets.token_urlsafe(12); open('var/dev-ui-password', 'w').write(password + '\\n'); \
	open('var/dev-ui-secret', 'w').write(secrets.token_urlsafe(32) + '\\n'); \
	print(json.dumps({'admin': generate_password_hash(password)}))" > $@

## run: install, migrate a SQLite database in var/ and serve with the example config
run: $(VENV)/.installed $(TOKEN) var/dev-ui-users.json
	@$(DEV_ENV) $(BIN)/receiver db upgrade --config $(CONFIG)
	@echo "Webhook bearer token: $(TOKEN) (point Alertmanager's http_config.authorization.credentials_file at it)"
	@echo "Try, in another shell: $(BIN)/receiver replay --url http://127.0.0.1:9099 --token-file $(TOKEN) tests/fixtures/alertmanager-0.25/single-repeat-resolve"
	@echo "Incident UI: http://127.0.0.1:9099/ as admin, password in var/dev-ui-password"
	@echo "Deliveries run dry (rendered and recorded, not sent): see GET /api/v1/incidents/<id>"
	@$(DEV_ENV) exec $(BIN)/receiver serve --config $(CONFIG)

## test: install test dependencies, lint, type-check receiver/, run the whole suite
# The newest Prometheus and Alertmanager (am0.33) come from .ci/fetch-newest (cached after the
# first fetch): if it fails, their tests skip (fail with CI=true). One pytest run in
# TEST_WORKERS xdist workers: each test module stays in one worker, and each version's e2e
# scenarios too (tests/conftest.py); they mostly wait on Prometheus's and Alertmanager's timers,
# so a third worker on two cores runs other modules meanwhile.
TEST_WORKERS ?= 3
test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m mypy receiver
	@newest="$${RECEIVER_TEST_NEWEST_BIN:-$$(.ci/fetch-newest)}" || newest=; \
	[ -n "$$newest" ] || echo "make test: .ci/fetch-newest failed: the am0.33 tests skip (fail with CI=true)"; \
	export RECEIVER_TEST_NEWEST_BIN="$$newest"; \
	echo "RECEIVER_TEST_NEWEST_BIN=$$newest"; \
	echo "$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope"; \
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope

format: $(VENV)/.installed
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

## lock: re-pin requirements.lock from the current venv (after editing pyproject.toml)
lock: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	{ echo "# Pinned versions for CI and 'make'; regenerate with 'make lock' after changing pyproject.toml."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^receiver'; } > requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
