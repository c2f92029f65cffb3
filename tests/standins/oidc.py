"""An OpenID Connect identity provider stand-in: the authorization code flow over HTTP.

The contract follows OpenID Connect Core 1.0 (3.1, code flow), Discovery 1.0, RP-Initiated
Logout 1.0, RFC 6749 (OAuth 2.0) and RFC 7636 (PKCE, S256 only):

- ``GET /.well-known/openid-configuration``: the metadata; ``issuer`` is the base URL.
- ``GET /jwks``: the public RS256 keys, each with a kid (``rotate_key``/``retire_key``).
- ``GET|POST /authorize``: an unknown ``client_id`` or a ``redirect_uri`` not registered exactly
  for it is a 400 page, never a redirect (RFC 6749 4.1.2.1); every other outcome is a 302 to the
  redirect URI with ``state``: ``code``, or ``error`` (``unsupported_response_type``,
  ``invalid_scope`` without ``openid``, ``invalid_request`` for PKCE, ``access_denied`` after
  ``deny()``, ``login_required`` when the test chose nobody). The test picks who logs in
  beforehand with ``login_as``. Codes are single-use and live ``code_lifetime`` seconds.
- ``POST /token``: ``grant_type=authorization_code``, the client authenticated by
  ``client_secret_basic`` or ``client_secret_post`` (one of them), the code, the same
  ``redirect_uri`` and the ``code_verifier``. Errors are RFC 6749 5.2 JSON: ``invalid_client``
  with 401, ``invalid_grant``, ``invalid_request``, ``unsupported_grant_type``. A code used twice
  also revokes the access tokens it gave (RFC 6749 4.1.2).
- ``GET|POST /userinfo`` with ``Authorization: Bearer``: the claims; 401 with a
  ``WWW-Authenticate: Bearer error="invalid_token"`` header otherwise (RFC 6750 3).
- ``GET|POST /logout``: ``id_token_hint``, ``client_id``, ``post_logout_redirect_uri`` (registered
  exactly) and ``state``; recorded in ``logouts``.

How tokens are made (groups claim name, lifetime, clock skew, wrong issuer or audience, an
unknown signing key) is ``settings``, a ``TokenSettings`` the test may change at any time.
With ``tls=True`` it serves HTTPS with a certificate for 127.0.0.1 from a ``trustme`` CA
written to ``ca_file``.
"""

from __future__ import annotations

import secrets
import shutil
import ssl
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import trustme

from tests.standins import Answer, Clock, Fault, RequestHandler, StandIn, names
from tests.standins.oidc_checks import (
    FORM,
    NO_STORE,
    Params,
    authenticated_client,
    oauth_error,
    redirect,
    request_problem,
)
from tests.standins.oidc_tokens import (
    ALG,
    AUTH_METHODS,
    AccessToken,
    Client,
    Grant,
    KeyRing,
    TokenSettings,
    User,
    at_hash,
)

DISCOVERY = "/.well-known/openid-configuration"


class OIDCStandIn(StandIn):
    """An OpenID Provider on ``http://127.0.0.1:PORT`` (``https`` with ``tls=True``, its CA in
    ``ca_file``); use as a context manager."""

    def __init__(
        self,
        clients: Iterable[Client] = (),
        settings: TokenSettings | None = None,
        code_lifetime: float = 60.0,
        clock: Clock = time.monotonic,
        tls: bool = False,
    ) -> None:
        self._clients = {c.client_id: c for c in clients}
        self.settings = settings or TokenSettings()
        self.code_lifetime = code_lifetime
        self.keys = KeyRing()
        self._user: User | None = None
        self._refusal: tuple[str, str] | None = None
        self._grants: dict[str, Grant] = {}
        self._access: dict[str, AccessToken] = {}
        self._logouts: list[dict[str, Any]] = []
        self._routes: dict[str, tuple[tuple[str, ...], Callable[[Params, Any], Answer]]] = {
            DISCOVERY: (("GET",), lambda p, h: (200, self.metadata(), {})),
            "/jwks": (("GET",), lambda p, h: (200, self.keys.jwks(), {})),
            "/authorize": (("GET", "POST"), self._authorize),
            "/token": (("POST",), self._token),
            "/userinfo": (("GET", "POST"), self._userinfo),
            "/logout": (("GET", "POST"), self._logout),
        }
        self._tmp: Path | None = None
        self.ca_file: str | None = None  # with tls: the CA to trust (e.g. ui.oidc.ca_bundle)
        try:
            super().__init__(clock, tls=self._server_tls() if tls else None)
        except BaseException:
            self._remove_ca()
            raise
        scheme = "https" if tls else "http"
        self.base_url = self.issuer = f"{scheme}://127.0.0.1:{self.port}"
        self.metadata_url = self.issuer + DISCOVERY

    def _server_tls(self) -> ssl.SSLContext:
        """A certificate for 127.0.0.1 from a fresh ``trustme`` CA, written to ``ca_file``."""
        ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        self._tmp = Path(tempfile.mkdtemp(prefix="oidc-standin-"))
        self.ca_file = str(self._tmp / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)
        return context

    def _remove_ca(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def close(self) -> None:
        """Stop the server and its threads, then remove the CA file (with tls)."""
        try:
            super().close()
        finally:
            self._remove_ca()

    def metadata(self) -> dict[str, Any]:
        """The Discovery 1.0 document (section 3)."""
        scopes = ["openid", "profile", "email"]
        if self.settings.groups_scope is not None:
            scopes.append(self.settings.groups_scope)
        claims = ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash"]
        claims += ["name", "preferred_username", "email", "email_verified"]
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "userinfo_endpoint": self.issuer + "/userinfo",
            "jwks_uri": self.issuer + "/jwks",
            "end_session_endpoint": self.issuer + "/logout",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALG],
            "scopes_supported": scopes,
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [*claims, self.settings.groups_claim],
        }

    def add_client(self, client: Client) -> None:
        """Register (or replace, by client_id) a relying party."""
        with self._lock:
            self._clients[client.client_id] = client

    def login_as(
        self,
        sub: str,
        *,
        email: str | None = None,
        name: str | None = None,
        preferred_username: str | None = None,
        groups: Collection[str] | None = (),
        email_verified: bool = True,
    ) -> User:
        """Log this user in at every authorization request from now on."""
        kept = None if groups is None else tuple(groups)
        user = User(sub, email, name, preferred_username, kept, email_verified)
        with self._lock:
            self._user, self._refusal = user, None
        return user

    def deny(self, error: str = "access_denied", description: str = "The user refused") -> None:
        """Answer every authorization request from now on with this error (OIDC Core 3.1.2.6)."""
        with self._lock:
            self._refusal = (error, description)

    def rotate_key(self) -> str:
        """Publish a new signing key and sign with it from now on; returns its kid."""
        with self._lock:
            return self.keys.rotate()

    def retire_key(self, kid: str) -> None:
        """Stop publishing an old key: tokens it signed no longer verify."""
        with self._lock:
            self.keys.retire(kid)

    def fail(
        self,
        status: int = 503,
        times: int | None = None,
        seconds: float | None = None,
        paths: Collection[str] | None = None,
    ) -> None:
        """Answer ``status`` to the next ``times`` requests (or for ``seconds``), maybe only
        to some paths (``"/token"``, ``DISCOVERY``, ...)."""
        self.faults.add(Fault(status, times, names=names(paths)), seconds)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request in order: at, method, path, query, form, headers, repeated (parameter
        names given twice), status, fault, response."""
        return self.records()

    @property
    def logouts(self) -> list[dict[str, Any]]:
        """Logouts accepted, in order: client_id, sub (of the hint), post_logout_redirect_uri."""
        with self._lock:
            return [dict(entry) for entry in self._logouts]

    def describe(self, handler: RequestHandler, body: bytes) -> tuple[str, dict[str, Any]]:
        """Faults match the path; the record keeps the query, the form body and the headers."""
        split = urlsplit(handler.path)
        query = parse_qsl(split.query, keep_blank_values=True)
        is_form = handler.headers.get_content_type() == FORM
        form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True) if is_form else []
        counts = Counter(name for name, _ in (form if handler.command == "POST" else query))
        record = {
            "at": self.clock(),
            "method": handler.command,
            "path": split.path,
            "query": dict(query),
            "form": dict(form),
            "headers": dict(handler.headers.items()),
            "repeated": sorted(name for name, count in counts.items() if count > 1),
        }
        return split.path, record

    def injected(self, fault: Fault) -> Answer:
        """A ``fail()`` answer in RFC 6749's error shape."""
        status = fault.status or 503
        error = "temporarily_unavailable" if status == 503 else "server_error"
        return status, {"error": error, "error_description": "injected failure"}, {}

    def serve(self, handler: RequestHandler, body: bytes, record: dict[str, Any]) -> Answer:
        """Route by path and method; the parameters are the form body for POST, else the query."""
        route = self._routes.get(record["path"])
        if route is None:
            return 404, {"error": "not_found"}, {}
        methods, view = route
        if handler.command not in methods:
            return 405, {"error": "method_not_allowed"}, {"Allow": ", ".join(methods)}
        if record["repeated"]:  # RFC 6749 3.1 and 3.2: no parameter more than once
            return oauth_error("invalid_request", "repeated: " + ", ".join(record["repeated"]))
        params = record["form"] if handler.command == "POST" else record["query"]
        with self._lock:
            return view(params, handler.headers)

    def _authorize(self, params: Params, headers: Any) -> Answer:
        """The authorization endpoint (OIDC Core 3.1.2): a page for a bad client, else a 302."""
        client = self._clients.get(params.get("client_id", ""))
        if client is None:
            return 400, "Unknown client_id: this page does not redirect.", {}
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            return 400, "redirect_uri is not registered for this client.", {}
        back = {"state": params["state"]} if "state" in params else {}
        refusal = request_problem(params, client) or self._refusal
        if refusal is None and self._user is None:
            refusal = ("login_required", "no user chosen by the test")
        if refusal is not None:
            error = {"error": refusal[0], "error_description": refusal[1]}
            return redirect(redirect_uri, error, back)
        code = secrets.token_urlsafe(32)
        self._grants[code] = Grant(  # the user is not None here
            client.client_id,
            redirect_uri,
            frozenset(params["scope"].split()),
            self._user,
            params.get("nonce"),
            params.get("code_challenge"),
            int(time.time()),
            self.clock() + self.code_lifetime,
        )
        return redirect(redirect_uri, {"code": code}, back)

    def _token(self, params: Params, headers: Any) -> Answer:
        """The token endpoint (RFC 6749 4.1.3, OIDC Core 3.1.3): a code for tokens."""
        if headers.get_content_type() != FORM:
            return oauth_error("invalid_request", f"the body must be {FORM}")
        client = authenticated_client(self._clients, params, headers)
        if not isinstance(client, Client):
            return client
        grant_type = params.get("grant_type")
        if grant_type != "authorization_code":
            error = "invalid_request" if grant_type is None else "unsupported_grant_type"
            return oauth_error(error, "grant_type must be authorization_code")
        grant = self._grants.get(params.get("code", ""))
        if grant is None or grant.client_id != client.client_id:
            return oauth_error("invalid_grant", "unknown authorization code")
        if grant.used:
            for token in grant.access_tokens:
                self._access[token].revoked = True
            return oauth_error("invalid_grant", "authorization code already used")
        grant.used = True
        if self.clock() >= grant.expires_at:
            return oauth_error("invalid_grant", "authorization code expired")
        if params.get("redirect_uri") != grant.redirect_uri:
            return oauth_error("invalid_grant", "redirect_uri differs from the authorization's")
        if not grant.verifier_matches(params.get("code_verifier")):
            return oauth_error("invalid_grant", "code_verifier does not match the challenge")
        return 200, self._issue(client, grant), NO_STORE

    def _issue(self, client: Client, grant: Grant) -> dict[str, Any]:
        """The token response (OIDC Core 3.1.3.3) with a signed ID token (2, 3.1.3.6)."""
        settings, access = self.settings, secrets.token_urlsafe(32)
        claims = grant.user.claims(grant.scopes, settings)
        self._access[access] = AccessToken(
            client.client_id, claims, self.clock() + settings.lifetime
        )
        grant.access_tokens.append(access)
        now, skew = int(time.time() + settings.skew), int(settings.skew)
        id_claims = {
            **claims,
            "iss": settings.issuer or self.issuer,
            "aud": settings.audience or client.client_id,
            "iat": now,
            "exp": now + settings.lifetime,
            "auth_time": grant.auth_time + skew,
            "at_hash": at_hash(access),
        }
        if settings.nonce is not None or grant.nonce is not None:
            id_claims["nonce"] = settings.nonce or grant.nonce
        if settings.azp is not None:
            id_claims["azp"] = settings.azp
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": settings.lifetime,
            "scope": " ".join(sorted(grant.scopes)),
            "id_token": self.keys.sign(id_claims, settings.unknown_key),
        }

    def _userinfo(self, params: Params, headers: Any) -> Answer:
        """The UserInfo endpoint (OIDC Core 5.3) for a bearer token (RFC 6750 2.1)."""
        scheme, _, value = headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return 401, {"error": "invalid_request"}, {"WWW-Authenticate": "Bearer"}
        token = self._access.get(value.strip())
        if token is None or token.revoked or self.clock() >= token.expires_at:
            challenge = 'Bearer error="invalid_token"'
            return 401, {"error": "invalid_token"}, {"WWW-Authenticate": challenge}
        return 200, token.claims, NO_STORE

    def _logout(self, params: Params, headers: Any) -> Answer:
        """RP-Initiated Logout 1.0 (2, 3): record it, then redirect back or say logged out."""
        client_id, sub = params.get("client_id"), None
        if "id_token_hint" in params:
            hint = self.keys.verified_claims(params["id_token_hint"])
            if hint is None or hint.get("iss") != self.issuer:
                return 400, "The id_token_hint was not issued here.", {}
            client_id, sub = client_id or hint.get("aud"), hint.get("sub")
        uri = params.get("post_logout_redirect_uri")
        client = self._clients.get(client_id) if isinstance(client_id, str) else None
        if uri is not None and (client is None or uri not in client.post_logout_redirect_uris):
            return 400, "post_logout_redirect_uri is not registered for this client.", {}
        self._logouts.append({"client_id": client_id, "sub": sub, "post_logout_redirect_uri": uri})
        if uri is None:
            return 200, "You are logged out.", {}
        return redirect(uri, {}, {"state": params["state"]} if "state" in params else {})
