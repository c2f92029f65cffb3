"""The incident history UI in a real browser (Debian's Chromium through Playwright).

One seeded receiver serves the whole module; the tests log in through the form like a person
would and never sleep: every wait is Playwright's auto-waiting or an ``expect`` assertion.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import TYPE_CHECKING

import pytest

from receiver.store.queries import IncidentFilter
from tests.browser.conftest import (
    HOSTILE_ALERTNAME,
    HOSTILE_TEXT,
    PASSWORD,
    USER,
    LiveReceiver,
    log_in,
    screenshot,
)

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Response

pytestmark = pytest.mark.slow

PAGE_SIZE = 25
# the tests of logging in and out and of the page's own code: the seed is only data there, so
# they run on the 0.25 set alone (the others run once per recorded set)
SEED_ONLY_DATA = pytest.mark.parametrize("live_receiver", ["0.25"], indirect=True)
# in either recording: resolved incidents (two of them flapping) and two still firing
ALERTNAME = "TritonGPUMemoryHigh"


def expect(target):  # type: ignore[no-untyped-def]
    """Playwright's expect, imported late so collection works without the package."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def submit(form: Locator) -> None:
    """Submit a form with its submit button, as a click would."""
    form.locator("[type=submit]").first.click()


def row_ids(page: Page) -> list[int]:
    rows = page.locator("table#incidents tbody tr.incident[data-id]")
    return [int(i) for i in rows.evaluate_all("rows => rows.map(r => r.dataset.id)")]


def apply_filters(page: Page, **values: str) -> None:
    """Set the filter form's fields (``status`` is the select) and submit it."""
    form = page.locator("form#filters")
    for name, value in values.items():
        if name == "status":
            form.locator("select[name=status]").select_option(value)
        else:
            form.locator(f"input[name={name}]").fill(value)
    with page.expect_navigation():
        submit(form)


def test_harness_serves_the_seeded_receiver(page: Page, live_receiver: LiveReceiver) -> None:
    response = page.goto("/healthz")
    assert response is not None and response.status == 200
    assert json.loads(page.locator("body").inner_text()) == {"status": "ok"}
    assert len(live_receiver.incident_ids()) > PAGE_SIZE
    assert live_receiver.hostile_id in live_receiver.incident_ids(alertname=[HOSTILE_ALERTNAME])


@SEED_ONLY_DATA
def test_wrong_credentials_show_an_error(page: Page) -> None:
    page.goto("/login")
    with page.expect_response(lambda r: r.request.method == "POST" and "/login" in r.url) as answer:
        log_in(page, USER, "wrong horse")
    assert answer.value.status == 401
    expect(page.locator(".error")).to_contain_text("Invalid username or password")
    expect(page.locator("form#login input[name=password]")).to_be_visible()
    # and no session was made: the list still sends us to the login form
    page.goto("/incidents")
    expect(page).to_have_url(re.compile(r"/login\?next=(/|%2F)incidents$"))


@SEED_ONLY_DATA
def test_login_returns_to_the_page_asked_for(page: Page) -> None:
    page.goto("/incidents")
    expect(page).to_have_url(re.compile(r"/login\?next=(/|%2F)incidents$"))
    log_in(page, USER, PASSWORD)
    expect(page).to_have_url(re.compile(r"/incidents$"))
    expect(page.locator("table#incidents")).to_be_visible()


