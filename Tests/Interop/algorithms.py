"""Every signing algorithm, checked by libraries nobody here wrote, against a running issuer.

Usage: algorithms.py ISSUER_URL GATE_URL ALG USER PASSWORD WEB_SECRET M2M_SECRET HS_CLIENT_ID
The issuer signs with ALG (`signing_algorithm`) and keeps client secrets plain; the web client
`@team/web` takes the issuer's algorithm for its ID tokens, HS_CLIENT_ID (same secret) HS256.
GATE_URL is a second Tollgate that verifies the issuer's tokens from its JWKS with
`algorithms: [ALG]` in front of an echo upstream at /api.
joserfc verifies the client_credentials access token; Authlib, as relying party, validates the
ID tokens (signature, at_hash with ALG's hash, nonce, audience); the gate lets the access token
through and refuses it altered. Prints one line per check; exits non-zero on the first failure.
"""
import re
import sys
from urllib.parse import parse_qs, urlparse

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt as authlib_jwt
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey

issuer, gate, alg, user, password, web_secret, m2m_secret, hs_client = sys.argv[1:9]
origin = "/".join(issuer.split("/", 3)[:3])


def check(condition, label):
    if not condition:
        print("FAILED:", label)
        sys.exit(1)
    print("ok:", label)


meta = requests.get(issuer + "/.well-known/openid-configuration", timeout=10).json()
supported = meta["id_token_signing_alg_values_supported"]
check(alg in supported and "HS256" in supported, f"discovery lists {alg} and HS256: {supported}")
jwks = requests.get(meta["jwks_uri"], timeout=10).json()
check(any(key.get("alg") == alg for key in jwks["keys"]), f"the JWKS holds a {alg} key")

# joserfc: the access token of client_credentials, with only ALG allowed.
answer = requests.post(
    meta["token_endpoint"],
    data={"grant_type": "client_credentials", "scope": "@team/orders.read"},
    auth=("@team/svc", m2m_secret),
    timeout=10,
).json()
access = answer["access_token"]
token = jwt.decode(access, KeySet.import_key_set(jwks), algorithms=[alg])
check(token.header["alg"] == alg and token.header["typ"] == "at+jwt", f"joserfc verifies the {alg} access token")
check(token.claims["aud"] == "@team/orders" and token.claims["iss"] == issuer, "with its audience and issuer")

# The gate, verifying from the JWKS with algorithms: [ALG].
through = requests.get(gate + "/api/x", headers={"Authorization": "Bearer " + access}, timeout=10)
check(through.status_code == 200, f"the gate lets the {alg} access token through ({through.status_code})")
head, body, signature = access.split(".")
altered = head + "." + body + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
refused = requests.get(gate + "/api/x", headers={"Authorization": "Bearer " + altered}, timeout=10)
check(refused.status_code == 401, "and refuses it with an altered signature")


def form_fields(html):
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def form_action(html):
    return re.search(r'<form method="post" action="([^"]+)"', html).group(1)


def id_token_of(client_id):
    """The code flow through the forms with Authlib; returns the token answer and the nonce."""
    client = OAuth2Session(
        client_id, web_secret, scope="openid profile email",
        redirect_uri="http://127.0.0.1:9/callback", code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier = generate_token(48)
    nonce = generate_token(20)
    url, _ = client.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    browser = requests.Session()
    page = browser.get(url, timeout=10)
    fields = form_fields(page.text)
    fields.update(username=user, password=password)
    consent = browser.post(origin + form_action(page.text), data=fields, allow_redirects=False, timeout=10)
    location = consent.headers.get("Location")
    if location is None:
        fields = form_fields(consent.text)
        fields["decision"] = "allow"
        done = browser.post(origin + form_action(consent.text), data=fields, allow_redirects=False, timeout=10)
        location = done.headers["Location"]
    answer = client.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    return answer, nonce


def validate(answer, nonce, client_id, key):
    claims = authlib_jwt.decode(
        answer["id_token"], key, claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": issuer}, "aud": {"essential": True, "value": client_id}},
        claims_params={"nonce": nonce, "client_id": client_id, "access_token": answer["access_token"]},
    )
    claims.validate()
    return claims


answer, nonce = id_token_of("@team/web")
claims = validate(answer, nonce, "@team/web", JsonWebKey.import_key_set(jwks))
check(claims.header["alg"] == alg, f"Authlib validates the {alg} ID token, its at_hash included")
check(claims["exp"] - claims["iat"] == 3600, "the ID token lives id_token_ttl")

answer, nonce = id_token_of(hs_client)
claims = validate(answer, nonce, hs_client, web_secret.encode())
check(claims.header["alg"] == "HS256", "Authlib validates the HS256 ID token with the client's secret")
try:
    jwt.decode(answer["id_token"], OctKey.import_key(b"another secret of enough length 32b"), algorithms=["HS256"])
    check(False, "another secret does not verify it")
except Exception:
    check(True, "another secret does not verify it")
print("algorithms: all checks passed")
