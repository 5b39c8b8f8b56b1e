"""The issuer tried from outside as an attacker would, against a running `tollgate serve`.

Usage: issuer_attacks.py ISSUER WEB_ID WEB_SECRET M2M_ID M2M_SECRET USER PASSWORD REDIRECT_URI QUERY...

QUERY is the command that runs one SQL statement against the issuer's storage and prints the
rows (`sqlite3 FILE` or `psql URL -At -c`), used to read what is at rest past the issuer.
The issuer section must have `enable_dynamic_registration: true`,
`refresh_token_reuse_interval: 30s`, `limits: {account_failures: 3, wait_increment: 30s,
user_code_failures_per_address: 3}`, the device grant, an API `@team/billing` the machine client
may not have, and a route `/api` in front of an upstream that accepts any token of the issuer.
Each check is one RFC 9700 / RFC 7009 / RFC 7662 / RFC 8707 / OIDC rule; the script stops at the
first that fails.
"""
import base64
import hashlib
import re
import secrets
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlencode, urlparse

import requests

issuer, web_id, web_secret, m2m_id, m2m_secret, user, password, redirect_uri = sys.argv[1:9]
query_command = sys.argv[9:]
origin = re.match(r"^(https?://[^/]+)", issuer).group(1)
web = (web_id, web_secret)
m2m = (m2m_id, m2m_secret)


def check(condition, label):
    if not condition:
        print("FAILED:", label)
        sys.exit(1)
    print("ok:", label)


def fields(html):
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def action(html):
    return re.search(r'<form method="post" action="([^"]+)"', html).group(1)


def sql(statement):
    return subprocess.run(query_command + [statement], check=True, capture_output=True, text=True).stdout


def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(challenge, scope="openid offline_access @team/orders.read", **extra):
    parameters = {
        "response_type": "code", "client_id": web_id, "redirect_uri": redirect_uri, "scope": scope,
        "state": "st", "code_challenge": challenge, "code_challenge_method": "S256",
    }
    parameters.update(extra)
    return issuer + "/oauth2/authorize?" + urlencode(parameters)


def code_flow(browser=None):
    """Signs in and consents in `browser`; returns the code, its verifier and the browser."""
    browser = browser or requests.Session()
    verifier, challenge = pkce()
    page = browser.get(authorize_url(challenge), allow_redirects=False, timeout=10)
    if page.status_code == 200 and 'name="password"' in page.text:
        form = fields(page.text)
        form.update(username=user, password=password)
        page = browser.post(origin + action(page.text), data=form, allow_redirects=False, timeout=10)
    if page.status_code == 200 and "Allow access?" in page.text:
        form = fields(page.text)
        form["decision"] = "allow"
        page = browser.post(origin + action(page.text), data=form, allow_redirects=False, timeout=10)
    code = parse_qs(urlparse(page.headers["Location"]).query)["code"][0]
    return code, verifier, browser


def redeem(code, verifier, **extra):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier}
    data.update(extra)
    return requests.post(issuer + "/oauth2/token", data=data, auth=web, timeout=10)


def introspect(token, auth=web):
    return requests.post(issuer + "/oauth2/introspect", data={"token": token}, auth=auth, timeout=10).json()


def through_gate(token):
    return requests.get(origin + "/api/orders", headers={"Authorization": "Bearer " + token}, timeout=10).status_code


# RFC 7009 / 7662: refresh tokens are revoked and introspected; revoking one revokes its grant,
# and the gate in the same process refuses the grant's JWT at once.
code, verifier, browser = code_flow()
tokens = redeem(code, verifier).json()
access, refresh = tokens["access_token"], tokens["refresh_token"]
check(through_gate(access) == 200, "the code flow's JWT passes the gate")
own = introspect(refresh)
check(own.get("active") is True and own.get("token_type") == "refresh_token", "a live refresh token introspects")
check(introspect(refresh, auth=m2m) == {"active": False}, "another client introspecting it learns nothing")
check(introspect(access, auth=m2m) == {"active": False}, "nor of its access token")
revoked = requests.post(issuer + "/oauth2/revoke", data={"token": refresh}, auth=web, timeout=10)
check(revoked.status_code == 200, "the refresh token is revoked")
again = requests.post(issuer + "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": refresh},
                      auth=web, timeout=10)
check(again.status_code == 400 and again.json()["error"] == "invalid_grant", "a revoked refresh token is refused")
check(introspect(access) == {"active": False}, "its grant's access token is inactive")
check(through_gate(access) == 401, "and the gate refuses the grant's JWT at once")