def test_list_filters_by_status_and_alertname(
    logged_in_page: Page, live_receiver: LiveReceiver
) -> None:
    page = logged_in_page
    rows = page.locator("table#incidents tbody tr.incident[data-id]")
    expect(rows.first).to_be_visible()
    assert row_ids(page) == live_receiver.incident_ids()[:PAGE_SIZE]
    counts = live_receiver.container.queries.list_incidents(IncidentFilter(), limit=1)["counts"]
    for status in ("firing", "resolved"):
        expect(page.locator(f"#counts [data-status={status}]")).to_contain_text(
            re.compile(rf"\b{counts[status]}\b")
        )
    # badges: exactly the flapping incidents and those without a runbook carry one
    flagged = {i["id"]: i for i in live_receiver.incidents()}
    for row in rows.all():
        incident = flagged[int(row.get_attribute("data-id") or 0)]
        expect(row.locator(".badge-flapping")).to_have_count(int(incident["flapping"]))
        expect(row.locator(".badge-runbook-missing")).to_have_count(
            int(incident["runbook_missing"])
        )
    expect(page.locator("tr.incident .badge-flapping").first).to_be_visible()
    expect(page.locator("tr.incident .badge-runbook-missing").first).to_be_visible()
    screenshot(page, "incident-list")

    apply_filters(page, status="firing")
    expect(page).to_have_url(re.compile(r"[?&]status=firing(&|$)"))
    firing = live_receiver.incident_ids(status=["firing"])
    assert firing, "the seed leaves some incidents firing"
    expect(rows).to_have_count(min(len(firing), PAGE_SIZE))
    assert row_ids(page) == firing[:PAGE_SIZE]
    for status_cell in rows.locator("td.status").all():
        expect(status_cell).to_contain_text("firing")
    expect(page.locator("form#filters select[name=status]")).to_have_value("firing")

    # a second filter keeps the first one: both travel in the URL
    apply_filters(page, alertname=ALERTNAME)
    expect(page).to_have_url(re.compile(rf"[?&]alertname={ALERTNAME}(&|$)"))
    expect(page).to_have_url(re.compile(r"[?&]status=firing(&|$)"))
    both = live_receiver.incident_ids(status=["firing"], alertname=[ALERTNAME])
    expect(rows).to_have_count(len(both))
    assert row_ids(page) == both

    apply_filters(page, status="")
    expect(page).not_to_have_url(re.compile(r"status=firing"))
    by_name = live_receiver.incident_ids(alertname=[ALERTNAME])
    assert len(by_name) > len(both), "the recorded alert also has resolved incidents"
    expect(rows).to_have_count(len(by_name))
    assert row_ids(page) == by_name
    expect(page.locator("form#filters input[name=alertname]")).to_have_value(ALERTNAME)


def test_list_pages_through_the_incidents(
    logged_in_page: Page, live_receiver: LiveReceiver
) -> None:
    page = logged_in_page
    everything = live_receiver.incident_ids()
    assert PAGE_SIZE < len(everything) < 2 * PAGE_SIZE
    expect(page.locator("table#incidents tbody tr.incident")).to_have_count(PAGE_SIZE)
    page.locator("a#next-page").click()
    expect(page).to_have_url(re.compile(r"[?&]cursor="))
    rest = len(everything) - PAGE_SIZE
    expect(page.locator("table#incidents tbody tr.incident")).to_have_count(rest)
    assert row_ids(page) == everything[PAGE_SIZE:]
    expect(page.locator("a#next-page")).to_have_count(0)

    # a filtered list that fits one page has no link to another
    apply_filters(page, severity="info")
    fillers = live_receiver.incident_ids(severity=["info"])
    expect(page.locator("table#incidents tbody tr.incident")).to_have_count(
        min(len(fillers), PAGE_SIZE)
    )
    expect(page.locator("a#next-page")).to_have_count(0)


def test_open_acknowledge_and_annotate_an_incident(
    logged_in_page: Page, live_receiver: LiveReceiver
) -> None:
    page = logged_in_page
    apply_filters(page, alertname=ALERTNAME, status="firing")
    row = page.locator("table#incidents tbody tr.incident[data-id]").first
    incident_id = int(row.get_attribute("data-id") or 0)
    link = row.locator("td.title a")
    expect(link).to_have_attribute("href", re.compile(rf"/incidents/{incident_id}$"))
    link.click()

    expect(page).to_have_url(re.compile(rf"/incidents/{incident_id}$"))
    expect(page.locator("h1#title")).not_to_be_empty()
    expect(page.locator("#alerts li.alert").first).to_be_visible()
    timeline = page.locator("ol#timeline li.event[data-kind]")
    expect(timeline.first).to_be_visible()
    expect(page.locator("ol#timeline li.event[data-kind=opened]")).to_have_count(1)
    context_rows = page.locator("table#context tbody tr")
    expect(context_rows.first).to_be_visible()
    expect(page.locator("table#context")).to_contain_text("GPU utilization")
    expect(page.locator("table#context")).to_contain_text("93")
    expect(page.locator("#deliveries")).to_be_attached()
    downloads = page.locator("details#payloads a.download")
    expect(downloads.first).to_have_attribute("href", re.compile(r"/api/v1/payloads/\d+$"))
    runbook = page.locator("a#runbook")
    expect(runbook).to_have_attribute("href", re.compile(r"^https?://"))
    times = page.locator("time[datetime]")
    expect(times.first).to_be_attached()
    for element in times.all():
        datetime.fromisoformat(element.get_attribute("datetime") or "")
        expect(element).to_have_attribute("title", re.compile("UTC"))
    for form in ("form#ack", "form#note"):
        expect(page.locator(f"{form} input[type=hidden][name=csrf_token]")).to_have_value(
            re.compile(r".{16,}")
        )
    screenshot(page, "incident-detail")

    with page.expect_navigation():
        submit(page.locator("form#ack"))
    expect(page.locator("#acknowledged")).to_contain_text(f"Acknowledged by {USER}")
    acked = page.locator("ol#timeline li.event[data-kind=acknowledged]")
    expect(acked).to_have_count(1)
    expect(acked).to_contain_text(USER)

    note = "Lowered max_batch_size on triton-0; GPU memory back under 80 %."
    page.locator("form#note textarea[name=text]").fill(note)
    with page.expect_navigation():
        submit(page.locator("form#note"))
    notes = page.locator("ol#timeline li.event[data-kind=note]")
    expect(notes).to_have_count(1)
    expect(notes).to_contain_text(note)
    expect(notes).to_contain_text(USER)
    # both survive a reload: they are stored, not just shown
    page.reload()
    expect(page.locator("#acknowledged")).to_contain_text(f"Acknowledged by {USER}")
    expect(page.locator("ol#timeline li.event[data-kind=note]")).to_contain_text(note)
    screenshot(page, "incident-detail-acknowledged")

    stored = live_receiver.container.queries.get_incident(incident_id)
    assert stored is not None
    assert stored["acknowledged_by"] == USER


