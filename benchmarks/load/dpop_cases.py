"""The same DPoP proofs (RFC 9449), honest and hostile, sent to Tollgate and to Apache mod_oauth2,
made with joserfc from the keys mint_dpop.py wrote; run by dpop.sh --cases.

    dpop_cases.py DIR TOLLGATE_ORIGIN APACHE_ORIGIN

Prints a Markdown table: per case, what each answered (a status, or "dropped" when the
connection closed without an answer). Exits non-zero when Tollgate answers a hostile proof with
anything but 400 or 401, refuses an honest one (the first of each pair, and the honest case once
more at the end), or when mod_oauth2 answers otherwise than EXPECTED_MOD_OAUTH2 says (what the
README states of liboauth2 1.4.5.4; with MOD_OAUTH2_EXPECTED=warn, as for another version, such a
difference is printed, not failed).
"""
import os
import base64
import hashlib
import http.client
import json
import sys
import time
import uuid
from urllib.parse import urlparse

from joserfc import jws
from joserfc.jwk import ECKey, OctKey

directory, tollgate, apache = sys.argv[1:4]
client = ECKey.import_key(json.load(open(f"{directory}/client-private.jwk")))
other = ECKey.generate_key("P-256")
token = open(f"{directory}/token.txt").read()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


ATH = b64(hashlib.sha256(token.encode()).digest())


def proof(origin, key=None, omit=(), header_extra=None, alg="ES256", **claims):
    key = key or client
    body = {"jti": str(uuid.uuid4()), "htm": "GET", "htu": origin + "/orders/1", "iat": int(time.time()), "ath": ATH}
    body.update(claims)
    for name in omit:
        body.pop(name, None)
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": key.as_dict(private=False)}
    header.update(header_extra or {})
    if alg == "none":
        encoded = b64(json.dumps(header).encode()) + "." + b64(json.dumps(body).encode()) + "."
        return encoded
    signing = OctKey.import_key(b"0" * 32) if alg == "HS256" else key
    return jws.serialize_compact(header, json.dumps(body).encode(), signing, algorithms=[alg])


