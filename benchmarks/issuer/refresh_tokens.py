"""Prints N refresh tokens of the bench web client, one per line, each of its own family.

Usage: refresh_tokens.py ISSUER_URL CLIENT_ID SECRET USER PASSWORD REDIRECT_URI N
One sign-in through the HTML form, then N authorization requests on that session (the client
skips consent), each code exchanged for a refresh token.
"""
import base64
import hashlib
import re
import secrets
import sys
from urllib.parse import parse_qs, urlencode, urlparse

import requests

issuer, client_id, secret, user, password, redirect_uri, count = sys.argv[1:8]
browser = requests.Session()


def authorize():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
        "scope": "openid offline_access", "code_challenge": challenge, "code_challenge_method": "S256",
    })
    answer = browser.get(issuer + "/oauth2/authorize?" + query, allow_redirects=False, timeout=10)
    if answer.status_code == 200:
        form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', answer.text))
        form.update(username=user, password=password)
        answer = browser.post(issuer + "/oauth2/authorize/login", data=form, allow_redirects=False, timeout=10)
    code = parse_qs(urlparse(answer.headers["Location"]).query)["code"][0]
    tokens = requests.post(issuer + "/oauth2/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier,
    }, auth=(client_id, secret), timeout=10).json()
    return tokens["refresh_token"]


for _ in range(int(count)):
    print(authorize())
