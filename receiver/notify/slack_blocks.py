"""Block Kit for an incident message, clamped to Slack's limits (50 blocks, 3000-char sections,
150-char headers); alert text is escaped for Slack's mrkdwn (&, <, >)."""

from __future__ import annotations

from typing import Any

from receiver.model.snapshot import IncidentSnapshot, TimelineEntry

MAX_HEADER = 150
MAX_SECTION = 3000
MAX_BLOCKS = 50
MAX_CONTEXT_ITEMS = 10
KEY_LABELS = ("model", "version", "instance", "gpu_uuid", "job")
ICONS = {"firing": ":red_circle:", "resolved": ":large_green_circle:"}


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def incident_text(incident: IncidentSnapshot) -> str:
    """The plain-text fallback (notifications, screen readers)."""
    return f"[{incident.status.upper()}] {incident.title}"[:MAX_SECTION]


def incident_blocks(incident: IncidentSnapshot, incident_url: str | None) -> list[dict[str, Any]]:
    status, counts = incident.status, incident.counts
    labels = incident.labels
    header = f"{status.upper()}: {incident.title}"
    facts = [
        f"*Severity:* {escape(incident.severity or 'none')}",
        f"*Status:* {ICONS.get(status, '')} {status}"
        + (" (flapping)" if incident.flapping else ""),
        f"*Alerts:* {counts.alerts} ({incident.firing_episodes} firing)",
        f"*Notifications:* {counts.notifications} ({counts.duplicates} duplicates)",
    ]
    key_labels = [f"`{k}`={escape(labels[k])}" for k in KEY_LABELS if labels.get(k)]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(header, MAX_HEADER)}},
        _section("\n".join(facts)),
    ]
    if key_labels:
        blocks.append(_section(" ".join(key_labels)))
    if context := _context_lines(incident):
        blocks.append(_section("*GPU and queue context*\n" + "\n".join(context)))
    if incident.guidance:
        blocks.append(_section("*What to do:* " + escape(incident.guidance)))
    if buttons := _buttons(incident, incident_url):
        blocks.append({"type": "actions", "elements": buttons})
    return blocks[:MAX_BLOCKS]


def change_lines(events: tuple[TimelineEntry, ...]) -> list[str]:
    """One line per timeline change worth a thread reply."""
    words = {
        "alert_added": "alert added",
        "alert_resolved": "alert resolved",
        "alert_resolved_unseen": "alert resolved (never seen firing)",
        "alert_superseded": "alert re-fired",
        "reopened": "reopened (flapping)",
        "flapping": "flapping detected",
        "resolved": "incident resolved",
    }
    lines = []
    for event in events:
        if event.kind not in words:
            continue
        detail = event.detail or {}
        what = detail.get("summary") or detail.get("alertname") or ""
        at = event.at.strftime("%H:%M:%S")
        lines.append(f"{at} UTC: {words[event.kind]} {escape(what)}".rstrip())
    return lines


def _context_lines(incident: IncidentSnapshot) -> list[str]:
    lines = []
    for item in incident.context.items[:MAX_CONTEXT_ITEMS]:
        if item.status == "ok":
            shown = ", ".join(v.display for v in item.values[:4])
        else:
            shown = f"_unavailable: {escape(str(item.reason))}_"
        lines.append(f"• {escape(item.title)}: {shown}")
    return lines


def _buttons(incident: IncidentSnapshot, incident_url: str | None) -> list[dict[str, Any]]:
    links = [("Runbook", incident.runbook_url), ("Incident", incident_url)]
    return [
        {"type": "button", "text": {"type": "plain_text", "text": text}, "url": url}
        for text, url in links
        if url and url.startswith(("http://", "https://")) and len(url) <= 3000
    ]


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, MAX_SECTION)}}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
