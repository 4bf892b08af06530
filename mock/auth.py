"""Bearer JWTs (HS256). The demo secret is in the code on purpose, as the assignment asks."""

import jwt

#: Signs the demo token. Setting a real secret (MOCK_SECRET) makes the demo token invalid.
DEMO_SECRET = "notifyctl-demo-secret-do-not-use-in-production"
DEMO_CLAIMS = {"sub": "notifyctl-demo"}
_CACHE_LIMIT = 1_024  # tokens remembered as valid, so the hot path skips HMAC and JSON


def demo_token() -> str:
    """The token that opens the mock while it runs with the demo secret."""
    return jwt.encode(DEMO_CLAIMS, DEMO_SECRET, algorithm="HS256")


class TokenChecker:
    """Checks ``Authorization: Bearer <jwt>`` headers against one secret."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._valid: dict[str, float | None] = {}  # token -> its exp, if any

    def check(self, header: str | None, *, now: float) -> str | None:
        """Return None when the header carries a valid token, else the reason it does not."""
        if not header or not header.startswith("Bearer "):
            return "missing bearer token"
        token = header[7:].strip()
        if token in self._valid:
            exp = self._valid[token]
            if exp is None or now < exp:
                return None
            del self._valid[token]
            return "token expired"
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"])
        except jwt.ExpiredSignatureError:
            return "token expired"
        except jwt.InvalidTokenError as exc:
            return f"invalid token: {exc}"
        if len(self._valid) >= _CACHE_LIMIT:
            self._valid.clear()
        self._valid[token] = claims.get("exp")
        return None
