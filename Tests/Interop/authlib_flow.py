"""Authlib (an independent OAuth 2 / OpenID Connect client) drives a running Tollgate issuer.

Usage: authlib_flow.py ISSUER_URL WEB_CLIENT_ID WEB_SECRET M2M_CLIENT_ID M2M_SECRET USER PASSWORD
The issuer also has a public device client `@team/tv` and the web client the post-logout
redirect URI http://127.0.0.1:9/signed-out.
Prints one line per check and exits non-zero on the first failure.
"""
import re
import sys
import time
from urllib.parse import parse_qs, urlparse

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client.errors import OAuthError
from authlib.jose import JsonWebKey, jwt
from authlib.common.security import generate_token
from authlib.oidc.core import CodeIDToken

issuer, web_id, web_secret, m2m_id, m2m_secret, user, password = sys.argv[1:8]
redirect_uri = "http://127.0.0.1:9/callback"


def check(condition, label):
    if not condition:
        print("FAILED:", label)
        sys.exit(1)
    print("ok:", label)


meta = requests.get(issuer + "/.well-known/openid-configuration", timeout=10).json()
check(meta["issuer"] == issuer, "discovery names the issuer")
jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())

client = OAuth2Session(
    web_id, web_secret, scope="openid profile email offline_access @team/orders.read",
    redirect_uri=redirect_uri, code_challenge_method="S256",
    token_endpoint_auth_method="client_secret_basic",
)
verifier = generate_token(48)
nonce = generate_token(20)
url, state = client.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)

browser = requests.Session()
page = browser.get(url, allow_redirects=False, timeout=10)
check(page.status_code == 200 and "<form" in page.text, "the authorization endpoint shows a sign-in form")


def form_fields(html):
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def form_action(html):
    return re.search(r'<form method="post" action="([^"]+)"', html).group(1)


base = issuer.split("/", 3)
origin = base[0] + "//" + base[2]
fields = form_fields(page.text)
fields.update(username=user, password=password)
consent = browser.post(origin + form_action(page.text), data=fields, allow_redirects=False, timeout=10)
check(consent.status_code == 200 and "Allow" in consent.text, "signing in leads to the consent page")
check("tollgate_session" in browser.cookies.get_dict(), "a session cookie is set")
fields = form_fields(consent.text)
fields["decision"] = "allow"
done = browser.post(origin + form_action(consent.text), data=fields, allow_redirects=False, timeout=10)
check(done.status_code == 302, "consent redirects to the client")
location = done.headers["Location"]
query = parse_qs(urlparse(location).query)
check(query.get("state") == [state], "the state comes back")
check(query.get("iss") == [issuer], "RFC 9207 iss is in the authorization response")

token = client.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
check("id_token" in token and "refresh_token" in token, "the code is exchanged for access, ID and refresh tokens")
claims = jwt.decode(
    token["id_token"], jwks, claims_cls=CodeIDToken,
    claims_options={"iss": {"essential": True, "value": issuer}, "aud": {"essential": True, "value": web_id}},
    claims_params={"nonce": nonce, "client_id": web_id, "access_token": token["access_token"]},
)
claims.validate()
check(claims["sub"] == user, "the ID token verifies (signature, iss, aud, nonce, at_hash, exp) and names the user")

info = client.get(meta["userinfo_endpoint"], timeout=10).json()
check(info["sub"] == user and "email" in info, "userinfo answers for the access token")

# RFC 7662: the client introspects its own refresh token; another client learns nothing of it.
own = client.introspect_token(
    meta["introspection_endpoint"], token=token["refresh_token"], token_type_hint="refresh_token"
).json()
check(own["active"] is True and own["token_type"] == "refresh_token" and own["client_id"] == web_id,
      "introspection of the client's own refresh token: active")

old_refresh = token["refresh_token"]
refreshed = client.refresh_token(meta["token_endpoint"], refresh_token=old_refresh)
check(refreshed["refresh_token"] != old_refresh, "a refresh rotates the refresh token")
second = client.refresh_token(meta["token_endpoint"], refresh_token=refreshed["refresh_token"])
try:
    client.refresh_token(meta["token_endpoint"], refresh_token=old_refresh)
    check(False, "the spent refresh token is refused")
except OAuthError as error:
    check(error.error == "invalid_grant", "the spent refresh token is refused with invalid_grant")
try:
    client.refresh_token(meta["token_endpoint"], refresh_token=second["refresh_token"])
    check(False, "its family is revoked")
except OAuthError as error:
    check(error.error == "invalid_grant", "and its whole family is revoked")

