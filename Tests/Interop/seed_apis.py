"""The seed documents' client calls, as written, against a running Tollgate issuer.

Usage: seed_apis.py ISSUER_URL WEB_SECRET USER PASSWORD OTHER_USER CONSENT_PAGE NATIVE_CLIENT NATIVE_REDIRECT
The issuer sends browsers to CONSENT_PAGE (`consent_page`), allows dynamic registration and
serves reference 004's endpoint paths. Covers:
- 000: `authClient.oauth2.consent({ accept: true })` — a JSON body with `accept` only, from the
  browser that was sent to the consent page — and `authClient.oauth2.register({...})`;
- 004: a native (public) client's code flow with PKCE and Expo's `revokeAsync` (the refresh
  token revoked with `client_id` alone, `token_type_hint`, form-encoded, `Accept: application/json`).
Prints one line per check; exits non-zero on the first failure.
"""
import base64
import hashlib
import re
import secrets
import sys
from urllib.parse import parse_qs, urlencode, urlparse

import requests

issuer, web_secret, user, password, other_user, consent_page, native_id, native_redirect = sys.argv[1:9]
origin = "/".join(issuer.split("/", 3)[:3])


def check(condition, label):
    if not condition:
        print("FAILED:", label)
        sys.exit(1)
    print("ok:", label)


meta = requests.get(issuer + "/.well-known/openid-configuration", timeout=10).json()
check(meta["token_endpoint"] == issuer + "/oidc/token", "discovery names 004's token path")
check(meta["authorization_endpoint"] == issuer + "/oidc/auth", "and its authorization path")
check(meta["userinfo_endpoint"] == issuer + "/oidc/me" and meta["jwks_uri"] == issuer + "/oidc/jwks", "userinfo, JWKS")
check(meta["introspection_endpoint"] == issuer + "/oidc/token/introspection", "introspection")
check(requests.post(issuer + "/oauth2/token", data={}, timeout=10).status_code == 404, "the default path is gone")


def pkce():
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def fields(html):
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def action(html):
    return re.search(r'<form method="post" action="([^"]+)"', html).group(1)


def sign_in(browser, client_id, redirect_uri, scope, username):
    """Sign-in form; returns the redirect after it (consent page or client) and the verifier."""
    verifier, challenge = pkce()
    query = urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scope,
        "state": "s-1", "code_challenge": challenge, "code_challenge_method": "S256",
    })
    page = browser.get(meta["authorization_endpoint"] + "?" + query, timeout=10)
    form = fields(page.text)
    form.update(username=username, password=password)
    signed = browser.post(origin + action(page.text), data=form, allow_redirects=False, timeout=10)
    check(signed.status_code == 302, f"{username} signs in")
    return signed.headers["Location"], verifier


# 000: the application's consent page answers with { accept: true } and nothing else.
web_redirect = "http://127.0.0.1:9/callback"
browser = requests.Session()
location, verifier = sign_in(browser, "@team/web", web_redirect, "openid profile @team/orders.read", user)
check(location.startswith(consent_page + "?"), "the browser is sent to the application's consent page")
check("tollgate_consent" in browser.cookies.get_dict(), "with the consent code in a cookie")
consent_url = issuer + "/oauth2/consent"

stranger = requests.post(consent_url, json={"accept": True}, timeout=10)
check(stranger.status_code in (400, 401), f"another browser without the cookies is refused ({stranger.status_code})")
other = requests.Session()
sign_in(other, "@team/web", web_redirect, "openid", other_user)
stolen = requests.post(consent_url, json={"accept": True}, timeout=10, headers={
    "Cookie": "tollgate_session=%s; tollgate_consent=%s"
    % (other.cookies.get("tollgate_session"), browser.cookies.get("tollgate_consent")),
})
check(stolen.status_code == 400, "another person's session with the stolen consent cookie is refused")

