"""Keys, a DPoP-bound token and proofs for the DPoP harness (dpop.sh), made with joserfc (not by
Tollgate).

    mint_dpop.py DIR COUNT NAME=ORIGIN [NAME=ORIGIN ...]

writes DIR/issuer.jwk (the token issuer's public P-256 key, one JWK), DIR/jwks.json (the same as a
set), DIR/issuer-private.jwk and DIR/client-private.jwk (for the hostile cases), DIR/token.txt
(one ES256 access token bound to the client's key, cnf.jkt) and, per NAME, DIR/NAME-proofs.txt
(COUNT distinct ES256 proofs by the client's key for GET ORIGIN/orders/1, one per line) and
DIR/NAME.lua (a wrk script sending the token with the next proof on every request).
"""
import base64
import hashlib
import json
import sys
import time
import uuid

from joserfc import jws, jwt
from joserfc.jwk import ECKey

ISSUER = "https://idp.bench.test"
AUDIENCE = "bench-api"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main(directory, count, origins):
    issuer = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig"})
    client = ECKey.generate_key("P-256")
    with open(f"{directory}/issuer.jwk", "w") as out:
        json.dump(issuer.as_dict(private=False), out)
    with open(f"{directory}/jwks.json", "w") as out:
        json.dump({"keys": [issuer.as_dict(private=False)]}, out)
    with open(f"{directory}/issuer-private.jwk", "w") as out:
        json.dump(issuer.as_dict(private=True), out)
    with open(f"{directory}/client-private.jwk", "w") as out:
        json.dump(client.as_dict(private=True), out)
    now = int(time.time())
    claims = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-dpop", "exp": now + 7200, "iat": now,
        "scope": "orders.read", "cnf": {"jkt": client.thumbprint()},
    }
    token = jwt.encode({"alg": "ES256", "kid": issuer.kid, "typ": "at+jwt"}, claims, issuer)
    with open(f"{directory}/token.txt", "w") as out:
        out.write(token)
    ath = b64(hashlib.sha256(token.encode()).digest())
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": client.as_dict(private=False)}
    for name, origin in origins:
        with open(f"{directory}/{name}-proofs.txt", "w") as out:
            for _ in range(count):
                body = {"jti": str(uuid.uuid4()), "htm": "GET", "htu": origin + "/orders/1", "iat": now, "ath": ath}
                out.write(jws.serialize_compact(header, json.dumps(body).encode(), client, algorithms=["ES256"]) + "\n")
        with open(f"{directory}/{name}.lua", "w") as out:
            out.write(f'local token = io.open("{directory}/token.txt"):read("*a")\n')
            out.write("local proofs = {}\n")
            out.write(f'for line in io.lines("{directory}/{name}-proofs.txt") do proofs[#proofs + 1] = line end\n')
            out.write("local i = 0\nrequest = function()\n  i = i + 1\n")
            # Past the last proof, requests reuse proofs and are refused: counted as non-2xx.
            out.write("  local proof = proofs[(i - 1) % #proofs + 1]\n")
            out.write('  return wrk.format("GET", "/orders/1", {["Authorization"] = "DPoP " .. token, ["DPoP"] = proof})\n')
            out.write("end\n")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), [tuple(arg.split("=", 1)) for arg in sys.argv[3:]])
