#!/usr/bin/env bash
# The "No framework (curl)" walk-through of an identity provider's public docs, step by step,
# against a running Tollgate issuer: discovery, PKCE, the authorization request (the browser's
# part done with curl and a cookie jar through the sign-in and consent forms), the code exchange,
# the ID token verified with openssl alone, userinfo, refresh, client credentials with a Basic
# header whose id holds '@' and '/', and RP-initiated logout.
#
# Usage: curl_walkthrough.sh ISSUER WEB_ID WEB_SECRET M2M_ID M2M_SECRET USER PASSWORD REDIRECT_URI POST_LOGOUT_URI
set -euo pipefail
ISSUER=$1 CLIENT_ID=$2 CLIENT_SECRET_WEB=$3 M2M_ID=$4 M2M_SECRET=$5 USERNAME=$6 PASSWORD=$7
REDIRECT_URI=$8 POST_LOGOUT_URI=$9
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
step() { echo "ok: $*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }
uri() { jq -rn --arg v "$1" '$v|@uri'; }

# Discovery
curl -sf "$ISSUER/.well-known/openid-configuration" | jq . >discovery.json
AUTH_ENDPOINT=$(jq -r .authorization_endpoint discovery.json)
TOKEN_ENDPOINT=$(jq -r .token_endpoint discovery.json)
USERINFO_ENDPOINT=$(jq -r .userinfo_endpoint discovery.json)
JWKS_URI=$(jq -r .jwks_uri discovery.json)
END_SESSION_ENDPOINT=$(jq -r .end_session_endpoint discovery.json)
[[ "$(jq -r .issuer discovery.json)" == "$ISSUER" ]] || fail "discovery names another issuer"
[[ "$(jq -c .response_types_supported discovery.json)" == '["code"]' ]] || fail "only the code flow is offered"
step "discovery"

# Generate PKCE values
CODE_VERIFIER=$(openssl rand -base64 32 | tr -d '=\n' | tr '/+' '_-')
CODE_CHALLENGE=$(printf '%s' "$CODE_VERIFIER" | openssl dgst -sha256 -binary | openssl base64 -A | tr -d '=' | tr '/+' '_-')
STATE=$(openssl rand -hex 16)
NONCE=$(openssl rand -hex 16)
step "PKCE values"

# Build the authorization URL
URL="$AUTH_ENDPOINT?client_id=$(uri "$CLIENT_ID")"
URL+="&response_type=code"
URL+="&redirect_uri=$(uri "$REDIRECT_URI")"
URL+="&scope=openid+profile+email+offline_access"
URL+="&state=$STATE"
URL+="&nonce=$NONCE"
URL+="&code_challenge=$CODE_CHALLENGE"
URL+="&code_challenge_method=S256"

# The browser's part: the sign-in form, then the consent form, with a cookie jar.
hidden() { sed -n "s/.*name=\"$1\" value=\"\([^\"]*\)\".*/\1/p" "$2" | head -1; }
action() { sed -n 's/.*<form method="post" action="\([^"]*\)".*/\1/p' "$1" | head -1; }
ORIGIN=$(printf '%s' "$ISSUER" | sed -E 's#^(https?://[^/]+).*#\1#')
curl -sf -c jar -b jar "$URL" -o login.html
curl -s -c jar -b jar -o consent.html -D consent.headers "$ORIGIN$(action login.html)" \
    --data-urlencode "request=$(hidden request login.html)" --data-urlencode "csrf=$(hidden csrf login.html)" \
    --data-urlencode "username=$USERNAME" --data-urlencode "password=$PASSWORD"
curl -s -c jar -b jar -o /dev/null -D done.headers "$ORIGIN$(action consent.html)" \
    --data-urlencode "request=$(hidden request consent.html)" --data-urlencode "csrf=$(hidden csrf consent.html)" \
    --data-urlencode "decision=allow"
URL=$(sed -n 's/^[Ll]ocation: \(.*\)\r$/\1/p' done.headers)
[[ -n "$URL" ]] || fail "no redirect after consent"
step "sign-in and consent"

# Receive the redirect
QUERY="${URL#*\?}"
get_param() {
    printf '%s' "$QUERY" | tr '&' '\n' | awk -F= -v k="$1" '$1==k{print substr($0, length(k)+2); exit}'
}
urldecode() {
    local s="${1//+/ }"
    printf '%b' "${s//%/\\x}"
}
CODE=$(urldecode "$(get_param code)")
RETURNED_STATE=$(urldecode "$(get_param state)")
ERR=$(urldecode "$(get_param error)")
ERR_DESC=$(urldecode "$(get_param error_description)")
[[ -z "$ERR" ]] || fail "auth failed: $ERR — $ERR_DESC"
[[ "$RETURNED_STATE" == "$STATE" ]] || fail "state mismatch"
[[ "$(urldecode "$(get_param iss)")" == "$ISSUER" ]] || fail "no RFC 9207 iss"
step "the redirect carries the code, the state and iss"

# Exchange the code for tokens
RESPONSE=$(curl -s -X POST "$TOKEN_ENDPOINT" \
    -H "Content-Type: application/x-www-form-urlencoded" \
    --data-urlencode "grant_type=authorization_code" \
    --data-urlencode "code=$CODE" \
    --data-urlencode "redirect_uri=$REDIRECT_URI" \
    --data-urlencode "client_id=$CLIENT_ID" \
    --data-urlencode "client_secret=$CLIENT_SECRET_WEB" \
    --data-urlencode "code_verifier=$CODE_VERIFIER")
ACCESS_TOKEN=$(printf '%s' "$RESPONSE" | jq -r .access_token)
ID_TOKEN=$(printf '%s' "$RESPONSE" | jq -r .id_token)
REFRESH_TOKEN=$(printf '%s' "$RESPONSE" | jq -r .refresh_token)
[[ "$ACCESS_TOKEN" != null && "$ID_TOKEN" != null && "$REFRESH_TOKEN" != null ]] || fail "token response: $RESPONSE"
step "code exchange"

# Verifying a JWT in shell: RS256 with openssl alone.
b64url_decode() {
    local s="$1" pad
    s="${s//-/+}"
    s="${s//_/\/}"
    pad=$(((4 - ${#s} % 4) % 4))
    printf '%s%*s' "$s" "$pad" '' | tr ' ' '=' | openssl base64 -d -A
}
verify_jwt_rs256() {
    local TOKEN="$1" JWKS="$2"
    local HEADER_B64="${TOKEN%%.*}" REST="${TOKEN#*.}"
    local PAYLOAD_B64="${REST%%.*}" SIG_B64="${REST#*.}"
    local HEADER ALG KID JWK TMP
    HEADER=$(b64url_decode "$HEADER_B64")
    ALG=$(printf '%s' "$HEADER" | jq -r .alg)
    KID=$(printf '%s' "$HEADER" | jq -r .kid)
    [[ "$ALG" == "RS256" ]] || { echo "alg=$ALG, expected RS256" >&2; return 1; }
    JWK=$(printf '%s' "$JWKS" | jq -c --arg kid "$KID" '.keys[] | select(.kid==$kid)')
    [[ -n "$JWK" ]] || { echo "no JWK for kid=$KID" >&2; return 1; }
    TMP=$(mktemp -d)
    b64url_decode "$(printf '%s' "$JWK" | jq -r .n)" >"$TMP/n.bin"
    b64url_decode "$(printf '%s' "$JWK" | jq -r .e)" >"$TMP/e.bin"
    # RSAPublicKey ::= SEQUENCE { n INTEGER, e INTEGER }, built by openssl asn1parse -genconf.
    cat >"$TMP/asn1.cnf" <<CNF
asn1=SEQUENCE:pubkey
[pubkey]
n=INTEGER:0x$(xxd -p -c 9999 "$TMP/n.bin")
e=INTEGER:0x$(xxd -p -c 9999 "$TMP/e.bin")
CNF
    openssl asn1parse -genconf "$TMP/asn1.cnf" -out "$TMP/pub.der" >/dev/null
    openssl rsa -RSAPublicKey_in -inform DER -in "$TMP/pub.der" -pubout -out "$TMP/pub.pem" 2>/dev/null
    b64url_decode "$SIG_B64" >"$TMP/sig.bin"
    if ! printf '%s' "$HEADER_B64.$PAYLOAD_B64" |
        openssl dgst -sha256 -verify "$TMP/pub.pem" -signature "$TMP/sig.bin" >/dev/null 2>&1; then
        echo "signature INVALID" >&2
        rm -rf "$TMP"
        return 1
    fi
    b64url_decode "$PAYLOAD_B64"
    rm -rf "$TMP"
}
JWKS=$(curl -sf "$JWKS_URI")
PAYLOAD=$(verify_jwt_rs256 "$ID_TOKEN" "$JWKS") || fail "the ID token does not verify"
NOW=$(date +%s)
[[ "$NOW" -lt "$(printf '%s' "$PAYLOAD" | jq -r .exp)" ]] || fail "token expired"
[[ "$(printf '%s' "$PAYLOAD" | jq -r .iss)" == "$ISSUER" ]] || fail "wrong issuer"
[[ "$(printf '%s' "$PAYLOAD" | jq -r .aud)" == "$CLIENT_ID" ]] || fail "wrong audience"
[[ "$(printf '%s' "$PAYLOAD" | jq -r .nonce)" == "$NONCE" ]] || fail "nonce mismatch"
step "the ID token verifies with openssl (signature, exp, iss, aud, nonce)"
# A tampered token must not verify.
SIGNATURE="${ID_TOKEN##*.}"
TAMPERED="${ID_TOKEN%.*}.AAAA${SIGNATURE:4}"
if verify_jwt_rs256 "$TAMPERED" "$JWKS" >/dev/null 2>&1; then fail "a tampered signature verified"; fi
step "a tampered signature does not"

# Call the user-info endpoint
INFO=$(curl -sf "$USERINFO_ENDPOINT" -H "Authorization: Bearer $ACCESS_TOKEN")
[[ "$(printf '%s' "$INFO" | jq -r .sub)" == "$USERNAME" ]] || fail "userinfo: $INFO"
step "userinfo"

# Refresh
REFRESHED=$(curl -s -X POST "$TOKEN_ENDPOINT" \
    -H "Content-Type: application/x-www-form-urlencoded" \
    --data-urlencode "grant_type=refresh_token" \
    --data-urlencode "refresh_token=$REFRESH_TOKEN" \
    --data-urlencode "client_id=$CLIENT_ID" \
    --data-urlencode "client_secret=$CLIENT_SECRET_WEB")
NEW_REFRESH=$(printf '%s' "$REFRESHED" | jq -r .refresh_token)
[[ "$NEW_REFRESH" != null && "$NEW_REFRESH" != "$REFRESH_TOKEN" ]] || fail "refresh: $REFRESHED"
step "refresh rotates the refresh token"

# Client credentials (M2M), the Basic header form-encoded first (RFC 6749 §2.3.1)
ID_ENC=$(jq -rn --arg v "$M2M_ID" '$v|@uri')
SECRET_ENC=$(jq -rn --arg v "$M2M_SECRET" '$v|@uri')
BASIC=$(printf '%s:%s' "$ID_ENC" "$SECRET_ENC" | openssl base64 -A)
M2M=$(curl -s -X POST "$TOKEN_ENDPOINT" \
    -H "Authorization: Basic $BASIC" \
    -H "Content-Type: application/x-www-form-urlencoded" \
    --data-urlencode "grant_type=client_credentials" \
    --data-urlencode "scope=@team/orders.read")
M2M_TOKEN=$(printf '%s' "$M2M" | jq -r .access_token)
[[ "$M2M_TOKEN" != null && "$(printf '%s' "$M2M" | jq -r .refresh_token)" == null ]] || fail "client credentials: $M2M"
M2M_PAYLOAD=$(verify_jwt_rs256 "$M2M_TOKEN" "$JWKS") || fail "the M2M access token does not verify"
[[ "$(printf '%s' "$M2M_PAYLOAD" | jq -r .scope)" == "@team/orders.read" ]] || fail "M2M scope"
[[ "$(printf '%s' "$M2M_PAYLOAD" | jq -r .client_id)" == "$M2M_ID" ]] || fail "M2M client_id"
step "client credentials with an id containing @ and /, a verified JWT with the API scope"

# Sign out
LOGOUT_URL="$END_SESSION_ENDPOINT?client_id=$(uri "$CLIENT_ID")"
LOGOUT_URL+="&id_token_hint=$ID_TOKEN"
LOGOUT_URL+="&post_logout_redirect_uri=$(uri "$POST_LOGOUT_URI")"
LOGOUT_URL+="&state=$STATE"
curl -s -c jar -b jar -o /dev/null -D logout.headers "$LOGOUT_URL"
LOCATION=$(sed -n 's/^[Ll]ocation: \(.*\)\r$/\1/p' logout.headers)
[[ "$LOCATION" == "$POST_LOGOUT_URI?state=$STATE" ]] || fail "end_session went to '$LOCATION'"
step "end_session returns to the registered post-logout URI with the state"
echo "curl walk-through: all steps passed"
