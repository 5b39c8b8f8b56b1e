"""Server nonces (RFC 9449 §8–9) across two `tollgate serve` replicas given the same
`dpop.nonce_secret_file`, driven by a client built from PyPI libraries (requests, joserfc): the
token endpoint asks for a nonce, one replica's nonce is taken by the other, the gate and
userinfo ask for one with a DPoP challenge, and the gate's nonces are not the token endpoint's.

Usage: dpop_nonce_flow.py ISSUER REPLICA CLIENT_ID CLIENT_SECRET RESOURCE_PATH
ISSUER is the issuer identifier (the first replica), REPLICA the second replica's origin.
Prints one line per check and exits non-zero on the first failure.
"""
import sys

import requests
from joserfc.jwk import ECKey

from interop_client import check, proof

issuer, replica, client_id, client_secret, resource_path = sys.argv[1:6]


key = ECKey.generate_key("P-256")
meta = requests.get(issuer + "/.well-known/openid-configuration", timeout=10).json()
token_url = meta["token_endpoint"]
form = {"grant_type": "client_credentials", "scope": "@team/orders.read"}
auth = (client_id, client_secret)

first = requests.post(token_url, data=form, auth=auth, headers={"DPoP": proof(key, "POST", token_url)}, timeout=10)
check(first.status_code == 400 and first.json()["error"] == "use_dpop_nonce",
      f"the token endpoint asks for a nonce ({first.status_code} {first.text[:120]})")
nonce = first.headers.get("DPoP-Nonce")
check(bool(nonce), "with a DPoP-Nonce header")
made_up = requests.post(token_url, data=form, auth=auth,
                        headers={"DPoP": proof(key, "POST", token_url, nonce="A" * 32)}, timeout=10)
check(made_up.status_code == 400 and made_up.json()["error"] == "use_dpop_nonce", "a made-up nonce is refused")

# A failing request with a good proof: the nonce comes with the error too, and the proof is not
# spent (the request did nothing).
kept = proof(key, "POST", token_url, nonce=nonce)
failing = requests.post(token_url, data={"grant_type": "client_credentials", "scope": "not-offered"}, auth=auth,
                        headers={"DPoP": kept}, timeout=10)
check(failing.status_code == 400 and failing.json()["error"] == "invalid_scope" and failing.headers.get("DPoP-Nonce"),
      f"an error answer to a good proof carries the next nonce ({failing.status_code} {failing.text[:100]})")
again = requests.post(token_url, data=form, auth=auth, headers={"DPoP": kept}, timeout=10)
check(again.status_code == 200, f"and the proof of the failed request is still good ({again.status_code})")
spent = requests.post(token_url, data=form, auth=auth, headers={"DPoP": kept}, timeout=10)
check(spent.status_code == 400 and spent.json()["error"] == "invalid_dpop_proof", "once, not twice")

# The second replica: the same issuer identifier, so the same htu; another process.
other_token_url = token_url.replace(issuer, replica)
answer = requests.post(other_token_url, data=form, auth=auth,
                       headers={"DPoP": proof(key, "POST", token_url, nonce=nonce)}, timeout=10)
check(answer.status_code == 200 and answer.json()["token_type"] == "DPoP",
      f"the other replica takes the first one's nonce ({answer.status_code} {answer.text[:120]})")
check(bool(answer.headers.get("DPoP-Nonce")), "and hands out the current nonce with the tokens")
access = answer.json()["access_token"]

url = issuer + resource_path
no_nonce = requests.get(url, headers={"Authorization": "DPoP " + access,
                                      "DPoP": proof(key, "GET", url, access)}, timeout=10)
challenge = no_nonce.headers.get("WWW-Authenticate", "")
dpop_challenge = challenge[challenge.find("DPoP "):] if "DPoP " in challenge else ""
check(no_nonce.status_code == 401 and 'error="use_dpop_nonce"' in dpop_challenge,
      f"the gate asks for a nonce with a DPoP challenge ({no_nonce.status_code} {challenge})")
gate_nonce = no_nonce.headers.get("DPoP-Nonce")
shared = requests.post(token_url, data=form, auth=auth,
                       headers={"DPoP": proof(key, "POST", token_url, nonce=gate_nonce)}, timeout=10)
check(shared.status_code == 400 and shared.json()["error"] == "use_dpop_nonce",
      "the gate's nonce is not the token endpoint's (each server takes only its own, RFC 9449 §9)")
ok = requests.get(url, headers={"Authorization": "DPoP " + access,
                                "DPoP": proof(key, "GET", url, access, nonce=gate_nonce)}, timeout=10)
check(ok.status_code == 200, f"the gate takes the token with a nonced proof ({ok.status_code})")

userinfo = meta["userinfo_endpoint"]
unnonced = requests.get(userinfo, headers={"Authorization": "DPoP " + access,
                                           "DPoP": proof(key, "GET", userinfo, access)}, timeout=10)
challenge = unnonced.headers.get("WWW-Authenticate", "")
check(unnonced.status_code == 401 and challenge.startswith("DPoP") and 'error="use_dpop_nonce"' in challenge
      and bool(unnonced.headers.get("DPoP-Nonce")),
      f"userinfo asks for a nonce with a DPoP challenge ({unnonced.status_code} {challenge})")
print("dpop nonces: all checks passed", flush=True)
