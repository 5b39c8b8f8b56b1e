"""Mints tokens with joserfc (an independent JOSE implementation) for TollgateCore's interop test.

Prints one JSON document: the public JWKS, the HMAC secret, and a list of cases, each a token with
the outcome TollgateCore must reach ("ok" or a failure code). Keys are generated fresh every run.
"""

import base64
import hashlib
import hmac
import json
import sys
import time
import warnings

from joserfc import jws, jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

warnings.filterwarnings("ignore")

ISSUER = "https://idp.example.com/team"
AUDIENCE = "@team/api"
NOW = int(time.time())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**extra):
    base = {
        "iss": ISSUER,
        "aud": [AUDIENCE, "@team/other"],
        "sub": "user-42",
        "exp": NOW + 600,
        "iat": NOW - 5,
        "scope": "@team/orders.read openid",
    }
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


keys = {
    "rsa": RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"}),
    "rsa-ps": RSAKey.generate_key(2048, parameters={"kid": "rsa-ps", "alg": "PS256"}),
    "p256": ECKey.generate_key("P-256", parameters={"kid": "p256-1"}),
    "p384": ECKey.generate_key("P-384", parameters={"kid": "p384-1"}),
    "p521": ECKey.generate_key("P-521", parameters={"kid": "p521-1"}),
    "ed25519": OKPKey.generate_key("Ed25519", parameters={"kid": "ed-1"}),
    "enc": RSAKey.generate_key(2048, parameters={"kid": "enc-1", "use": "enc"}),
}
attacker = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
attacker_ec = ECKey.generate_key("P-256", parameters={"kid": "attacker"})
secret = b"0123456789abcdef0123456789abcdef-hmac"
oct_key = OctKey.import_key(secret)

jwks = {"keys": [k.as_dict(private=False) for k in keys.values()]}
# A key of a type TollgateCore does not support must not take the others down with it.
jwks["keys"].append({"kty": "OKP", "crv": "Ed448", "kid": "ed448", "x": b64(b"\x01" * 57)})

cases = []


def add(name, token, expect):
    cases.append({"name": name, "token": token, "expect": expect})


def sign(alg, key, payload=None, header=None):
    head = {"alg": alg, "typ": "at+jwt"}
    kid = key.kid if hasattr(key, "kid") else None
    if kid:
        head["kid"] = kid
    head.update(header or {})
    return jwt.encode(head, payload or claims(), key, algorithms=[head["alg"]])


for alg in ["RS256", "RS384", "RS512"]:
    add(alg, sign(alg, keys["rsa"]), "ok")
for alg in ["PS384", "PS512"]:
    add(alg, sign(alg, keys["rsa"]), "ok")
add("PS256 (key pinned to PS256)", sign("PS256", keys["rsa-ps"]), "ok")
add("ES256", sign("ES256", keys["p256"]), "ok")
add("ES384", sign("ES384", keys["p384"]), "ok")
add("ES512", sign("ES512", keys["p521"]), "ok")
add("EdDSA", sign("EdDSA", keys["ed25519"]), "ok")
add("Ed25519", sign("Ed25519", keys["ed25519"]), "ok")
add("HS256", sign("HS256", oct_key, header={"kid": "hmac"}), "ok")
add("HS384", sign("HS384", oct_key, header={"kid": "hmac"}), "ok")
add("HS512", sign("HS512", oct_key, header={"kid": "hmac"}), "ok")
add("ES256 without kid", jwt.encode({"alg": "ES256", "typ": "at+jwt"}, claims(), keys["p256"], algorithms=["ES256"]), "ok")

# Hostile tokens, minted with the same library wherever it lets us.
add("RS256 by another key under the same kid", sign("RS256", attacker), "signature_invalid")
add("unknown kid", sign("ES256", attacker_ec), "unknown_key")


def unrestricted(key):
    """The same private key without its JWK `alg`/`use`, so the library signs anything with it."""
    data = {k: v for k, v in key.as_dict(private=True).items() if k not in ("alg", "use", "key_ops")}
    return RSAKey.import_key(data)


add("RS256 token on the PS256-pinned key", sign("RS256", unrestricted(keys["rsa-ps"])), "key_algorithm_mismatch")
add("ES256 naming the RSA kid", sign("ES256", keys["p256"], header={"kid": "rsa-1"}), "key_type_mismatch")
add("use: enc key", sign("RS256", unrestricted(keys["enc"])), "key_use_mismatch")
add("expired", sign("RS256", keys["rsa"], claims(exp=NOW - 120)), "expired")
add("not yet valid", sign("RS256", keys["rsa"], claims(nbf=NOW + 600)), "not_yet_valid")
add("no exp", sign("RS256", keys["rsa"], claims(exp=None)), "missing_expiration")
add("string exp", sign("RS256", keys["rsa"], claims(exp=str(NOW + 600))), "invalid_expiration")
add("trailing-slash iss", sign("RS256", keys["rsa"], claims(iss=ISSUER + "/")), "untrusted_issuer")
add("wrong aud", sign("RS256", keys["rsa"], claims(aud="@team/else")), "audience_mismatch")
add("jku to the attacker's set", sign("RS256", attacker, header={"jku": "https://evil.example/jwks"}), "signature_invalid")
add(
    "embedded jwk",
    sign("ES256", attacker_ec, header={"jwk": attacker_ec.as_dict(private=False), "kid": "p256-1"}),
    "signature_invalid",
)
add("wrong typ", sign("RS256", keys["rsa"], header={"typ": "JWT"}), "token_type_mismatch")

# Tokens joserfc refuses to produce are assembled by hand from its primitives.
header_none = b64(json.dumps({"alg": "none"}).encode())
body = b64(json.dumps(claims()).encode())
add("alg none", f"{header_none}.{body}.", "unsecured_token")
add("alg none with a signature", f"{header_none}.{body}.{b64(b'x')}", "unsecured_token")
rsa_pem = keys["rsa"].as_pem(private=False)
confused_head = b64(json.dumps({"alg": "HS256", "kid": "rsa-1"}).encode())
signing_input = f"{confused_head}.{body}".encode()
confused = f"{confused_head}.{body}.{b64(hmac.new(rsa_pem, signing_input, hashlib.sha256).digest())}"
add("HS256 keyed with the RSA public key", confused, "key_type_mismatch")

print(json.dumps({"jwks": jwks, "hmac_secret": secret.decode(), "issuer": ISSUER, "audience": AUDIENCE, "cases": cases}))
