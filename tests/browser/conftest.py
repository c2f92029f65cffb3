"""Real-browser fixtures: a live receiver on a loopback port, seeded over HTTP, and Chromium.

The receiver runs in this process (werkzeug's threaded server on a free port, in a daemon thread)
on a migrated SQLite file, with one UI user and the webhook token. It is seeded by replaying every
webhook of a recorded Alertmanager set (once per set, 0.25 and 0.33.1, for the tests that read
what it made), one hand-written webhook whose annotations are hostile HTML and enough filler
incidents for a second list page; then the worker's context step runs once against a stand-in
Prometheus (every query answers one sample) so incidents carry a context table.

Chromium is Debian's (``/usr/bin/chromium``) driven by the ``playwright`` package: the browser
Playwright downloads is never used. Each test leaves a screenshot in ``test-artifacts/`` at the
repository root (or in ``$RECEIVER_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from werkzeug.security import generate_password_hash
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from receiver.app import create_app
from receiver.bootstrap import Container, bootstrap, build_enricher
from receiver.replay import HttpTarget, load_items
from receiver.settings import load_settings
from receiver.store import migrate
from receiver.store.queries import IncidentFilter
from tests.support.api import TOKEN
from tests.support.payloads import FIXTURE_SETS, alert, webhook
from tests.support.skips import need

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("RECEIVER_TEST_ARTIFACTS") or REPO_ROOT / "test-artifacts")
CHROMIUM = Path("/usr/bin/chromium")
# Chromium's own network connections (updates, sync, ...) are refused on the test machines
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 10_000

USER = "alice"
PASSWORD = "correct horse"
HOSTILE_ALERTNAME = "HostileAnnotation"
HOSTILE_TEXT = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
# the recordings make 12 (0.25) or 11 (0.33.1) incidents and the hostile webhook one: with
# these, the list (25 a page) has a second page
FILLERS = 15
CONTEXT_YAML = REPO_ROOT / "config" / "context.yaml"


@dataclass
class LiveReceiver:
    url: str
    container: Container
    hostile_id: int

    def incidents(self, **filters: Any) -> list[dict[str, Any]]:
        """Summaries of the incidents matching an ``IncidentFilter``, newest first (the store's
        own answer, to compare the pages with)."""
        page = self.container.queries.list_incidents(IncidentFilter(**filters), limit=1000)
        return list(page["incidents"])

    def incident_ids(self, **filters: Any) -> list[int]:
        return [int(i["id"]) for i in self.incidents(**filters)]


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def hand_written(
    alertname: str, severity: str, annotations: dict[str, str], **labels: str
) -> bytes:
    """A version 4 body with one firing alert, grouped by all its labels."""
    entry = alert(alertname, starts=30, annotations=annotations, severity=severity, **labels)
    doc = webhook(entry, receiver="hand-written", group_labels=entry["labels"], common=True)
    return json.dumps(doc).encode()


def _seed(url: str, version: str) -> int:
    """Replay recorded set ``version``, the hostile webhook and the fillers; the hostile
    incident's id."""
    target = HttpTarget(url, {"Authorization": f"Bearer {TOKEN}"})
    try:
        for item in load_items([FIXTURE_SETS[version] / "all"]):
            status, answer = target.post(item.path, item.body)
            assert status == 200, f"{item.source}: {status} {answer}"
        hostile = {"summary": HOSTILE_TEXT, "description": HOSTILE_TEXT}
        body = hand_written(HOSTILE_ALERTNAME, "warning", hostile, instance="evil-host:9100")
        status, answer = target.post("/api/v1/alertmanager/hand-written", body)
        assert status == 200, f"hostile webhook: {status} {answer}"
        (hostile_id,) = answer["incidents"]
        for n in range(FILLERS):
            summary = {"summary": f"Disk almost full on host-{n:02}"}
            body = hand_written("DiskFillingUp", "info", summary, instance=f"host-{n:02}:9100")
            status, answer = target.post("/api/v1/alertmanager/hand-written", body)
            assert status == 200, f"filler webhook {n}: {status} {answer}"
    finally:
        target.session.close()
    return int(hostile_id)


def _prometheus_stub(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """``/api/v1/query`` answering every query with one sample (bytes for byte queries)."""
    query = environ.get("QUERY_STRING", "")
    value = "74000000000" if "_bytes%7B" in query and "%2F" not in query else "0.93"
    result = [{"metric": {"instance": "127.0.0.1:19100"}, "value": [0, value]}]
    body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})
    data = body.encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


@contextmanager
def _serving(app: Any, name: str) -> Iterator[str]:
    """Serve a WSGI app on a free 127.0.0.1 port in a daemon thread; yield its base URL."""
    server: BaseWSGIServer = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _enrich(container: Container) -> None:
    """One pass of the worker's context step over every pending episode."""
    enricher = build_enricher(container)
    assert enricher is not None, "context is configured"
    try:
        enricher.drain()
    finally:
        enricher.evaluator.close()
        enricher.evaluator.client.session.close()


@pytest.fixture(scope="module", params=FIXTURE_SETS)
def live_receiver(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveReceiver]:
    """A receiver seeded from one recorded set, with the UI on, served over real HTTP on
    127.0.0.1."""
    db = tmp_path_factory.mktemp("browser") / "receiver.db"
    with ExitStack() as stack:
        prometheus = stack.enter_context(_serving(_prometheus_stub, "prometheus-stub"))
        settings = load_settings(
            environ={},
            overrides={
                "database_url": f"sqlite:///{db}",
                "auth.bearer_tokens": [TOKEN],
                "ui.users": {USER: generate_password_hash(PASSWORD)},
                "ui.secret_key": "x" * 32,
                "ui.cookie_secure": False,
                "prometheus.url": prometheus,
                "context_path": str(CONTEXT_YAML),
            },
        )
        container = bootstrap(settings)
        stack.callback(container.engine.dispose)
        migrate.upgrade(container.engine)
        url = stack.enter_context(_serving(create_app(container=container), "live-receiver"))
        hostile_id = _seed(url, request.param)
        _enrich(container)
        yield LiveReceiver(url=url, container=container, hostile_id=hostile_id)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        need("Chromium", f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        need("Playwright", f"the playwright package is not installed ({exc})")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's headless Chromium; Playwright's own browser download is never used."""
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def page(
    browser: Browser, live_receiver: LiveReceiver, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A fresh browser context (no cookies) on the live receiver; a screenshot at the end."""
    context = browser.new_context(
        base_url=live_receiver.url, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
        if not page.is_closed() and page.url != "about:blank":
            screenshot(page, request.node.name)
        assert not errors, f"JavaScript errors on the page: {errors}"
    finally:
        context.close()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page PNG under the artifacts folder; the path written."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / (re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") + ".png")
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page: Page, username: str = USER, password: str = PASSWORD) -> None:
    """Fill in and submit the login form (the page must show it)."""
    form = page.locator("form#login")
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(password)
    form.locator("button[type=submit]").click()


@pytest.fixture
def logged_in_page(page: Page) -> Page:
    """A page logged in as alice through the form, showing the incident list."""
    from playwright.sync_api import expect

    page.goto("/login")
    log_in(page)
    expect(page).to_have_url(re.compile(r"/incidents$"))
    return page
