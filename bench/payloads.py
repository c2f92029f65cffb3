"""Alertmanager webhook bodies for the intake and delivery benchmarks, and the wrk script.

A body is one Alertmanager notification (version 4) of a Triton rule for one pod: 1 alert (a
model-scoped rule, TritonHighErrorRate) or N alerts (a GPU-scoped rule, one alert per GPU of the
pod, TritonGPUMemoryHigh), with the labels, annotations and group key Alertmanager sends for the
shipped monitoring config (``config/alertmanager/``: grouped by alertname, cluster and pod).

``template(alerts)`` returns the body with the placeholder ``@ID@`` where a new alert differs:
the pod name (so the group key, the group labels and the common labels), and each alert's
fingerprint. ``body(alerts, uid)`` fills it in. The wrk script (``WRK_LUA``) posts either one
fixed body again and again (the repeat path: every request after the first is a duplicate) or a
new uid per request (the new-alert path: every request a new group, a new incident and new
alert episodes).
"""

from __future__ import annotations

import json
from typing import Any

PLACEHOLDER = "@ID@"
RECEIVER = "triton-critical"
PATH = f"/api/v1/alertmanager/{RECEIVER}"
CLUSTER = "prod-us-east-1"
MODEL = "llama3_70b"
GPU_UUIDS = [f"GPU-5f0c{g:04x}-8a1e-4c2b-9d3f-6b7a8c9d{g:04x}" for g in range(16)]


def _alert(index: int, gpu_scoped: bool, severity: str) -> dict[str, Any]:
    pod = f"triton-llama3-70b-{PLACEHOLDER}"
    labels = {
        "alertname": "TritonGPUMemoryHigh" if gpu_scoped else "TritonHighErrorRate",
        "cluster": CLUSTER,
        "instance": "10.40.17.23:8002",
        "job": "triton",
        "model": MODEL,
        "namespace": "llm-serving",
        "pod": pod,
        "service": "triton-inference",
        "severity": severity,
        "team": "ml-serving",
    }
    if gpu_scoped:
        labels.update(gpu=str(index), gpu_uuid=GPU_UUIDS[index % len(GPU_UUIDS)])
        summary = f"GPU memory above 90% on {labels['gpu_uuid']} ({pod})"
        description = f"GPU {labels['gpu_uuid']} on {pod} uses 93% of its memory (OOM risk)."
        expr = "nv_gpu_memory_used_bytes / nv_gpu_memory_total_bytes > 0.9"
    else:
        labels["version"] = "1"
        summary = f"High inference error rate on {MODEL} ({pod})"
        description = f"Model {MODEL} version 1 on {pod} fails 0.42 requests/s (threshold 0.01/s)."
        expr = 'rate(nv_inference_request_failure{job="triton"}[5m]) > 0.01'
    return {
        "status": "firing",
        "labels": dict(sorted(labels.items())),
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": "https://runbooks.example.com/triton/gpumemoryhigh"
            if gpu_scoped
            else "https://runbooks.example.com/triton/higherrorrate",
        },
        "startsAt": "2026-11-28T10:00:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": f"http://prometheus.{CLUSTER}.example.com/graph?g0.expr="
        + expr.replace(" ", "+")
        + "&g0.tab=1",
        "fingerprint": f"{PLACEHOLDER}{index:02x}",
    }


def document(alerts: int = 1, severity: str = "critical") -> dict[str, Any]:
    """The notification as a dict, with ``@ID@`` placeholders."""
    gpu_scoped = alerts > 1
    items = [_alert(i, gpu_scoped, severity) for i in range(alerts)]
    group = {
        "alertname": items[0]["labels"]["alertname"],
        "cluster": CLUSTER,
        "pod": items[0]["labels"]["pod"],
    }
    common = {
        k: v for k, v in items[0]["labels"].items() if all(a["labels"].get(k) == v for a in items)
    }
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(group.items()))
    return {
        "receiver": RECEIVER,
        "status": "firing",
        "alerts": items,
        "groupLabels": group,
        "commonLabels": common,
        "commonAnnotations": items[0]["annotations"] if alerts == 1 else {},
        "externalURL": f"https://alertmanager.{CLUSTER}.example.com",
        "version": "4",
        "groupKey": f'{{}}/{{severity="{severity}"}}:{{{inner}}}',
        "truncatedAlerts": 0,
    }


def template(alerts: int = 1, severity: str = "critical") -> str:
    """The compact JSON text of ``document`` (placeholders in it), as Alertmanager sends it."""
    return json.dumps(document(alerts, severity), separators=(",", ":")) + "\n"


def body(alerts: int, uid: str, severity: str = "critical") -> bytes:
    """A body with every placeholder replaced by ``uid`` (16 hex digits make a realistic pod)."""
    return template(alerts, severity).replace(PLACEHOLDER, uid).encode()


def group_key(uid: str, alerts: int = 1, severity: str = "critical") -> str:
    """The groupKey of ``body(alerts, uid)`` (PagerDuty's dedup key is its sha256)."""
    return str(document(alerts, severity)["groupKey"]).replace(PLACEHOLDER, uid)


# wrk: `wrk -s intake.lua URL -- MODE TEMPLATE_FILE TOKEN SALT`
#   MODE repeat: the template with one fixed uid, the same bytes on every request
#   MODE new: a new uid per request: SALT (4 hex) + thread number (2 hex) + counter (10 hex)
# done() prints one JSON line (prefixed "RESULT ") with the counts and latency percentiles (µs).
WRK_LUA = r"""
local threads = {}
local next_id = 1

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  mode = args[1]
  local f = assert(io.open(args[2], "rb"))
  template = f:read("*a")
  f:close()
  salt = args[4]
  counter = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. args[3]
  wrk.headers["User-Agent"] = "Alertmanager/0.27.0"
  if mode == "repeat" then
    local fixed_body = template:gsub("@ID@", salt .. "00" .. "0000000000")
    fixed = wrk.format(nil, nil, nil, fixed_body)
  end
end

function request()
  if mode == "repeat" then
    return fixed
  end
  counter = counter + 1
  local uid = salt .. string.format("%02x%010x", tid, counter)
  return wrk.format(nil, nil, nil, (template:gsub("@ID@", uid)))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max))
end
"""
