"""Signs JWS compact serialisations with joserfc, an independent JOSE library, for tests of
what Tollgate verifies (signed introspection answers, RFC 9701).

Reads {"keys": {name: <private JWK>}, "cases": [{"name", "key", "header", "payload"}]} on
standard input; writes {name: <compact JWS>}.
"""
import json
import sys

from joserfc import jws
from joserfc.jwk import ECKey

spec = json.load(sys.stdin)
keys = {name: ECKey.import_key(jwk) for name, jwk in spec["keys"].items()}
out = {}
for case in spec["cases"]:
    header = case["header"]
    out[case["name"]] = jws.serialize_compact(
        header, json.dumps(case["payload"]).encode(), keys[case["key"]], algorithms=[header["alg"]]
    )
json.dump(out, sys.stdout)
