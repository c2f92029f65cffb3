"""Reads for the overview's error budgets: per model, the SLO status stored with its incidents.

The worker stores each alert's SLO status (``slo_*`` context items, evaluated at its start) with
the incident, so the overview needs no Prometheus: a model's budget is the one stored with its
latest incident, and the incidents of the window show how it was spent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Text, cast, select
from sqlalchemy.orm import Session

from receiver.store.tables import AlertEpisode, Incident, IncidentLabel

MAX_INCIDENTS = 2000  # newest first: enough for a month of one team's models
PER_MODEL = 10  # the newest incidents of each model looked at (and listed if they have one)


def slo_budgets(engine: Engine, now: datetime, days: int = 30) -> list[dict[str, Any]]:
    """Each model with SLO items in the last ``days``: budget left, burn rate, objective, and its
    incidents newest first with the budget and burn at each one's start.

    Contexts are large (each item keeps its series for the chart), so only the contexts that
    hold SLO items are decoded, and only those of each model's ten newest incidents (with SLOs
    configured, each has its status). Decoding every context of a month took 1.3 s with
    100,000 incidents (docs/benchmarks.md).
    """
    since = now - timedelta(days=days)
    with Session(engine) as session:
        # newest first along the opened_at index, each with its model label (a key lookup),
        # so the scan stops after MAX_INCIDENTS instead of sorting every model's incidents
        model = (
            select(IncidentLabel.value)
            .where(IncidentLabel.incident_id == Incident.id, IncidentLabel.name == "model")
            .limit(1)
            .scalar_subquery()
        )
        newest = (
            select(
                Incident.id,
                Incident.title,
                Incident.status,
                Incident.opened_at,
                model.label("model"),
            )
            .where(Incident.opened_at >= since)
            .order_by(Incident.opened_at.desc(), Incident.id.desc())
            .subquery()
        )
        incidents = session.execute(
            select(newest).where(newest.c.model.is_not(None)).limit(MAX_INCIDENTS)
        ).all()
        of_model: dict[str, list[Any]] = {}
        for incident in incidents:
            of_model.setdefault(incident.model, []).append(incident)
        out = [_budget(session, model, of_model[model]) for model in sorted(of_model)]
    return [entry for entry in out if entry is not None]


def _budget(session: Session, model: str, incidents: list[Any]) -> dict[str, Any] | None:
    """The model's budget from its newest incidents with an SLO status, or None if none has."""
    newest = {i.id: i for i in incidents[:PER_MODEL]}
    status = _slo_status(session, model, list(newest))
    found = [(newest[i], status[i]) for i in newest if i in status]  # newest first
    if not found:
        return None
    _, latest = found[0]
    budget = latest["slo_budget_remaining"]
    return {
        "model": model,
        "incidents": [
            {
                "id": incident.id,
                "title": incident.title,
                "status": incident.status,
                "opened_at": incident.opened_at.isoformat(),
                "budget": _value(slo, "slo_budget_remaining"),
                "burn": _value(slo, "slo_burn_rate"),
            }
            for incident, slo in found
        ],
        "budget": _value(latest, "slo_budget_remaining"),
        "budget_display": budget["values"][0]["display"],
        "burn": _value(latest, "slo_burn_rate"),
        "objective": budget.get("objective"),
        "as_of": budget.get("time"),
    }


def _slo_status(
    session: Session, model: str, incident_ids: list[int]
) -> dict[int, dict[str, dict[str, Any]]]:
    """Per incident, the SLO items (by key) of its first episode of ``model`` that has them."""
    rows = session.execute(
        select(AlertEpisode.incident_id, AlertEpisode.labels, AlertEpisode.context)
        .where(
            AlertEpisode.incident_id.in_(incident_ids),
            # skip (without decoding) the contexts that hold no SLO status; no condition on
            # context_state: SQLite would walk its index (all done episodes) instead
            cast(AlertEpisode.context, Text).contains('"slo_budget_remaining"'),
        )
        .order_by(AlertEpisode.id)
    ).all()
    status: dict[int, dict[str, dict[str, Any]]] = {}
    for incident_id, labels, context in rows:
        slo = {i["key"]: i for i in context or [] if i["key"].startswith("slo_") and _ok(i)}
        if (labels or {}).get("model") == model and "slo_budget_remaining" in slo:
            status.setdefault(incident_id, slo)
    return status


def _ok(item: dict[str, Any]) -> bool:
    return item.get("status") == "ok" and bool(item.get("values"))


def _value(slo: dict[str, dict[str, Any]], key: str) -> float | None:
    item = slo.get(key)
    return item["values"][0]["value"] if item else None
