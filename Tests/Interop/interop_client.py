"""What the interop flows share: a check that prints and stops at the first failure,
base64url, a DPoP proof (RFC 9449 §4.2) made with joserfc, and a JWT's claims read."""
import base64
import hashlib
import json
import sys
import time
import uuid

from joserfc import jws


def check(condition, label):
    if not condition:
        print("FAILED:", label, flush=True)
        sys.exit(1)
    print("ok:", label, flush=True)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def proof(key, method, url, token=None, nonce=None):
    """An ES256 proof by `key` for METHOD URL; with `token`, its ath; with `nonce`, the nonce."""
    claims = {"jti": str(uuid.uuid4()), "htm": method, "htu": url, "iat": int(time.time())}
    if token:
        claims["ath"] = b64(hashlib.sha256(token.encode()).digest())
    if nonce:
        claims["nonce"] = nonce
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    return jws.serialize_compact(header, json.dumps(claims).encode(), key, algorithms=["ES256"])


def claims_of(jwt):
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
