"""The WSGI application (config from RECEIVER_CONFIG / RECEIVER_*).

``receiver serve`` and the image serve ``receiver.asgi:app``, which reads whole requests before
they reach a thread. Serve this one (``gunicorn receiver.wsgi:app``, sync workers) only behind
a proxy that buffers requests itself (nginx does by default): a slow client holds a sync worker.
"""

from receiver.app import create_app
from receiver.logs import configure_logging
from receiver.settings import load_settings

settings = load_settings()
configure_logging(settings.log_level, settings.log_format)
app = create_app(settings)
