"""Small helpers for the load scripts: HS256 signing and JSON calls (stdlib only)."""
import base64, hashlib, hmac, json, sys, time, urllib.request

def b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def hs256(secret: str, claims: dict) -> str:
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"

def call(method: str, url: str, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")

if __name__ == "__main__":
    # setup BASE OPERATOR SECRET CONTACTS OUTDIR: a site, a messenger, tokens for wrk scripts.
    base, op, secret, n, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    site = call("POST", f"{base}/api/v1/sites", {"name": "bench"}, op)["siteId"]
    m = call("POST", f"{base}/api/v1/sites/{site}/messengers",
             {"name": "bench", "security": {"validation": {"method": "sharedToken", "sharedToken": secret}}}, op)["messengerId"]
    jwt = hs256(secret, {"sub": "returning@bench.test", "exp": int(time.time()) + 3600, "comm100.name": "Returning"})
    auth_body = json.dumps({"siteId": site, "messengerId": m, "contactJwt": jwt})
    call("POST", f"{base}/securemessage/authorize", json.loads(auth_body))  # the contact now exists
    tokens = []
    for i in range(n):
        j = hs256(secret, {"sub": f"c{i}@bench.test", "exp": int(time.time()) + 3600})
        tokens.append(call("POST", f"{base}/securemessage/authorize", {"siteId": site, "messengerId": m, "contactJwt": j})["accessToken"])
    with open(f"{out}/authorize.lua", "w") as f:
        f.write('wrk.method="POST"\nwrk.headers["Content-Type"]="application/json"\nwrk.body=[[%s]]\n' % auth_body)
    send = """
counter = 0
tokens = {%s}
request = function()
  counter = counter + 1
  local t = tokens[math.random(1, #tokens)]
  local body = '{"clientMessageId":"' .. math.random(1, 1000000000) .. '-' .. counter .. '","body":"hello from the benchmark"}'
  return wrk.format("POST", "/api/v1/messenger/messages", {["Authorization"]="Bearer " .. t, ["Content-Type"]="application/json"}, body)
end
"""
    with open(f"{out}/send_one.lua", "w") as f:
        f.write(send % ('"%s"' % tokens[0]))
    with open(f"{out}/send_many.lua", "w") as f:
        f.write(send % ",".join('"%s"' % t for t in tokens))
    print(site, m)
