"""Benchmarks run by hand (docs/benchmarks.md): seed.py fills a database, ui_pages.py times."""
