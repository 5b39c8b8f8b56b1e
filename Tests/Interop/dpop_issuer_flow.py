"""A DPoP client built from PyPI libraries (requests, joserfc) against `tollgate serve`: the
issuer binds the code (dpop_jkt), the access token (cnf.jkt, token_type DPoP) and a public
client's refresh token to the client's key, and the gate in the same process takes the token
only with a proof by that key.

Usage: dpop_issuer_flow.py ISSUER CLIENT_ID USER PASSWORD RESOURCE
Prints one line per check and exits non-zero on the first failure.
"""
import hashlib
import re
import secrets
import sys
from urllib.parse import parse_qs, urlencode, urlparse

import requests
from joserfc.jwk import ECKey

from interop_client import b64, check, claims_of, proof

issuer, client_id, user, password, resource = sys.argv[1:6]
redirect_uri = "http://127.0.0.1:9/callback"


key, other = ECKey.generate_key("P-256"), ECKey.generate_key("P-256")
meta = requests.get(issuer + "/.well-known/openid-configuration", timeout=10).json()
check("ES256" in meta.get("dpop_signing_alg_values_supported", []), "discovery lists the DPoP algorithms")
token_url = meta["token_endpoint"]

verifier = secrets.token_urlsafe(48)
challenge = b64(hashlib.sha256(verifier.encode()).digest())
query = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
         "scope": "openid offline_access @team/orders.read", "state": "s1",
         "code_challenge": challenge, "code_challenge_method": "S256", "dpop_jkt": key.thumbprint()}
browser = requests.Session()
page = browser.get(meta["authorization_endpoint"] + "?" + urlencode(query), allow_redirects=False, timeout=10)
origin = "/".join(issuer.split("/")[:3])
for _ in range(4):
    if page.status_code == 302:
        break
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    action = re.search(r'<form method="post" action="([^"]+)"', page.text).group(1)
    if 'name="password"' in page.text:
        fields.update(username=user, password=password)
    else:
        fields["decision"] = "allow"
    page = browser.post(origin + action, data=fields, allow_redirects=False, timeout=10)
code = parse_qs(urlparse(page.headers["Location"]).query)["code"][0]

form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "client_id": client_id, "code_verifier": verifier}
unproven = requests.post(token_url, data=form, timeout=10)
check(unproven.status_code == 400 and unproven.json()["error"] == "invalid_dpop_proof",
      "a client declared dpop_bound_access_tokens gets nothing without a proof (and the code is not spent)")
wrong = requests.post(token_url, data=form, headers={"DPoP": proof(other, "POST", token_url)}, timeout=10)
check(wrong.status_code == 400 and wrong.json()["error"] == "invalid_dpop_proof",
      "the code bound with dpop_jkt is refused to a proof by another key")
answer = requests.post(token_url, data=form, headers={"DPoP": proof(key, "POST", token_url)}, timeout=10)
check(answer.status_code == 200, f"the code goes to a proof by the bound key ({answer.status_code} {answer.text[:200]})")
tokens = answer.json()
check(tokens["token_type"] == "DPoP", "token_type is DPoP")
access = tokens["access_token"]
check(claims_of(access).get("cnf", {}).get("jkt") == key.thumbprint(), "the access token's cnf.jkt is the key's")

replayed_proof = proof(key, "POST", token_url)
first = requests.post(token_url, data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                       "client_id": client_id}, headers={"DPoP": proof(other, "POST", token_url)},
                      timeout=10)
check(first.status_code == 400 and first.json()["error"] == "invalid_dpop_proof",
      "the public client's refresh token is refused with another key's proof")
refreshed = requests.post(token_url, data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                           "client_id": client_id}, headers={"DPoP": replayed_proof}, timeout=10)
check(refreshed.status_code == 200 and refreshed.json()["token_type"] == "DPoP", "and refreshed with the key's")
again = requests.post(token_url, data={"grant_type": "refresh_token",
                                       "refresh_token": refreshed.json()["refresh_token"], "client_id": client_id},
                      headers={"DPoP": replayed_proof}, timeout=10)
check(again.status_code == 400 and again.json()["error"] == "invalid_dpop_proof",
      "a token endpoint proof is taken once")
without = requests.post(token_url, data={"grant_type": "refresh_token",
                                         "refresh_token": refreshed.json()["refresh_token"], "client_id": client_id},
                        timeout=10)
check(without.status_code == 400, "a bound refresh token without a proof is refused")

access = refreshed.json()["access_token"]
url = resource + "/7"
ok = requests.get(url, headers={"Authorization": "DPoP " + access, "DPoP": proof(key, "GET", url, access)}, timeout=10)
check(ok.status_code == 200, f"the gate takes the issuer's bound token with a proof ({ok.status_code})")
stolen = requests.get(url, headers={"Authorization": "DPoP " + access,
                                    "DPoP": proof(other, "GET", url, access)}, timeout=10)
check(stolen.status_code == 401, "and refuses it with another key's proof")
bearer = requests.get(url, headers={"Authorization": "Bearer " + access}, timeout=10)
check(bearer.status_code == 401, "and refuses it as a bearer token")
userinfo = meta["userinfo_endpoint"]
as_bearer = requests.get(userinfo, headers={"Authorization": "Bearer " + access}, timeout=10)
check(as_bearer.status_code == 401, "userinfo refuses the bound token as a bearer token")
by_other = requests.get(userinfo, headers={"Authorization": "DPoP " + access,
                                          "DPoP": proof(other, "GET", userinfo, access)}, timeout=10)
challenge = by_other.headers.get("WWW-Authenticate", "")
check(by_other.status_code == 401 and challenge.startswith("DPoP ") and 'error="invalid_dpop_proof"' in challenge
      and 'algs="' in challenge, f"userinfo answers another key's proof with a DPoP challenge ({challenge})")
with_proof = requests.get(userinfo, headers={"Authorization": "DPoP " + access,
                                             "DPoP": proof(key, "GET", userinfo, access)}, timeout=10)
check(with_proof.status_code == 200 and with_proof.json().get("sub"), "and answers it with the key's proof")
print("dpop issuer: all checks passed", flush=True)
