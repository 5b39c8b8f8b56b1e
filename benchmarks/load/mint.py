"""Keys and tokens for the load harness, minted with joserfc (not by Tollgate).

    mint.py DIR COUNT

writes DIR/jwks.json, DIR/rsa_public.pem, DIR/ec_public.pem, DIR/repeated.txt (one RS256
token), DIR/rs256.lua and DIR/es256.lua (wrk scripts rotating COUNT distinct tokens each),
DIR/opaque.lua (one opaque token). The distinct tokens go to DIR/rs256.txt and DIR/es256.txt, one
per line, read by the Lua scripts at start.
"""
import json
import sys
import time

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

ISSUER = "https://idp.bench.test"
AUDIENCE = "bench-api"


def main(directory, count):
    rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"})
    ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig"})
    with open(f"{directory}/jwks.json", "w") as out:
        json.dump({"keys": [rsa.as_dict(private=False), ec.as_dict(private=False)]}, out)
    with open(f"{directory}/rsa_public.pem", "wb") as out:
        out.write(rsa.as_pem(private=False))
    with open(f"{directory}/ec_public.pem", "wb") as out:
        out.write(ec.as_pem(private=False))
    now = int(time.time())

    def token(key, alg, index):
        claims = {
            "iss": ISSUER, "aud": AUDIENCE, "sub": f"user-{index}", "exp": now + 7200, "iat": now,
            "scope": "orders.read openid", "jti": f"j-{index}",
        }
        return jwt.encode({"alg": alg, "kid": key.kid, "typ": "at+jwt"}, claims, key)

    with open(f"{directory}/repeated.txt", "w") as out:
        out.write(token(rsa, "RS256", 0))
    for name, key, alg in (("rs256", rsa, "RS256"), ("es256", ec, "ES256")):
        with open(f"{directory}/{name}.txt", "w") as out:
            for index in range(count):
                out.write(token(key, alg, index) + "\n")
        with open(f"{directory}/{name}.lua", "w") as out:
            out.write("local tokens = {}\n")
            out.write(f'for line in io.lines("{directory}/{name}.txt") do tokens[#tokens + 1] = line end\n')
            out.write("local i = 0\nrequest = function()\n  i = i % #tokens + 1\n")
            out.write('  return wrk.format("GET", "/orders/1", {["Authorization"] = "Bearer " .. tokens[i]})\nend\n')
    with open(f"{directory}/repeated.lua", "w") as out:
        out.write('local t = io.open("' + directory + '/repeated.txt"):read("*a")\n')
        out.write('request = function()\n  return wrk.format("GET", "/orders/1", {["Authorization"] = "Bearer " .. t})\nend\n')
    # DPoP (RFC 9449): one RS256 token bound to a client's P-256 key, and COUNT distinct ES256
    # proofs by that key for GET https://bench.test/orders/1 (the gate's configured public URL),
    # one "token<TAB>proof" per line.
    import base64
    import hashlib
    import uuid

    from joserfc import jws

    client = ECKey.generate_key("P-256")
    bound_claims = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-dpop", "exp": now + 7200, "iat": now,
        "scope": "orders.read openid", "cnf": {"jkt": client.thumbprint()},
    }
    bound = jwt.encode({"alg": "RS256", "kid": rsa.kid, "typ": "at+jwt"}, bound_claims, rsa)
    ath = base64.urlsafe_b64encode(hashlib.sha256(bound.encode()).digest()).rstrip(b"=").decode()
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": client.as_dict(private=False)}
    with open(f"{directory}/dpop.txt", "w") as out:
        for index in range(count):
            claims = {"jti": str(uuid.uuid4()), "htm": "GET", "htu": "https://bench.test/orders/1", "iat": now,
                      "ath": ath}
            proof = jws.serialize_compact(header, json.dumps(claims).encode(), client, algorithms=["ES256"])
            out.write(bound + "\t" + proof + "\n")
    with open(f"{directory}/opaque.lua", "w") as out:
        out.write('request = function()\n  return wrk.format("GET", "/orders/1", ')
        out.write('{["Authorization"] = "Bearer opaque-bench-token-0123456789abcdef"})\nend\n')


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
