"""Verify a Confidant webhook delivery (docs/INTEGRATING.md, "Webhooks"). Standard library only.

    from verify import verify_confidant_signature
    # with the body exactly as received (bytes, before any JSON parsing):
    if not verify_confidant_signature(raw_body, request.headers["Confidant-Signature"], SECRET):
        return 400
    event = json.loads(raw_body)   # then deduplicate by event["id"]

As a command (used by the tests): the body on stdin, the header as the argument, the secret in
CONFIDANT_WEBHOOK_SECRET; exit 0 when the signature is good, 1 when not.
    python3 verify.py "t=1700000000,v1=…" < body.json
"""
import hashlib
import hmac
import os
import re
import sys
import time


def verify_confidant_signature(raw_body: bytes, header: str, secret: str,
                               tolerance_seconds: int = 300, now: float | None = None) -> bool:
    """raw_body: the request body exactly as received; header: Confidant-Signature
    ("t=<unix seconds>,v1=<hex>"); secret: the webhook's secret as shown once ("whsec_…"), used
    as is; tolerance_seconds: how far t may be from now (replayed deliveries are refused)."""
    if not isinstance(header, str) or not isinstance(secret, str):
        return False
    t = None
    candidates = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and re.fullmatch(r"\d+", value):
            t = int(value)
        elif key == "v1" and re.fullmatch(r"[0-9a-f]{64}", value):
            candidates.append(value)
    if t is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_seconds:
        return False
    expected = hmac.new(secret.encode("utf-8"), f"{t}.".encode() + raw_body, hashlib.sha256).hexdigest()
    # Constant-time comparison.
    return any(hmac.compare_digest(expected, c) for c in candidates)


if __name__ == "__main__":
    header = sys.argv[1] if len(sys.argv) > 1 else ""
    ok = verify_confidant_signature(sys.stdin.buffer.read(), header,
                                    os.environ.get("CONFIDANT_WEBHOOK_SECRET", ""))
    print("signature ok" if ok else "signature INVALID")
    sys.exit(0 if ok else 1)
