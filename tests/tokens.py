"""An identity provider for the tests: a key pair of its own, its JWKS, and tokens it signs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://id.example.test"
AUDIENCE = "eventline"


@dataclass
class Provider:
    kid: str = "test-key-1"
    private: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))

    def jwks(self) -> str:
        public: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        return json.dumps({"keys": [public | {"kid": self.kid, "use": "sig", "alg": "RS256"}]})

    def token(self, subject: str, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "iat": now, "nbf": now, "exp": now + 300} | claims
        body = {k: v for k, v in body.items() if v is not None}  # a claim set to None is left out
        return jwt.encode(body, self.private, algorithm="RS256", headers={"kid": self.kid})
