"""Gunicorn target: ``gunicorn receiver.wsgi:app`` (config from RECEIVER_CONFIG / RECEIVER_*)."""

from receiver.app import create_app
from receiver.logs import configure_logging
from receiver.settings import load_settings

settings = load_settings()
configure_logging(settings.log_level, settings.log_format)
app = create_app(settings)
