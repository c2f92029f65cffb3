"""Logging in to the UI from Flask's test client (the ``ui_app``/``ui_client`` fixtures use it)."""

from __future__ import annotations

import re
from typing import Any

PASSWORD = "correct horse battery"
HOSTILE = '<script>window.__xss=1</script><a href="javascript:alert(1)">x</a>'


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def login(client: Any, password: str = PASSWORD, username: str = "alice") -> Any:
    token = csrf(client.get("/login").get_data(as_text=True))
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )
