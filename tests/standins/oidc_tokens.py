"""What the OpenID Connect stand-in keeps and hands out: clients, users, codes, tokens and keys.

Signing uses joserfc, the JOSE library Authlib 1.9's OpenID Connect client verifies with (it
comes with Authlib; ``authlib.jose`` is deprecated there and warns on import).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

ALG = "RS256"
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
PKCE_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 4.1: unreserved, 43..128
PKCE_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # BASE64URL(SHA256(verifier)), no padding
UnknownKey = Literal["new-kid", "published-kid"]


@dataclass(frozen=True)
class Client:
    """A registered relying party; the field names are those of OIDC Dynamic Registration."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()
    token_endpoint_auth_methods: tuple[str, ...] = AUTH_METHODS
    require_pkce: bool = True


@dataclass(frozen=True)
class User:
    """The end-user a test chose to log in (``OIDCStandIn.login_as``)."""

    sub: str
    email: str | None = None
    name: str | None = None
    preferred_username: str | None = None
    groups: tuple[str, ...] | None = ()  # None: the groups claim is left out
    email_verified: bool = True

    def claims(self, scopes: frozenset[str], settings: TokenSettings) -> dict[str, Any]:
        """The claims the granted scopes release (OIDC Core 5.4), the groups as configured."""
        claims: dict[str, Any] = {"sub": self.sub}
        if "profile" in scopes:
            claims["preferred_username"] = self.preferred_username or self.sub
            if self.name is not None:
                claims["name"] = self.name
        if "email" in scopes and self.email is not None:
            claims.update(email=self.email, email_verified=self.email_verified)
        wanted = settings.groups_scope is None or settings.groups_scope in scopes
        if self.groups is not None and wanted:
            claims[settings.groups_claim] = list(self.groups)
        return claims


@dataclass
class TokenSettings:
    """How tokens are made; a test changes these to provoke the relying party's rejections.

    ``skew`` shifts iat, auth_time and exp (negative: already expired, positive: issued in the
    future); ``issuer``/``audience`` replace the right values; ``azp`` adds that claim;
    ``nonce`` replaces the one the client sent; ``unknown_key`` signs with a key the JWKS does
    not hold, under a kid of its own ("new-kid") or under the published signing kid.
    """

    groups_claim: str = "groups"
    groups_scope: str | None = None  # None: groups released whatever the scope (Keycloak, Entra)
    lifetime: int = 300  # seconds: ID token exp - iat, and the access token's expires_in
    skew: float = 0.0
    issuer: str | None = None
    audience: str | list[str] | None = None
    azp: str | None = None
    nonce: str | None = None
    unknown_key: UnknownKey | None = None


@dataclass
class Grant:
    """One authorization code and what it was issued for (RFC 6749 4.1.2, RFC 7636 4.4)."""

    client_id: str
    redirect_uri: str
    scopes: frozenset[str]
    user: User
    nonce: str | None
    code_challenge: str | None
    auth_time: int  # epoch seconds of the login
    expires_at: float  # on the stand-in's clock
    used: bool = False
    access_tokens: list[str] = field(default_factory=list)

    def verifier_matches(self, verifier: str | None) -> bool:
        """RFC 7636 4.6: BASE64URL(SHA256(code_verifier)) equals the code challenge (S256)."""
        if self.code_challenge is None:
            return verifier is None
        if verifier is None or not PKCE_VERIFIER.fullmatch(verifier):
            return False
        return hmac.compare_digest(s256(verifier), self.code_challenge)


@dataclass
class AccessToken:
    """An issued bearer token and the claims ``/userinfo`` answers for it."""

    client_id: str
    claims: dict[str, Any]
    expires_at: float  # on the stand-in's clock
    revoked: bool = False


def s256(value: str) -> str:
    """BASE64URL-ENCODE(SHA256(ASCII(value))) without padding (RFC 7636 4.2)."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def at_hash(access_token: str) -> str:
    """The left half of SHA-256 of the access token, base64url (OIDC Core 3.1.3.6, RS256)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def new_key() -> RSAKey:
    """A 2048-bit RSA signing key whose kid is its RFC 7638 thumbprint."""
    params = {"use": "sig", "alg": ALG}
    return RSAKey.generate_key(2048, parameters=params, private=True, auto_kid=True)  # type: ignore[arg-type]


class KeyRing:
    """The RS256 keys: the JWKS publishes every key kept, the newest one signs."""

    def __init__(self) -> None:
        self._keys = [new_key()]
        self._stranger = new_key()  # never published

    @property
    def signing_kid(self) -> str:
        return str(self._keys[-1].kid)

    def rotate(self) -> str:
        """Publish a new key and sign with it from now on; the old ones stay published."""
        self._keys.append(new_key())
        return self.signing_kid

    def retire(self, kid: str) -> None:
        """Stop publishing ``kid`` (not the signing key: rotate first)."""
        if kid == self.signing_kid:
            raise ValueError("the signing key cannot be retired; rotate first")
        self._keys = [k for k in self._keys if k.kid != kid]

    def jwks(self) -> dict[str, Any]:
        """The JWK Set document (RFC 7517 5): public parts only."""
        return {"keys": [k.as_dict(private=False) for k in self._keys]}

    def sign(self, claims: dict[str, Any], unknown: UnknownKey | None = None) -> str:
        """A compact JWS of ``claims`` with the signing key, or with the unpublished one."""
        key = self._keys[-1] if unknown is None else self._stranger
        kid = self.signing_kid if unknown in (None, "published-kid") else self._stranger.kid
        return jwt.encode({"alg": ALG, "kid": kid, "typ": "JWT"}, claims, key, algorithms=[ALG])

    def verified_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a token signed by a published key (expired or not), else None."""
        keys = KeySet.import_key_set(self.jwks())
        try:
            return dict(jwt.decode(token, keys, algorithms=[ALG]).claims)
        except (JoseError, ValueError):
            return None
