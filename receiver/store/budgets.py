"""Reads for the overview's error budgets: per model, the SLO status stored with its incidents.

The worker stores each alert's SLO status (``slo_*`` context items, evaluated at its start) with
the incident, so the overview needs no Prometheus: a model's budget is the one stored with its
latest incident, and the incidents of the window show how it was spent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from receiver.store.tables import AlertEpisode, Incident, IncidentLabel

MAX_INCIDENTS = 2000  # newest first: enough for a month of one team's models
PER_MODEL = 10


def slo_budgets(engine: Engine, now: datetime, days: int = 30) -> list[dict[str, Any]]:
    """Each model with SLO items in the last ``days``: budget left, burn rate, objective, and its
    incidents newest first with the budget and burn at each one's start."""
    since = now - timedelta(days=days)
    with Session(engine) as session:
        incidents = session.execute(
            select(Incident.id, Incident.title, Incident.status, Incident.opened_at)
            .join(IncidentLabel, IncidentLabel.incident_id == Incident.id)
            .where(IncidentLabel.name == "model", Incident.opened_at >= since)
            .order_by(Incident.opened_at.desc(), Incident.id.desc())
            .limit(MAX_INCIDENTS)
        ).all()
        by_id = {i.id: i for i in incidents}
        episodes = session.execute(
            select(AlertEpisode.incident_id, AlertEpisode.labels, AlertEpisode.context).where(
                AlertEpisode.incident_id.in_(list(by_id)), AlertEpisode.context_state == "done"
            )
        ).all()
    status: dict[tuple[str, int], dict[str, Any]] = {}
    for incident_id, labels, context in episodes:
        model = (labels or {}).get("model")
        slo = {i["key"]: i for i in context or [] if i["key"].startswith("slo_") and _ok(i)}
        if model and "slo_budget_remaining" in slo:
            status.setdefault((model, incident_id), slo)
    models: dict[str, dict[str, Any]] = {}
    for (model, incident_id), slo in status.items():
        incident = by_id[incident_id]
        entry = models.setdefault(model, {"model": model, "incidents": []})
        entry["incidents"].append(
            {
                "id": incident_id,
                "title": incident.title,
                "status": incident.status,
                "opened_at": incident.opened_at.isoformat(),
                "budget": _value(slo, "slo_budget_remaining"),
                "burn": _value(slo, "slo_burn_rate"),
            }
        )
        entry.setdefault("_items", []).append((incident.opened_at, incident_id, slo))
    out = []
    for model in sorted(models):
        entry = models[model]
        _, _, latest = max(entry.pop("_items"), key=lambda t: (t[0], t[1]))
        budget = latest["slo_budget_remaining"]
        entry["incidents"].sort(key=lambda i: (i["opened_at"], i["id"]), reverse=True)
        entry["incidents"] = entry["incidents"][:PER_MODEL]
        out.append(
            {
                **entry,
                "budget": _value(latest, "slo_budget_remaining"),
                "budget_display": budget["values"][0]["display"],
                "burn": _value(latest, "slo_burn_rate"),
                "objective": budget.get("objective"),
                "as_of": budget.get("time"),
            }
        )
    return out


def _ok(item: dict[str, Any]) -> bool:
    return item.get("status") == "ok" and bool(item.get("values"))


def _value(slo: dict[str, dict[str, Any]], key: str) -> float | None:
    item = slo.get(key)
    return item["values"][0]["value"] if item else None
