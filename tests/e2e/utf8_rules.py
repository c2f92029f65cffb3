"""A rule whose alert carries UTF-8 label names, for Prometheus 3 only (2.42 refuses the file).

It fires while the simulator exports the GPU ``GPU_UUID`` (at half its memory, so no shipped
rule fires for it) and resolves when the GPU is removed.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ALERT = "TritonGPUTaggedUTF8"
GPU_UUID = "GPU-e2e-utf8-0001"
# a dot, and a name and value beyond ASCII: legal label names since Prometheus 3.0
LABELS = {"gpu.model": "A100", "modèle": "Llama «3» 70B"}


def utf8_rules(directory: Path, prometheus_version: str) -> list[Path]:
    """The rules file for Prometheus 3 and later (written into ``directory``), none before."""
    if int(prometheus_version.split(".")[0]) < 3:
        return []
    rule = {
        "alert": ALERT,
        "expr": f'nv_gpu_memory_total_bytes{{gpu_uuid="{GPU_UUID}"}} > 0',
        "labels": {"severity": "warning", **LABELS},
        "annotations": {"summary": f"GPU {GPU_UUID} tagged with UTF-8 label names"},
    }
    path = directory / "utf8-labels.yml"
    text = yaml.safe_dump({"groups": [{"name": "e2e-utf8", "rules": [rule]}]}, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return [path]
