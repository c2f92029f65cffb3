"""The intake benchmark's ceiling: a bare Flask app that only parses the JSON body and answers.

    gunicorn -c python:receiver.gunicorn_conf --workers 2 --bind 127.0.0.1:9199 bench.ceiling:app

Same server, same gunicorn settings and worker count, same request and a JSON answer of the same
shape; no authentication, validation, database or metrics. What the receiver reaches is reported
as a fraction of what this reaches on the same machine.
"""

from __future__ import annotations

import json

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

app = Flask(__name__)


@app.post("/api/v1/alertmanager", defaults={"name": None})
@app.post("/api/v1/alertmanager/<name>")
def receive(name: str | None) -> ResponseReturnValue:
    doc = json.loads(request.get_data())
    return jsonify({"status": "stored", "receiver": name, "alerts": len(doc["alerts"])}), 200


@app.get("/readyz")
def readyz() -> ResponseReturnValue:
    return jsonify({"status": "ok"})