# RFC 8707: a token only for an API the client may have a scope of, a code only for its resource.
other = requests.post(issuer + "/oauth2/token", data={"grant_type": "client_credentials",
                                                      "resource": "@team/billing"}, auth=m2m, timeout=10)
check(other.status_code == 400 and other.json()["error"] == "invalid_target",
      "client_credentials for an API none of whose scopes the client has: invalid_target")
code, verifier, browser = code_flow(browser)
widened = redeem(code, verifier, resource="@team/billing")
check(widened.status_code == 400 and widened.json()["error"] == "invalid_target",
      "a code redeemed for another API: invalid_target")
check(redeem(code, verifier + "x").json().get("error") == "invalid_grant", "a wrong verifier: invalid_grant")
check(redeem(code, verifier).status_code == 200, "neither spent the code: its owner still redeems it")

# Concurrent redemptions of one code: at most one answer, and nothing it issued stays live.
code, verifier, browser = code_flow(browser)
with ThreadPoolExecutor(max_workers=4) as pool:
    answers = list(pool.map(lambda _: redeem(code, verifier), range(4)))
winners = [answer.json() for answer in answers if answer.status_code == 200]
check(len(winners) <= 1, "four concurrent redemptions: at most one wins")
for winner in winners:
    check(introspect(winner["access_token"]) == {"active": False}, "the winner's access token is revoked")
    check(introspect(winner["refresh_token"]) == {"active": False}, "and its refresh token")
    check(through_gate(winner["access_token"]) == 401, "and the gate refuses its JWT")

# Nothing usable at rest: after a refresh (the retry answer kept sealed), no live token, code or
# refresh token appears anywhere in the storage.
code, verifier, browser = code_flow(browser)
first = redeem(code, verifier).json()
second = requests.post(issuer + "/oauth2/token", data={"grant_type": "refresh_token",
                                                       "refresh_token": first["refresh_token"]},
                       auth=web, timeout=10).json()
stored = sql("SELECT body FROM records UNION ALL SELECT body FROM tokens UNION ALL "
             "SELECT body FROM refresh_tokens UNION ALL SELECT COALESCE(successor_answer, '') FROM refresh_tokens")
sealed = sql("SELECT successor_answer FROM refresh_tokens WHERE successor_answer IS NOT NULL")
check(sealed.strip() != "", "the retry answer is kept (refresh_token_reuse_interval)")
live = [code, first["refresh_token"], second["refresh_token"], second["access_token"], second["id_token"]]
check(all(value not in stored for value in live), "but no live code or token is readable in the storage")
retry = requests.post(issuer + "/oauth2/token", data={"grant_type": "refresh_token",
                                                      "refresh_token": first["refresh_token"]},
                      auth=web, timeout=10).json()
check(retry.get("refresh_token") == second["refresh_token"], "the retry within the interval gets its answer")

# Login CSRF: a sign-in form loaded by the attacker and posted from the victim's browser.
attacker = requests.Session()
_, challenge = pkce()
page = attacker.get(authorize_url(challenge), timeout=10)
victim = requests.Session()
form = fields(page.text)
form.update(username=user, password=password)
forged = victim.post(origin + action(page.text), data=form, allow_redirects=False, timeout=10)
check(forged.status_code == 403 and "tollgate_session" not in victim.cookies.get_dict(),
      "a sign-in form posted from another browser signs nobody in")

# Logout CSRF: a bare link, or a client_id and its URI without a hint, neither signs out nor
# redirects.
bare = browser.get(issuer + "/oauth2/end_session", allow_redirects=False, timeout=10)
check(bare.status_code == 200 and "Sign out?" in bare.text, "a bare end_session link only asks")
named = browser.get(issuer + "/oauth2/end_session?" + urlencode({
    "client_id": web_id, "post_logout_redirect_uri": "http://127.0.0.1:9/signed-out"}),
    allow_redirects=False, timeout=10)
check(named.status_code == 200 and "Location" not in named.headers, "client_id and a URI without a hint: no redirect")
_, challenge = pkce()
still = browser.get(authorize_url(challenge, prompt="none"), allow_redirects=False, timeout=10)
check("code=" in still.headers.get("Location", ""), "the person is still signed in")

# Open redirects: a self-registered client's errors are shown, not redirected; user information
# in a loopback redirect URI is refused.
sneaky = requests.post(issuer + "/oauth2/register", json={"redirect_uris": ["http://127.0.0.1:1@evil.example/cb"],
                                                          "token_endpoint_auth_method": "none"}, timeout=10)
