#!/usr/bin/env python3
"""A development identity provider for `make run`: a key pair under .local/, its JWKS, and tokens.

    .venv/bin/python scripts/dev_tokens.py jwks            # the JWKS file's path (made once)
    .venv/bin/python scripts/dev_tokens.py token alice     # a token for user `alice`, valid 1 hour

`make run` serves the API with EVENTLINE_TOKEN_ISSUER=eventline-dev and this
JWKS, so the tokens printed here are accepted there. Production uses its own
identity provider's issuer and keys instead. Run with the project's venv
(PyJWT and cryptography).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

LOCAL = Path(os.environ.get("EVENTLINE_LOCAL_DIR", Path(__file__).resolve().parent.parent / ".local"))
KEY_FILE, JWKS_FILE = LOCAL / "dev-idp-key.pem", LOCAL / "dev-jwks.json"
ISSUER, AUDIENCE, KID = "eventline-dev", "eventline", "eventline-dev-1"


def private_key() -> rsa.RSAPrivateKey:
    if KEY_FILE.exists():
        loaded = serialization.load_pem_private_key(KEY_FILE.read_bytes(), password=None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        return loaded
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    LOCAL.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    KEY_FILE.write_bytes(pem)
    KEY_FILE.chmod(0o600)
    return key


def jwks_file() -> Path:
    public = json.loads(RSAAlgorithm.to_jwk(private_key().public_key()))
    JWKS_FILE.write_text(json.dumps({"keys": [public | {"kid": KID, "use": "sig", "alg": "RS256"}]}) + "\n")
    return JWKS_FILE


def token(subject: str, minutes: int) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "iat": now, "nbf": now, "exp": now + 60 * minutes}
    return jwt.encode(claims, private_key(), algorithm="RS256", headers={"kid": KID})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("jwks", help="print the path of the JWKS file (EVENTLINE_TOKEN_JWKS_FILE)")
    issue = commands.add_parser("token", help="print a token for a user")
    issue.add_argument("subject")
    issue.add_argument("--minutes", type=int, default=60)
    args = parser.parse_args()
    print(jwks_file() if args.command == "jwks" else token(args.subject, args.minutes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
