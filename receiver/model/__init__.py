"""Pure domain: alerts, identity, dedup and flapping rules. No Flask, SQLAlchemy or network."""
