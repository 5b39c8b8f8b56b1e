"""DPoP proofs (RFC 9449) made by joserfc, an independent JOSE library, for the gate's tests.

Reads a JSON document on standard input:
  {"keys": {"a": <private JWK>, ...},
   "cases": [{"name": ..., "key": "a", "htm": "GET", "htu": "https://…", "token": "<access token>",
              "iat": <seconds from now>, "jti": ..., "nonce": ..., "alg": ..., "typ": ...,
              "private_jwk": true, "omit": ["ath", ...]}]}
Writes {"thumbprints": {"a": ...}, "proofs": {name: proof}}: the thumbprints as joserfc computes
them (RFC 7638), so the gate's own computation is checked against another's.
"""
import base64
import hashlib
import json
import sys
import time
import uuid

from joserfc import jws
from joserfc.jwk import ECKey, OctKey

spec = json.load(sys.stdin)
keys = {name: ECKey.import_key(jwk) for name, jwk in spec["keys"].items()}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


proofs = {}
for case in spec["cases"]:
    key = keys[case.get("key", "a")]
    claims = {
        "jti": case.get("jti", str(uuid.uuid4())),
        "htm": case.get("htm", "GET"),
        "htu": case["htu"],
        "iat": int(time.time()) + case.get("iat", 0),
        "ath": b64(hashlib.sha256(case["token"].encode()).digest()),
    }
    if "nonce" in case:
        claims["nonce"] = case["nonce"]
    for name in case.get("omit", []):
        claims.pop(name, None)
    header = {"typ": case.get("typ", "dpop+jwt"), "alg": case.get("alg", "ES256"),
              "jwk": key.as_dict(private=bool(case.get("private_jwk")))}
    payload = json.dumps(claims).encode()
    alg = header["alg"]
    if alg == "none":
        proofs[case["name"]] = b64(json.dumps(header).encode()) + "." + b64(payload) + "."
    elif alg == "HS256":
        secret = OctKey.import_key(b"s" * 32)
        proofs[case["name"]] = jws.serialize_compact(header, payload, secret, algorithms=["HS256"])
    else:
        proofs[case["name"]] = jws.serialize_compact(header, payload, key, algorithms=[alg])

json.dump({"thumbprints": {name: key.thumbprint() for name, key in keys.items()}, "proofs": proofs}, sys.stdout)