def send(origin, headers):
    """The status of GET /orders/1 with these (name, value) header lines, or 'dropped'."""
    parsed = urlparse(origin)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    try:
        connection.putrequest("GET", "/orders/1", skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status
    except (ConnectionError, http.client.HTTPException, OSError):
        return "dropped"
    finally:
        connection.close()


def dpop(value):
    return [("Authorization", "DPoP " + token), ("DPoP", value)]


# name -> function(origin) -> the requests' header lists; the last request's answer counts.
def replayed(origin):
    once = proof(origin)
    return [dpop(once), dpop(once)]


def reused_jti(origin):
    jti = str(uuid.uuid4())
    return [dpop(proof(origin, jti=jti)), dpop(proof(origin, jti=jti, iat=int(time.time()) - 1))]


def after_cached(origin):
    # The token was just taken with a good proof: is the next request's proof still checked?
    return [dpop(proof(origin)), dpop(proof(origin, key=other))]


CASES = [
    ("an honest proof", lambda o: [dpop(proof(o))]),
    ("htm another method (POST)", lambda o: [dpop(proof(o, htm="POST"))]),
    ("htm in lower case (get)", lambda o: [dpop(proof(o, htm="get"))]),
    ("htu another host", lambda o: [dpop(proof(o, htu="http://elsewhere.example/orders/1"))]),
    ("htu another path", lambda o: [dpop(proof(o, htu=o + "/orders/2"))]),
    ("htu another host, named in the client's X-Forwarded-Host",
     lambda o: [dpop(proof(o, htu="http://elsewhere.example/orders/1")) + [("X-Forwarded-Host", "elsewhere.example")]]),
    ("iat 15 minutes old", lambda o: [dpop(proof(o, iat=int(time.time()) - 900))]),
    ("iat 15 minutes ahead", lambda o: [dpop(proof(o, iat=int(time.time()) + 900))]),
    ("the same proof twice", replayed),
    ("a new proof reusing a jti", reused_jti),
    ("no jti", lambda o: [dpop(proof(o, omit=["jti"]))]),
    ("ath of another token", lambda o: [dpop(proof(o, ath=b64(hashlib.sha256(b"other").digest())))]),
    ("no ath", lambda o: [dpop(proof(o, omit=["ath"]))]),
    ("a key that is not the token's cnf.jkt", lambda o: [dpop(proof(o, key=other))]),
    ("the same, right after the token was taken", after_cached),
    ("the private key in jwk", lambda o: [dpop(proof(o, header_extra={"jwk": client.as_dict(private=True)}))]),
    ("alg none", lambda o: [dpop(proof(o, alg="none"))]),
    ("alg HS256", lambda o: [dpop(proof(o, alg="HS256"))]),
    ("typ jwt", lambda o: [dpop(proof(o, header_extra={"typ": "jwt"}))]),
    ("two DPoP headers", lambda o: [dpop(proof(o)) + [("DPoP", proof(o))]]),
    ("no DPoP header", lambda o: [[("Authorization", "DPoP " + token)]]),
    ("the bound token as a bearer token", lambda o: [[("Authorization", "Bearer " + token)]]),
    ("no htm", lambda o: [dpop(proof(o, omit=["htm"]))]),
    ("no htu", lambda o: [dpop(proof(o, omit=["htu"]))]),
]

# What liboauth2 1.4.5.4 (Debian bookworm's libapache2-mod-oauth2 3.3.1) answers: the README's
# table. 200 is a hostile proof taken; "dropped" is its worker crashing (a NULL pointer).
EXPECTED_MOD_OAUTH2 = {
    "an honest proof": 200,
    "htm another method (POST)": 401,
    "htm in lower case (get)": 200,
    "htu another host": 401,
    "htu another path": 401,
    "htu another host, named in the client's X-Forwarded-Host": 200,
    "iat 15 minutes old": 401,
    "iat 15 minutes ahead": 401,
    "the same proof twice": 401,
    "a new proof reusing a jti": 200,
    "no jti": 200,
    "ath of another token": 200,
    "no ath": 200,
    "a key that is not the token's cnf.jkt": 401,
    "the same, right after the token was taken": 401,
    "the private key in jwk": 200,
    "alg none": 401,
    "alg HS256": 401,
    "typ jwt": 401,
    "two DPoP headers": 401,
    "no DPoP header": 401,
    "the bound token as a bearer token": 401,
    "no htm": "dropped",
    "no htu": "dropped",
}

failures = []
warnings = []
print("| case | Tollgate | mod_oauth2 |")
print("| --- | --- | --- |")
for name, make in CASES + [("an honest proof", CASES[0][1])]:
    answers = {}
    for server, origin in (("tollgate", tollgate), ("apache", apache)):
        requests = make(origin)
        for index, headers in enumerate(requests):
            answers[server] = send(origin, headers)
            # The first of a pair is honest: it must have been taken for the second to mean anything.
            if index < len(requests) - 1 and server == "tollgate" and answers[server] != 200:
                failures.append(f"Tollgate answered {answers[server]} to the honest first request of: {name}")
    honest = name == "an honest proof"
    expected = [200] if honest else [400, 401]
    if answers["tollgate"] not in expected:
        failures.append(f"Tollgate answered {answers['tollgate']} to: {name}")
    if answers["apache"] != EXPECTED_MOD_OAUTH2[name]:
        message = f"mod_oauth2 answered {answers['apache']} (the table says {EXPECTED_MOD_OAUTH2[name]}) to: {name}"
        (warnings if os.environ.get("MOD_OAUTH2_EXPECTED") == "warn" else failures).append(message)

    def shown(answer):
        if answer == 200:
            return "200 **taken**" if not honest else "200"
        return str(answer)

    print(f"| {name} | {shown(answers['tollgate'])} | {shown(answers['apache'])} |", flush=True)
for warning in warnings:
    print("differs:", warning)
for failure in failures:
    print("FAILED:", failure)
if failures:
    sys.exit(1)
print("dpop cases: as the table says")
