"""The overview's error budgets: per model, the SLO status stored with its latest incident, and
the incidents that spent it, newest first."""

from __future__ import annotations

import json
import re

from tests.integration.test_ui_security_and_charts import store_context
from tests.support.api import post_webhook


def slo_items(budget: float, burn: float) -> list[dict]:
    common = {
        "time": "2026-11-28T00:10:00+00:00",
        "evaluated_at": "2026-11-28T00:10:01+00:00",
        "status": "ok",
        "query": "...",
        "objective": "99.9 % over 30d",
    }
    return [
        {**common, "key": "slo_budget_remaining", "title": "Error budget remaining",
         "unit": "budget", "values": [{"labels": {}, "value": budget,
                                       "display": f"{budget * 100:.1f} % left"}]},
        {**common, "key": "slo_burn_rate", "title": "Burn rate", "unit": "burn",
         "values": [{"labels": {}, "value": burn, "display": f"{burn:.2f}x"}]},
    ]  # fmt: skip


def open_incident(app, clock, model: str, budget: float, burn: float) -> int:
    starts = clock.now.isoformat().replace("+00:00", "Z")
    body = {
        "receiver": "slo",
        "status": "firing",
        "groupKey": f'{{}}:{{model="{model}",at="{starts}"}}',
        "alerts": [{"status": "firing", "startsAt": starts,
                    "labels": {"alertname": "TritonErrorBudgetFastBurn", "model": model}}],
    }  # fmt: skip
    incident_id = post_webhook(app.test_client(), json.dumps(body), "slo").get_json()["incidents"][
        0
    ]
    store_context(app, incident_id, slo_items(budget, burn))
    clock.advance(hours=1)
    return incident_id


def test_each_models_budget_is_its_latest_and_lists_the_incidents_that_spent_it(
    ui_app, browser, clock
):
    first = open_incident(ui_app, clock, "llama2_7b", 0.8, 2.0)
    second = open_incident(ui_app, clock, "llama2_7b", 0.2, 14.4)
    other = open_incident(ui_app, clock, "tinyllama_1b", 0.95, 0.5)

    budgets = ui_app.extensions["receiver"].queries.slo_budgets(clock.now)
    assert [b["model"] for b in budgets] == ["llama2_7b", "tinyllama_1b"]
    llama, tiny = budgets
    assert (llama["budget"], llama["burn"], llama["objective"]) == (0.2, 14.4, "99.9 % over 30d")
    assert [(i["id"], i["budget"]) for i in llama["incidents"]] == [(second, 0.2), (first, 0.8)]
    assert [i["id"] for i in tiny["incidents"]] == [other]

    html = browser.get("/overview").get_data(as_text=True)
    row = re.search(r'<tr class="model-budget" data-model="llama2_7b">(.*?)</tr>', html, re.S)
    assert row and "20.0 % left" in row.group(1) and "14.40x" in row.group(1)
    assert 'class="budget budget-low"' in row.group(1)  # a fifth left: red
    assert row.group(1).index(f"#{second}") < row.group(1).index(f"#{first}")


def test_without_slo_status_the_overview_says_how_to_get_it(browser):
    html = browser.get("/overview").get_data(as_text=True)
    assert "No SLO status yet" in html and "slos_path" in html
