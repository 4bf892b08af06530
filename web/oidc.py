"""Bearer JWTs from the configured OpenID Connect provider, checked against its keys."""

import threading
import time
from typing import Any

import httpx
import jwt
from loguru import logger

from notifyctl.config import Settings

DISCOVERY_TIMEOUT = 5.0  # seconds to read the provider's discovery document
FAILURE_PAUSE = 10.0  # seconds during which a failed discovery is not tried again
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


class ProviderUnavailable(Exception):
    """The provider's keys cannot be had right now."""


class OidcVerifier:
    """Verifies ID tokens: signature (the provider's JWKS), issuer, audience, expiry.

    The discovery document and keys are fetched on first use and cached; PyJWKClient
    refetches the keys when a token names a key it has not seen (key rotation).
    """

    def __init__(
        self, *, issuer: str, audience: str, allowed: list[str], groups: list[str] = ()
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.allowed = {entry.lower() for entry in allowed}
        self.groups = {entry.lower() for entry in groups}
        self._keys: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()
        self._failed_until = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "OidcVerifier | None":
        if not (settings.oidc_issuer and settings.oidc_client_id):
            return None
        return cls(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_client_id,
            allowed=settings.oidc_allowed_users,
            groups=settings.oidc_allowed_groups,
        )

    def _jwks(self) -> jwt.PyJWKClient:
        """The provider's keys. Fails fast while another thread fetches them, and for
        ``FAILURE_PAUSE`` seconds after a failed fetch: a hanging provider must not queue
        every request (and the health check) behind one lock."""
        if self._keys is not None:
            return self._keys
        if time.monotonic() < self._failed_until:
            raise ProviderUnavailable("the provider's discovery failed a moment ago")
        if not self._lock.acquire(blocking=False):
            raise ProviderUnavailable("the provider's keys are being fetched")
        try:
            if self._keys is None:
                url = f"{self.issuer}/.well-known/openid-configuration"
                try:
                    answer = httpx.get(url, timeout=DISCOVERY_TIMEOUT).raise_for_status()
                    jwks_uri = answer.json()["jwks_uri"]
                except Exception:
                    self._failed_until = time.monotonic() + FAILURE_PAUSE
                    raise
                self._keys = jwt.PyJWKClient(jwks_uri, cache_keys=True, timeout=DISCOVERY_TIMEOUT)
            return self._keys
        finally:
            self._lock.release()

    def _decode(self, token: str) -> dict[str, Any]:
        keys = self._jwks()
        if jwt.get_unverified_header(token).get("kid"):
            key = keys.get_signing_key_from_jwt(token).key
            return _decode_with(token, key, audience=self.audience, issuer=self.issuer)
        # No key id (some providers sign with their only key): try each published key.
        error: jwt.PyJWTError = jwt.InvalidSignatureError("no key verifies the token")
        for candidate in keys.get_signing_keys():
            try:
                return _decode_with(
                    token, candidate.key, audience=self.audience, issuer=self.issuer
                )
            except jwt.InvalidSignatureError as exc:
                error = exc
        raise error

    def verify(self, token: str) -> dict[str, Any] | None:
        """The token's claims when it is valid and its user allowed, else None."""
        try:
            claims = self._decode(token)
        except (jwt.PyJWTError, httpx.HTTPError, ProviderUnavailable, KeyError, ValueError) as exc:
            logger.info("refused a bearer JWT: {reason}", reason=type(exc).__name__)
            return None
        if not self.allows(claims):
            logger.info("refused a bearer JWT: user not in the allowed users or groups")
            return None
        return claims

    def allows(self, claims: dict[str, Any]) -> bool:
        """Whether the user may in: anyone when no user or group is listed, else a match."""
        if not (self.allowed or self.groups):
            return True
        who = {str(claims.get("sub", "")).lower()}
        if claims.get("email_verified") is True:  # an unverified address is anybody's claim
            who.add(str(claims.get("email", "")).lower())
        groups = claims.get("groups") or []
        if isinstance(groups, str):
            groups = [groups]
        return bool(who & self.allowed or {str(g).lower() for g in groups} & self.groups)


def _decode_with(token: str, key: Any, *, audience: str, issuer: str) -> dict[str, Any]:
    return jwt.decode(
        token,
        key,
        algorithms=ALGORITHMS,
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iss", "aud", "sub"]},
    )


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("ey")
