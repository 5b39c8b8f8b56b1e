"""Fifty concurrent refreshes of one refresh token, spread over issuer processes on one store.

Usage: refresh_race.py ISSUER_URL OTHER_BASE_URL WEB_CLIENT_ID WEB_SECRET USER PASSWORD REDIRECT_URI
Gets a refresh token by the code flow through the HTML forms (requests, no OAuth library), then
sends fifty refreshes of it at once, alternating between the two processes. Exactly one rotation
may win; every other request, a retry by the same client within the reuse interval, must get the
winner's answer, so all fifty carry the one successor, which then refreshes once more.
"""
import base64
import hashlib
import re
import secrets
import sys
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlencode, urlparse

import requests

issuer, other, client_id, client_secret, user, password, redirect_uri = sys.argv[1:8]


def check(condition, label):
    if not condition:
        print("FAILED:", label)
        sys.exit(1)
    print("ok:", label)


def fields(html):
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def action(html):
    return re.search(r'<form method="post" action="([^"]+)"', html).group(1)


verifier = secrets.token_urlsafe(48)
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
query = urlencode({
    "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
    "scope": "openid offline_access", "state": "race", "code_challenge": challenge,
    "code_challenge_method": "S256",
})
browser = requests.Session()
page = browser.get(issuer + "/oauth2/authorize?" + query, timeout=10)
form = fields(page.text)
form.update(username=user, password=password)
consent = browser.post(issuer + action(page.text), data=form, timeout=10)
form = fields(consent.text)
form["decision"] = "allow"
done = browser.post(issuer + action(consent.text), data=form, allow_redirects=False, timeout=10)
code = parse_qs(urlparse(done.headers["Location"]).query)["code"][0]
tokens = requests.post(issuer + "/oauth2/token", data={
    "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier,
}, auth=(client_id, client_secret), timeout=10).json()
refresh = tokens["refresh_token"]
check(bool(refresh), "a refresh token from the code flow")

# Form-encode the id in the Basic header (RFC 6749 §2.3.1): the id holds '@' and '/'.
basic = base64.b64encode(
    (requests.utils.quote(client_id, safe="") + ":" + requests.utils.quote(client_secret, safe="")).encode()
).decode()


def rotate(index):
    base = issuer if index % 2 == 0 else other
    answer = requests.post(base + "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": refresh},
                           headers={"Authorization": "Basic " + basic}, timeout=30)
    return answer.status_code, answer.json()


with ThreadPoolExecutor(max_workers=50) as pool:
    results = list(pool.map(rotate, range(50)))
statuses = [status for status, _ in results]
successors = {body.get("refresh_token") for _, body in results}
check(statuses == [200] * 50, "all fifty refreshes are answered (one rotation, the rest within the reuse interval)")
check(len(successors) == 1, "and every answer carries the one successor")
successor = successors.pop()
check(successor != refresh, "which is a new token")
again = requests.post(issuer + "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": successor},
                      headers={"Authorization": "Basic " + basic}, timeout=10)
check(again.status_code == 200 and again.json()["refresh_token"] not in (refresh, successor),
      "the successor rotates once more")
print("refresh race: all checks passed")
