"""py_oidc_auth (an independent relying-party library from PyPI) drives a running Tollgate issuer.

Usage: py_oidc_auth_flow.py ISSUER_URL WEB_CLIENT_ID WEB_SECRET USER PASSWORD REDIRECT_URI POST_LOGOUT_URI
The issuer has a public device client `@team/tv`. Covers the library's calls: login with PKCE,
callback, refresh, device flow, userinfo and logout. The person's part (the HTML forms) is
done with requests. Prints one line per check and exits non-zero on the first failure.
"""
import asyncio
import re
import sys
import time
from urllib.parse import parse_qs, urlparse

import requests
from py_oidc_auth.auth_base import OIDCAuth
from py_oidc_auth.exceptions import InvalidRequest
from py_oidc_auth.schema import IDToken

issuer, web_id, web_secret, user, password, redirect_uri, post_logout_uri = sys.argv[1:8]
discovery = issuer + "/.well-known/openid-configuration"
origin = "/".join(issuer.split("/", 3)[:3])


def check(condition, label):
    if not condition:
        print("FAILED:", label)
        sys.exit(1)
    print("ok:", label)


def fields(html):
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def action(html):
    return re.search(r'<form method="post" action="([^"]+)"', html).group(1)


async def sign_in(client, username, browser, **login):
    """The person's part: the sign-in and consent forms; returns the callback's query."""
    url = await client.login(redirect_uri=redirect_uri, prompt="login", **login)
    page = browser.get(url, timeout=10)
    form = fields(page.text)
    form.update(username=username, password=password)
    consent = browser.post(origin + action(page.text), data=form, timeout=10)
    form = fields(consent.text)
    form["decision"] = "allow"
    done = browser.post(origin + action(consent.text), data=form, allow_redirects=False, timeout=10)
    return url, parse_qs(urlparse(done.headers["Location"]).query)


async def main():
    auth = OIDCAuth(client_id=web_id, client_secret=web_secret, discovery_url=discovery, scopes="openid profile email")
    browser = requests.Session()
    url, query = await sign_in(auth, user, browser, offline_access=True)
    check("code_challenge_method=S256" in url, "login builds an authorization URL with PKCE")
    check("code" in query and query.get("iss") == [issuer], "the person signs in and consents; the code comes back")

    tokens = await auth.callback(code=query["code"][0], state=query["state"][0])
    check(bool(tokens["access_token"]) and bool(tokens["refresh_token"]), "callback exchanges the code (PKCE)")
    lifetime = tokens["refresh_expires"] - time.time()
    check(86400 - 60 < lifetime <= 86400, "refresh_expires comes from the answer's refresh_expires_in")

    # Claim constraints (reference 001): the access token of the API that lists groups and
    # realm_access carries them (the groups scope, consented, releases them), typed, and the
    # library filters on them.
    constrained = OIDCAuth(
        client_id=web_id,
        client_secret=web_secret,
        discovery_url=discovery,
        scopes="openid groups @team/orders.read",
        claims={"groups": ["admins"], "realm_access.roles": ["auditor"]},
    )
    _, granted = await sign_in(constrained, user, requests.Session())
    api_tokens = await constrained.callback(code=granted["code"][0], state=granted["state"][0])
    verified = await constrained._get_token(api_tokens["access_token"], effective_claims=constrained.config.claims)
    check("admins" in verified.groups and "auditor" in verified.realm_access["roles"], "a member passes the claim constraints")
    _, other = await sign_in(constrained, "bob", requests.Session())
    bob_tokens = await constrained.callback(code=other["code"][0], state=other["state"][0])
    try:
        await constrained._get_token(bob_tokens["access_token"], effective_claims=constrained.config.claims)
        check(False, "a person without those groups and roles is refused")
    except InvalidRequest as refused:
        check(refused.status_code == 401, "a person without those groups and roles is refused")

    info = await auth.userinfo(IDToken(), {"authorization": "Bearer " + tokens["access_token"]})
    check(info.username == user and info.email == "ada@example.test", "userinfo from the userinfo endpoint")

    refreshed = await auth.token("/callback", refresh_token=tokens["refresh_token"])
    check(refreshed.refresh_token != tokens["refresh_token"], "refresh rotates the refresh token")
    # Strict rotation (RFC 9700 §4.14.2): presenting the spent token again is a reuse, which
    # revokes the grant: the successor and every access token of the grant with it.
    try:
        await auth.token("/callback", refresh_token=tokens["refresh_token"])
        check(False, "the spent refresh token is refused")
    except InvalidRequest:
        check(True, "the spent refresh token is refused")
    try:
        await auth.token("/callback", refresh_token=refreshed.refresh_token)
        check(False, "its successor is revoked with the grant")
    except InvalidRequest:
        check(True, "its successor is revoked with the grant")
    try:
        await auth.userinfo(IDToken(), {"authorization": "Bearer " + tokens["access_token"]})
        check(False, "the grant's access tokens are revoked with it")
    except InvalidRequest:
        check(True, "the grant's access tokens are revoked with it")


    # The device flow, with the public device client.
    device = OIDCAuth(client_id="@team/tv", discovery_url=discovery, scopes="openid profile offline_access")
    started = await device.device_flow()
    check(bool(started.user_code) and started.verification_uri.startswith(issuer), "device_flow starts")
    try:
        await device.token("/device", device_code=started.device_code)
        check(False, "polling before the person confirms fails")
    except InvalidRequest:
        check(True, "polling before the person confirms fails")
    person = requests.Session()
    entry = person.get(started.verification_uri_complete, timeout=10)
    form = fields(entry.text)
    form.update(user_code=started.user_code, username=user, password=password)
    confirm = person.post(origin + action(entry.text), data=form, timeout=10)
    form = fields(confirm.text)
    form["decision"] = "allow"
    person.post(origin + action(confirm.text), data=form, timeout=10)
    time.sleep(started.interval)
    device_token = await device.token("/device", device_code=started.device_code)
    check(bool(device_token.access_token) and bool(device_token.refresh_token), "the device's poll gets tokens")

    # Logout: the library sends client_id and the post-logout URI, no id_token_hint. Without a
    # hint naming the signed-in person the issuer asks before it signs out (a cross-site link
    # must not), and without a hint it never redirects on its own: it offers the registered URI
    # as a link.
    target = await auth.logout(post_logout_uri)
    check(target.startswith(issuer + "/oauth2/end_session?"), "logout points at end_session")
    asked = browser.get(target, allow_redirects=False, timeout=10)
    check(asked.status_code == 200 and "Sign out?" in asked.text, "end_session asks the person first")
    form = fields(asked.text)
    form["confirm"] = "yes"
    signed_out = browser.post(origin + action(asked.text), data=form, allow_redirects=False, timeout=10)
    check(signed_out.status_code == 200 and "You are signed out" in signed_out.text, "confirmed, the session ends")
    check('href="' + post_logout_uri in signed_out.text, "and the registered post-logout URI is offered")
    again = browser.get(await auth.login(redirect_uri=redirect_uri, prompt="consent"), allow_redirects=False, timeout=10)
    check(again.status_code == 200 and 'name="password"' in again.text, "after logout the person must sign in again")
    print("py_oidc_auth: all checks passed")


asyncio.run(main())