machine = OAuth2Session(m2m_id, m2m_secret, token_endpoint_auth_method="client_secret_basic")
m2m = machine.fetch_token(meta["token_endpoint"], grant_type="client_credentials", scope="@team/orders.read")
check("access_token" in m2m and "refresh_token" not in m2m, "client_credentials with an id containing @ and /")
foreign = machine.introspect_token(meta["introspection_endpoint"], token=refreshed["access_token"]).json()
check(foreign == {"active": False}, "another client introspecting the web client's token learns nothing")

active = machine.introspect_token(meta["introspection_endpoint"], token=m2m["access_token"]).json()
check(active["active"] is True and active["client_id"] == m2m_id, "introspection: active")
machine.revoke_token(meta["revocation_endpoint"], token=m2m["access_token"])
inactive = machine.introspect_token(meta["introspection_endpoint"], token=m2m["access_token"]).json()
check(inactive == {"active": False}, "after revocation: inactive")

# RFC 8628: the device asks, the person confirms in a browser, the device polls.
device = OAuth2Session("@team/tv", token_endpoint_auth_method="none", scope="openid offline_access @team/orders.read")
started = requests.post(
    meta["device_authorization_endpoint"],
    data={"client_id": "@team/tv", "scope": "openid offline_access @team/orders.read"}, timeout=10,
).json()
check({"device_code", "user_code", "verification_uri", "interval"} <= started.keys(), "a device authorization")
device_grant = "urn:ietf:params:oauth:grant-type:device_code"
try:
    device.fetch_token(meta["token_endpoint"], grant_type=device_grant, device_code=started["device_code"])
    check(False, "the first poll is pending")
except OAuthError as error:
    check(error.error == "authorization_pending", "before the person confirms: authorization_pending")
person = requests.Session()
entry = person.get(started["verification_uri_complete"], timeout=10)
check(started["user_code"] in entry.text, "the verification page is pre-filled with the user code")
fields = form_fields(entry.text)
fields.update(user_code=started["user_code"], username=user, password=password)
confirm = person.post(origin + form_action(entry.text), data=fields, timeout=10)
check(confirm.status_code == 200 and "Allow" in confirm.text, "signing in on the page asks to confirm the device")
fields = form_fields(confirm.text)
fields["decision"] = "allow"
done = person.post(origin + form_action(confirm.text), data=fields, timeout=10)
check("Device connected" in done.text, "the person allows the device")
time.sleep(started["interval"])
device_token = device.fetch_token(meta["token_endpoint"], grant_type=device_grant, device_code=started["device_code"])
check("access_token" in device_token and "refresh_token" in device_token, "the device's poll gets its tokens")
device_claims = jwt.decode(
    device_token["id_token"], jwks, claims_options={"iss": {"essential": True, "value": issuer}},
)
device_claims.validate()
check(device_claims["sub"] == user and device_claims["aud"] == "@team/tv", "the device's ID token names the user")
# RFC 7009 §2.1, §5: a public client revokes its refresh token with its client_id alone, and the
# grant goes with it.
revoked = device.revoke_token(
    meta["revocation_endpoint"], token=device_token["refresh_token"], token_type_hint="refresh_token"
)
check(revoked.status_code == 200, "the device (a public client) revokes its refresh token")
try:
    device.refresh_token(meta["token_endpoint"], refresh_token=device_token["refresh_token"])
    check(False, "the revoked refresh token is refused")
except OAuthError as error:
    check(error.error == "invalid_grant", "the revoked refresh token is refused with invalid_grant")
time.sleep(started["interval"])
try:
    device.fetch_token(meta["token_endpoint"], grant_type=device_grant, device_code=started["device_code"])
    check(False, "a device code is single-use")
except OAuthError as error:
    check(error.error == "invalid_grant", "the device code is single-use")

# RP-initiated logout with the ID token of the code flow.
signed_out = browser.get(
    meta["end_session_endpoint"],
    params={
        "id_token_hint": token["id_token"], "post_logout_redirect_uri": "http://127.0.0.1:9/signed-out",
        "state": "bye-1", "client_id": web_id,
    },
    allow_redirects=False, timeout=10,
)
check(signed_out.status_code == 302, "end_session redirects to the registered post-logout URI")
check(signed_out.headers["Location"].startswith("http://127.0.0.1:9/signed-out"), "to exactly that URI")
check(parse_qs(urlparse(signed_out.headers["Location"]).query).get("state") == ["bye-1"], "with the state")
again = browser.get(url, allow_redirects=False, timeout=10)
check(again.status_code == 200 and 'name="password"' in again.text, "after logout the person must sign in again")
print("authlib: all checks passed")