check(sneaky.status_code == 400, "a redirect URI with user information is not registered")
registered = requests.post(issuer + "/oauth2/register", json={"redirect_uris": ["https://evil.example/cb"],
                                                              "token_endpoint_auth_method": "none"}, timeout=10)
check(registered.status_code == 201, "a client registers itself")
bounced = requests.get(issuer + "/oauth2/authorize?" + urlencode({
    "client_id": registered.json()["client_id"], "redirect_uri": "https://evil.example/cb",
    "response_type": "token", "state": "x"}), allow_redirects=False, timeout=10)
check(bounced.status_code == 400 and "Location" not in bounced.headers,
      "its authorization error is shown on a page, never redirected")

big = requests.post(issuer + "/oauth2/register", json={"redirect_uris": ["https://app.example/cb"],
                                                       "client_name": "n" * 60000,
                                                       "token_endpoint_auth_method": "none"}, timeout=10)
check(big.status_code == 400, "a 60 KB client_name is not registered")

# The consent form is accepted only with the session that signed in.
_, challenge = pkce()
fresh = requests.Session()
page = fresh.get(authorize_url(challenge, prompt="consent"), timeout=10)
form = fields(page.text)
form.update(username=user, password=password)
consent = fresh.post(origin + action(page.text), data=form, allow_redirects=False, timeout=10)
check("Allow access?" in consent.text, "signing in leads to the consent form")
sessionless = requests.Session()
sessionless.cookies.set("tollgate_browser", fresh.cookies.get("tollgate_browser"))
form = fields(consent.text)
form["decision"] = "allow"
stolen = sessionless.post(origin + action(consent.text), data=form, allow_redirects=False, timeout=10)
check(stolen.status_code == 403 and "Location" not in stolen.headers, "the consent form without the session: refused")

# Response modes: form_post answers with a page posting to the redirect URI; others are refused.
_, challenge = pkce()
posted = browser.get(authorize_url(challenge, response_mode="form_post", state='"><script>x</script>'),
                     allow_redirects=False, timeout=10)
check(posted.status_code == 200 and 'action="' + redirect_uri + '"' in posted.text
      and "<script>x" not in posted.text and 'name="code"' in posted.text,
      "response_mode=form_post posts the code to the redirect URI, every value escaped")
_, challenge = pkce()
fragment = browser.get(authorize_url(challenge, response_mode="fragment"), allow_redirects=False, timeout=10)
check("error=invalid_request" in fragment.headers.get("Location", ""), "response_mode=fragment: invalid_request")

# Request objects are refused, not ignored.
_, challenge = pkce()
refused = requests.get(authorize_url(challenge, request="eyJhbGciOiJub25lIn0.e30."), allow_redirects=False,
                       timeout=10)
check("error=request_not_supported" in refused.headers.get("Location", ""), "request: request_not_supported")

# The device page writes nothing on GET; wrong user codes are bounded per address.
before = sql("SELECT COUNT(*) FROM records").strip()
device_browser = requests.Session()
entry = device_browser.get(issuer + "/oauth2/device", timeout=10)
for _ in range(5):
    device_browser.get(issuer + "/oauth2/device", timeout=10)
check(sql("SELECT COUNT(*) FROM records").strip() == before, "the device page stores nothing on GET")
statuses = []
for guess in ["BBBB-BBBB", "CCCC-CCCC", "DDDD-DDDD", "FFFF-FFFF"]:
    form = fields(entry.text)
    form.update(user_code=guess, username=user, password=password)
    statuses.append(device_browser.post(origin + action(entry.text), data=form, timeout=10).status_code)
check(statuses == [400, 400, 400, 429], "the fourth wrong user code from one address waits (429)")

# Brute force: past three failures an account's sign-in waits, whatever the password.
for attempt in range(4):
    guesser = requests.Session()
    _, challenge = pkce()
    page = guesser.get(authorize_url(challenge), timeout=10)
    form = fields(page.text)
    form.update(username="mallory", password="guess %d" % attempt)
    answer = guesser.post(origin + action(page.text), data=form, allow_redirects=False, timeout=10)
    expected = 401 if attempt < 3 else 429
    check(answer.status_code == expected, "failed sign-in %d of one account: %d" % (attempt + 1, expected))
check(int(answer.headers.get("Retry-After", "0")) > 0, "with Retry-After")

print("issuer attacks: all checks passed")
