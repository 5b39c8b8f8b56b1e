"""Certificate-bound tokens (RFC 8705) from the issuer, and DPoP-bound opaque tokens, driven by a
client built from PyPI libraries (requests, joserfc, cryptography) with client certificates made
by openssl, against `tollgate serve` terminating TLS: the token endpoint binds the access token
to the certificate the connection presented, introspection says so, and the gate in the same
process takes the token only over that certificate (and, when DPoP-bound too, with a proof).

Usage: mtls_issuer_flow.py ISSUER CLIENT_ID CLIENT_SECRET CERTS_DIR RESOURCE_PATH jwt|opaque
CERTS_DIR holds a.pem/a.key and b.pem/b.key, client certificates the gate's CA signed.
Prints one line per check and exits non-zero on the first failure.
"""
import hashlib
import sys
import warnings

import requests
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from joserfc.jwk import ECKey

from interop_client import b64, check, claims_of, proof

issuer, client_id, client_secret, certs, resource_path, form_of_token = sys.argv[1:7]
# The server's certificate is a throwaway one for localhost: not what is under test here.
warnings.filterwarnings("ignore")
CERT = {name: (f"{certs}/{name}.pem", f"{certs}/{name}.key") for name in ("a", "b")}


def thumbprint(name):
    with open(CERT[name][0], "rb") as pem:
        return b64(hashlib.sha256(x509.load_pem_x509_certificate(pem.read()).public_bytes(Encoding.DER)).digest())


def call(method, url, cert=None, **options):
    return requests.request(method, url, cert=CERT[cert] if cert else None, verify=False, timeout=10, **options)


meta = call("GET", issuer + "/.well-known/openid-configuration").json()
check(meta.get("tls_client_certificate_bound_access_tokens") is True,
      "discovery says tls_client_certificate_bound_access_tokens")
token_url, introspection_url = meta["token_endpoint"], meta["introspection_endpoint"]
form = {"grant_type": "client_credentials", "scope": "@team/orders.read"}
auth = (client_id, client_secret)

without = call("POST", token_url, data=form, auth=auth)
check(without.status_code == 400 and without.json()["error"] == "invalid_request",
      f"no token for the client without a certificate ({without.status_code} {without.text[:120]})")
answer = call("POST", token_url, cert="a", data=form, auth=auth)
check(answer.status_code == 200 and answer.json()["token_type"] == "Bearer",
      f"a token over certificate a ({answer.status_code} {answer.text[:120]})")
access = answer.json()["access_token"]
if form_of_token == "jwt":
    check(claims_of(access).get("cnf") == {"x5t#S256": thumbprint("a")}, "its cnf x5t#S256 is certificate a's")
else:
    check(access.count(".") == 0, "the access token is opaque")
described = call("POST", introspection_url, data={"token": access}, auth=auth).json()
check(described.get("active") and described.get("cnf") == {"x5t#S256": thumbprint("a")},
      f"introspection says it is bound to certificate a ({described.get('cnf')})")

url = issuer + resource_path
bearer = {"Authorization": "Bearer " + access}
check(call("GET", url, cert="a", headers=bearer).status_code == 200, "the gate takes it over certificate a")
check(call("GET", url, cert="b", headers=bearer).status_code == 401, "and refuses it over certificate b")
check(call("GET", url, headers=bearer).status_code == 401, "and without a certificate")

userinfo = meta["userinfo_endpoint"]
other = call("GET", userinfo, cert="b", headers=bearer)
check(other.status_code == 401 and "invalid_token" in other.headers.get("WWW-Authenticate", ""),
      "userinfo refuses it over certificate b")
own = call("GET", userinfo, cert="a", headers=bearer)
check(own.status_code == 403, f"and over certificate a goes on to its scope check ({own.status_code}: no openid)")

# Both bindings at once: a proof by the client's key and certificate a.
key = ECKey.generate_key("P-256")
both = call("POST", token_url, cert="a", data=form, auth=auth, headers={"DPoP": proof(key, "POST", token_url)})
check(both.status_code == 200 and both.json()["token_type"] == "DPoP", "a DPoP proof over certificate a: token_type DPoP")
access = both.json()["access_token"]
described = call("POST", introspection_url, data={"token": access}, auth=auth).json()
check(described.get("cnf") == {"jkt": key.thumbprint(), "x5t#S256": thumbprint("a")},
      f"introspection names the key and the certificate ({described.get('cnf')})")


def dpop_get(cert, with_proof=True):
    headers = {"Authorization": "DPoP " + access}
    if with_proof:
        headers["DPoP"] = proof(key, "GET", url, access)
    return call("GET", url, cert=cert, headers=headers).status_code


check(dpop_get("a") == 200, "the gate takes it with a proof over certificate a")
check(dpop_get("a", with_proof=False) == 401, "not without the proof")
check(dpop_get("b") == 401, "nor with the proof over certificate b")
print(f"mtls issuer ({form_of_token}): all checks passed", flush=True)