@SEED_ONLY_DATA
def test_hostile_annotations_render_as_text(
    logged_in_page: Page, live_receiver: LiveReceiver
) -> None:
    page = logged_in_page
    apply_filters(page, alertname=HOSTILE_ALERTNAME)
    rows = page.locator("table#incidents tbody tr.incident[data-id]")
    expect(rows).to_have_count(1)
    expect(rows).to_have_attribute("data-id", str(live_receiver.hostile_id))
    assert page.evaluate("window.__xss") is None

    expect(rows.locator("td.title")).to_contain_text(HOSTILE_TEXT)
    expect(rows.locator(".badge-runbook-missing")).to_have_count(1)

    rows.locator("td.title a").click()
    expect(page).to_have_url(re.compile(rf"/incidents/{live_receiver.hostile_id}$"))
    expect(page.locator("h1#title")).to_have_text(HOSTILE_TEXT)
    expect(page).to_have_title(re.compile(re.escape(HOSTILE_TEXT)))
    expect(page.locator("a#runbook")).to_have_count(0)
    expect(page.locator("#alerts")).to_contain_text(HOSTILE_TEXT)
    expect(page.locator("img[src=x]")).to_have_count(0)
    expect(page.locator("body script:has-text('__xss')")).to_have_count(0)
    assert page.evaluate("window.__xss") is None
    screenshot(page, "incident-detail-hostile")


@SEED_ONLY_DATA
def test_pages_load_their_stylesheet_and_script(page: Page, live_receiver: LiveReceiver) -> None:
    """Every subresource a page asks for is served (no 4xx/5xx, no failed request)."""
    broken: set[str] = set()

    def check(response: Response) -> None:
        if response.request.resource_type != "document" and response.status >= 400:
            broken.add(f"{response.request.method} {response.url} -> {response.status}")

    page.on("response", check)
    page.on("requestfailed", lambda r: broken.add(f"{r.method} {r.url} failed: {r.failure}"))
    page.goto("/login")
    log_in(page)
    expect(page).to_have_url(re.compile(r"/incidents$"))
    page.wait_for_load_state("load")  # leaving earlier would abort the list's own requests
    page.goto(f"/incidents/{live_receiver.hostile_id}")
    expect(page.locator("h1#title")).to_be_visible()
    assets = page.evaluate(
        "[...document.querySelectorAll('link[rel=stylesheet], script[src]')]"
        ".map(e => e.href || e.src)"
    )
    assert assets, "the pages link a stylesheet and a script"
    assert not broken, f"subresources that did not load: {sorted(broken)}"


@SEED_ONLY_DATA
def test_logout(logged_in_page: Page) -> None:
    page = logged_in_page
    with page.expect_navigation():
        submit(page.locator("form#logout"))
    expect(page).to_have_url(re.compile(r"/login"))
    page.goto("/incidents")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_the_overview_shows_open_incidents_and_history(logged_in_page: Page) -> None:
    page = logged_in_page
    page.click("header a.nav >> text=Overview")
    expect(page).to_have_url(re.compile(r"/overview$"))
    expect(page.locator("#open-by-severity li").first).to_be_visible()
    expect(page.locator("#per-day .bar")).to_have_count(30)
    expect(page.locator("#noisiest tbody tr").first).to_contain_text("TritonGPUMemoryHigh")
    screenshot(page, "overview")
