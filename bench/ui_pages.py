"""Server time of each UI page and of the JSON read API on a seeded database.

    .venv/bin/python -m bench.ui_pages sqlite:///var/bench/ui-100k.db
    .venv/bin/python -m bench.ui_pages postgresql://postgres@127.0.0.1:5432/receiver_bench_100k \
        --json var/bench/after-pg.json --compare var/bench/before-pg.json

The app runs in-process (``create_app`` with a container from ``bootstrap``, the shipped runbook
catalogue and context queries) and a UI user logs in through the login form; each page is then
requested ``--requests`` times after ``--warmup`` unmeasured requests, through Flask's test
client: the time is the whole request on the server side (routing, session, queries, template),
without a network or a browser. Prints median, p95 and max per page, the time spent in SQL and
the number of statements; ``--sql`` adds each page's statements, ``--explain`` their plans
(EXPLAIN QUERY PLAN on SQLite, EXPLAIN ANALYZE on Postgres).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import secrets
import sqlite3
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import sqlalchemy
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, text
from werkzeug.security import generate_password_hash

from receiver.app import create_app
from receiver.bootstrap import Container, bootstrap
from receiver.settings import load_settings
from receiver.store.queries import encode_cursor

REPO = Path(__file__).resolve().parents[1]
USER, PASSWORD = "bench", secrets.token_urlsafe(12)


@dataclass
class Result:
    page: str
    path: str
    samples_ms: list[float]
    sql_ms: list[float]
    statements: int
    status: int
    size: int
    slowest: list[tuple[float, str]] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p95(self) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]

    def row(self) -> dict[str, Any]:
        return {
            "page": self.page,
            "path": self.path,
            "median_ms": round(self.median, 1),
            "p95_ms": round(self.p95, 1),
            "max_ms": round(max(self.samples_ms), 1),
            "sql_median_ms": round(statistics.median(self.sql_ms), 1),
            "statements": self.statements,
            "status": self.status,
            "bytes": self.size,
        }


class SqlRecorder:
    """Every statement the engine runs, with its parameters and time, while ``active``."""

    def __init__(self, engine: Engine):
        self.active = False
        self.statements: list[tuple[str, Any, float]] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, *_args: Any) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def _after(self, conn: Any, _cursor: Any, statement: str, params: Any, *_args: Any) -> None:
        started = conn.info["bench_started"].pop()
        if self.active:
            self.statements.append((statement, params, time.perf_counter() - started))

    def take(self) -> list[tuple[str, Any, float]]:
        taken, self.statements = self.statements, []
        return taken


def build_app(url: str) -> tuple[Flask, Container]:
    settings = load_settings(
        environ={},
        overrides={
            "database_url": url,
            "auth.bearer_tokens": [secrets.token_urlsafe(24)],
            "runbooks_path": str(REPO / "config" / "runbooks.yaml"),
            "context_path": str(REPO / "config" / "context.yaml"),
            "ui.users": {USER: generate_password_hash(PASSWORD)},
            "ui.secret_key": secrets.token_urlsafe(32),
            "ui.cookie_secure": False,
        },
    )
    container = bootstrap(settings)
    return create_app(container=container), container


def log_in(app: Flask) -> FlaskClient:
    client = app.test_client()
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token, "no CSRF token on the login page"
    answer = client.post(
        "/login", data={"username": USER, "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert answer.status_code == 302, f"login failed: {answer.status_code}"
    return client


def pages(engine: Engine, client: FlaskClient, page_size: int) -> list[tuple[str, str]]:
    """The pages to measure, with parameters taken from the data (a popular model, a recent
    pod, the busiest incident of the last week, a cursor half-way down the list)."""
    with engine.connect() as conn:
        total = conn.scalar(text("SELECT count(*) FROM incidents"))
        if not total:
            raise SystemExit("no incidents: seed the database first (python -m bench.seed)")
        newest = conn.scalar(text("SELECT max(opened_at) FROM incidents"))
        model = conn.scalar(
            text(
                "SELECT value FROM incident_labels WHERE name = 'model' "
                "GROUP BY value ORDER BY count(*) DESC, value LIMIT 1"
            )
        )
        alertname = conn.scalar(
            text(
                "SELECT alertname FROM incidents GROUP BY alertname "
                "ORDER BY count(*), alertname LIMIT 1"
            )
        )
        pod_row = conn.execute(
            text(
                "SELECT value FROM incident_labels WHERE name = 'pod' "
                "AND incident_id = (SELECT max(id) FROM incidents)"
            )
        ).first()
        busiest = conn.scalar(
            text(
                "SELECT id FROM incidents WHERE id > :floor "
                "ORDER BY episode_count DESC, alert_count DESC, id DESC LIMIT 1"
            ),
            {"floor": int(total * 0.92)},
        )
        deep = conn.execute(
            text(
                "SELECT opened_at, id FROM incidents ORDER BY opened_at DESC, id DESC "
                "LIMIT 1 OFFSET :skip"
            ),
            {"skip": total // 2},
        ).one()

    def aware(value: Any) -> datetime:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    end = aware(newest) - timedelta(days=20)
    since, until = (end - timedelta(days=1)).isoformat(), end.isoformat()
    deep_cursor = encode_cursor(aware(deep[0]), deep[1])
    first = client.get(f"/api/v1/incidents?limit={page_size}").get_json()
    pod = pod_row[0] if pod_row else "triton"
    label = quote(f'model="{model}"')
    family = model.split("_")[0]  # llama3_8b: llama3, some of the dozen models
    regex = {
        "model": quote(f'model=~"{family}.*"'),
        "not model": quote(f'model!~"{family}.*|mistral.*"'),
        "pod": quote(f'pod=~"triton-{family}-.*"'),  # a label with tens of thousands of values
    }
    return [
        ("list, default", "/incidents"),
        ("list, status=firing", "/incidents?status=firing"),
        ("list, status=acknowledged", "/incidents?status=acknowledged"),
        ("list, severity=critical", "/incidents?severity=critical"),
        ("list, model", f"/incidents?model={model}"),
        ("list, alertname (rarest)", f"/incidents?alertname={alertname}"),
        ("list, receiver", "/incidents?receiver=triton-gpu"),
        ("list, text (common)", "/incidents?q=llama3"),
        ("list, text (one pod)", "/incidents?" + urlencode({"q": pod})),
        ("list, time range (1 day)", "/incidents?" + urlencode({"since": since, "until": until})),
        (
            "list, firing+critical+model",
            f"/incidents?status=firing&severity=critical&model={model}",
        ),
        ("list, page 2", f"/incidents?cursor={first['next_cursor']}"),
        (f"list, deep page (row {total // 2})", f"/incidents?cursor={deep_cursor}"),
        ("incident detail (busiest)", f"/incidents/{busiest}"),
        ("incident detail (old)", f"/incidents/{max(1, total // 20)}"),
        ("overview", "/overview"),
        ("API list", "/api/v1/incidents"),
        ("API list, label filter", f"/api/v1/incidents?status=firing&label={label}"),
        ("API list, regex on model", f"/api/v1/incidents?label={regex['model']}"),
        (
            "API list, firing, regex on model",
            f"/api/v1/incidents?status=firing&label={regex['model']}",
        ),
        ("API list, negative regex on model", f"/api/v1/incidents?label={regex['not model']}"),
        ("API list, regex on pod", f"/api/v1/incidents?label={regex['pod']}"),
        ("list, regex on model", f"/incidents?label={regex['model']}"),
        ("API detail", f"/api/v1/incidents/{busiest}"),
    ]


def measure(
    client: FlaskClient,
    recorder: SqlRecorder,
    page: str,
    path: str,
    requests: int,
    warmup: int,
) -> Result:
    for _ in range(warmup):
        client.get(path)
    samples, sql, statements = [], [], 0
    slowest: dict[str, list[float]] = defaultdict(list)
    status, size = 0, 0
    for _ in range(requests):
        recorder.take()
        recorder.active = True
        started = time.perf_counter()
        answer = client.get(path)
        elapsed = time.perf_counter() - started
        recorder.active = False
        status, size = answer.status_code, len(answer.data)
        if status != 200:
            raise SystemExit(f"{path}: HTTP {status}: {answer.get_data(as_text=True)[:300]}")
        ran = recorder.take()
        samples.append(elapsed * 1000)
        sql.append(sum(d for _, _, d in ran) * 1000)
        statements = len(ran)
        for statement, _params, d in ran:
            slowest[statement].append(d * 1000)
    top = sorted(((statistics.median(v), s) for s, v in slowest.items()), reverse=True)
    return Result(page, path, samples, sql, statements, status, size, top)


def explain(engine: Engine, client: FlaskClient, recorder: SqlRecorder, path: str) -> None:
    recorder.take()
    recorder.active = True
    client.get(path)
    recorder.active = False
    postgres = engine.dialect.name == "postgresql"
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if postgres else "EXPLAIN QUERY PLAN "
    for statement, params, took in recorder.take():
        if not statement.lstrip().upper().startswith("SELECT"):
            continue
        print(f"\n-- {took * 1000:.1f} ms\n{statement}\n   params: {str(params)[:300]}")
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(prefix + statement, params).all()
        for row in rows:
            print("   " + (row[0] if postgres else f"{row[0]} {row[1]} {row[-1]}"))


def versions(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            server = conn.scalar(text("SHOW server_version"))
        else:
            server = conn.scalar(text("SELECT sqlite_version()"))
        counts = {
            name: conn.scalar(text(f"SELECT count(*) FROM {name}"))
            for name in ("incidents", "alert_episodes", "incident_events", "incident_labels")
        }
    return {
        "database": f"{engine.dialect.name} {server}",
        "python": platform.python_version(),
        "sqlalchemy": sqlalchemy.__version__,
        "python_sqlite3": sqlite3.sqlite_version,
        **{k: str(v) for k, v in counts.items()},
    }


def table(results: list[dict[str, Any]], before: dict[str, dict[str, Any]] | None) -> str:
    if before:
        head = "| page | before median | before p95 | after median | after p95 | SQL (after) |"
        lines = [head, "|---|--:|--:|--:|--:|--:|"]
        for r in results:
            b = before.get(r["page"], {})
            lines.append(
                f"| {r['page']} | {b.get('median_ms', '-')} | {b.get('p95_ms', '-')} "
                f"| {r['median_ms']} | {r['p95_ms']} | {r['sql_median_ms']} |"
            )
        return "\n".join(lines)
    lines = [
        "| page | median ms | p95 ms | max ms | SQL ms | statements | bytes |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        lines.append(
            f"| {r['page']} | {r['median_ms']} | {r['p95_ms']} | {r['max_ms']} "
            f"| {r['sql_median_ms']} | {r['statements']} | {r['bytes']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the seeded database (sqlite:///… or postgresql://…)")
    parser.add_argument("--requests", type=int, default=20, help="measured requests per page")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured requests first")
    parser.add_argument("--only", help="pages whose name contains this text")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--compare", help="a --json file of an earlier run: before/after table")
    parser.add_argument("--sql", action="store_true", help="each page's slowest statements")
    parser.add_argument("--explain", action="store_true", help="the plans of each page's SQL")
    args = parser.parse_args(argv)

    app, container = build_app(args.url)
    engine = container.engine
    recorder = SqlRecorder(engine)
    client = log_in(app)
    meta = versions(engine)
    print(" · ".join(f"{k} {v}" for k, v in meta.items()), file=sys.stderr)
    results = []
    for page, path in pages(engine, client, container.settings.ui.page_size):
        if args.only and args.only not in page:
            continue
        if args.explain:
            print(f"\n=== {page}: {path}")
            explain(engine, client, recorder, path)
            continue
        result = measure(client, recorder, page, path, args.requests, args.warmup)
        row = result.row()
        results.append(row)
        print(
            f"{page:38} median {row['median_ms']:8.1f} ms  p95 {row['p95_ms']:8.1f} ms  "
            f"SQL {row['sql_median_ms']:8.1f} ms  ({row['statements']} statements)",
            file=sys.stderr,
        )
        if args.sql:
            for took, statement in result.slowest[:3]:
                print(f"    {took:8.1f} ms  {' '.join(statement.split())[:300]}", file=sys.stderr)
    container.close()
    if args.explain:
        return
    before = None
    if args.compare:
        earlier = json.loads(Path(args.compare).read_text())
        before = {r["page"]: r for r in earlier["results"]}
    print(table(results, before))
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
