"""Alertmanager webhook receiver and incident router for LLM serving on NVIDIA Triton."""

__version__ = "0.1.0"