decided = browser.post(consent_url, json={"accept": True}, timeout=10)
check(decided.status_code == 200, f"consent({{accept: true}}) from the browser is accepted ({decided.text})")
next_url = decided.json()["redirect_uri"]
code = parse_qs(urlparse(next_url).query)["code"][0]
tokens = requests.post(meta["token_endpoint"], data={
    "grant_type": "authorization_code", "code": code, "redirect_uri": web_redirect, "code_verifier": verifier,
}, auth=("%40team%2Fweb", web_secret), timeout=10).json()
check("access_token" in tokens and "id_token" in tokens, "the code it answered is exchanged")
again = browser.post(consent_url, json={"accept": True}, timeout=10)
check(again.status_code == 400, "the consent cookie is spent")

# A second request opened in the same browser while one waits (a page the person never looks
# at) does not take its place: the cookie is cleared and each page must name its code.
def start(session, scope):
    """An authorization request from a browser already signed in: where it is sent."""
    _, challenge = pkce()
    query = urlencode({
        "response_type": "code", "client_id": "@team/web", "redirect_uri": web_redirect, "scope": scope,
        "state": "s-2", "code_challenge": challenge, "code_challenge_method": "S256",
    })
    answer = session.get(meta["authorization_endpoint"] + "?" + query, allow_redirects=False, timeout=10)
    return answer.headers["Location"]


shown = start(browser, "openid email @team/orders.read")
check("tollgate_consent" in browser.cookies.get_dict(), "one waiting request: the cookie carries its code")
hidden = start(browser, "openid offline_access")
check("tollgate_consent" not in browser.cookies.get_dict(), "a second waiting request clears the consent cookie")
alone = browser.post(consent_url, json={"accept": True}, timeout=10)
check(alone.status_code == 400, "then {accept: true} alone is refused")
named = browser.post(consent_url, timeout=10, json={
    "accept": True, "consent_code": parse_qs(urlparse(shown).query)["consent_code"][0],
})
check(named.status_code == 200, "and the page that names its code is answered")
fresh = requests.Session()
page, _ = sign_in(fresh, "@team/web", web_redirect, "openid offline_access", user)
wrong_page = fresh.post(consent_url, json={"accept": True}, timeout=10,
                        headers={"Referer": consent_page + "?consent_code=another"})
check(wrong_page.status_code == 400, "a Referer naming another request is refused")
right_page = fresh.post(consent_url, json={"accept": True}, timeout=10, headers={"Referer": page})
check(right_page.status_code == 200, f"its own page's Referer is accepted ({right_page.status_code} {right_page.text} {page})")

# 000: authClient.oauth2.register({...}) as the options table's page shows it.
registered = requests.post(meta["registration_endpoint"], json={
    "client_name": "My App",
    "redirect_uris": ["https://app.example.com/callback"],
    "grant_types": ["authorization_code"],
    "scope": "openid profile email",
}, timeout=10)
check(registered.status_code == 201, f"register() creates the client ({registered.text})")
answer = registered.json()
check(answer["client_name"] == "My App" and answer["client_secret"] and answer["scope"] == "openid profile email",
      "with its name, a secret shown once and its scopes")

# 004: a native app's code flow with PKCE (first-party, no consent), then Expo's revokeAsync.
native = requests.Session()
location, verifier = sign_in(native, native_id, native_redirect, "openid offline_access", user)
code = parse_qs(urlparse(location).query)["code"][0]
tokens = requests.post(meta["token_endpoint"], data={
    "grant_type": "authorization_code", "code": code, "redirect_uri": native_redirect,
    "client_id": native_id, "code_verifier": verifier,
}, timeout=10).json()
check("refresh_token" in tokens and "refresh_expires_in" in tokens, "the native client gets a refresh token")
revoked = requests.post(
    meta["revocation_endpoint"],
    data=urlencode({"token": tokens["refresh_token"], "token_type_hint": "refresh_token", "client_id": native_id}),
    headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
    timeout=10,
)
check(revoked.status_code == 200, f"revokeAsync with client_id alone is accepted ({revoked.status_code})")
refreshed = requests.post(meta["token_endpoint"], data={
    "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": native_id,
}, timeout=10)
check(refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant", "the refresh token is revoked")
info = requests.get(meta["userinfo_endpoint"], headers={"Authorization": "Bearer " + tokens["access_token"]}, timeout=10)
check(info.status_code == 401, "and the access tokens of its grant with it")
print("seed APIs: all checks passed")
