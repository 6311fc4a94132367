"""A tiny business portal that shows the Confidant messenger to its logged-in customers.

It plays the part of YOUR web application: a customer "logs in" (a picker, no real auth), and the
page shows the messenger in one of the two ways Confidant supports:

  /messages/jwt        the backend signs a Contact JWT and puts it in the installation code
                       (data-contact-jwt); the loader exchanges it for an access token.
  /messages/authorize  the backend exchanges the Contact JWT itself (POST /securemessage/authorize)
                       and only the access token reaches the page; the page's getToken asks this
                       backend (POST /api/confidant-token) for a fresh one before it expires.

Start: `pip install -r requirements.txt && python3 app.py`. Settings: see README.md.
"""

import base64
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import jwt  # PyJWT
from flask import Flask, abort, jsonify, redirect, render_template, request

# ---------------------------------------------------------------------------------------------
# Settings (environment variables; the defaults work against `cargo run --release -- demo`)

CONFIDANT_URL = os.environ.get("CONFIDANT_URL", "http://127.0.0.1:8080").rstrip("/")
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "5001"))
IDENTITY_CLAIM = os.environ.get("CONFIDANT_IDENTITY_CLAIM", "sub")
CONTACT_JWT_TTL_SECONDS = 600  # keep Contact JWTs short-lived: minutes


def fail(message):
    print(f"python-portal: {message}", file=sys.stderr)
    sys.exit(2)


def signing_key():
    """How this backend signs Contact JWTs: the messenger's shared token (HS256) or a private key."""
    key_file = os.environ.get("CONFIDANT_PRIVATE_KEY_FILE")
    if key_file:
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            with open(key_file, "rb") as f:
                key = load_pem_private_key(f.read(), password=None)
        except (OSError, ValueError) as e:
            fail(f"CONFIDANT_PRIVATE_KEY_FILE: cannot read a PEM private key from {key_file} ({e})")
        # The key type fixes the algorithm (CONTRACT §5): RSA → RS256, P-256 → ES256, P-384 → ES384, Ed25519 → EdDSA.
        if isinstance(key, rsa.RSAPrivateKey):
            alg = "RS256"
        elif isinstance(key, ed25519.Ed25519PrivateKey):
            alg = "EdDSA"
        elif isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in ("secp256r1", "secp384r1"):
            alg = "ES256" if key.curve.name == "secp256r1" else "ES384"
        else:
            fail("CONFIDANT_PRIVATE_KEY_FILE: Confidant accepts RSA, EC P-256/P-384 and Ed25519 keys")
        return key, alg, f"private key {key_file} ({alg})"
    secret = os.environ.get("CONFIDANT_SHARED_TOKEN")
    if not secret:
        fail(
            "set CONFIDANT_SHARED_TOKEN to the messenger's shared token (`confidant demo` prints it on the line "
            '"messenger shared token"), or CONFIDANT_PRIVATE_KEY_FILE to a PEM private key whose public key is on the Security tab'
        )
    encoding = os.environ.get("CONFIDANT_SHARED_TOKEN_ENCODING", "text")
    if encoding == "text":
        key = secret.encode("utf-8")
    elif encoding == "base64url":
        key = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    else:
        fail("CONFIDANT_SHARED_TOKEN_ENCODING must be text or base64url")
    return key, "HS256", f"shared token (HS256, {encoding})"


SIGNING_KEY, SIGNING_ALG, SIGNING_DESCRIPTION = signing_key()


class ConfidantError(Exception):
    def __init__(self, message, code="unavailable"):
        super().__init__(message)
        self.code = code


def http_json(method, url, body=None):
    """A JSON call from this backend (no Origin header: Confidant does not check a backend's origin)."""
    data = json.dumps(body).encode("utf-8") if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Accept": "application/json"})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"null")
        except ValueError:
            return e.code, None
    except (urllib.error.URLError, OSError) as e:
        raise ConfidantError(f"Confidant at {CONFIDANT_URL} cannot be reached ({e}); is it running?") from e


_messenger = None


def messenger():
    """The site and messenger to show: CONFIDANT_MESSENGER_ID, or what a `confidant demo` server says."""
    global _messenger
    if _messenger:
        return _messenger
    if os.environ.get("CONFIDANT_MESSENGER_ID"):
        _messenger = {
            "siteId": int(os.environ.get("CONFIDANT_SITE_ID", "10000")),
            "messengerId": os.environ["CONFIDANT_MESSENGER_ID"],
        }
        return _messenger
    status, cfg = http_json("GET", f"{CONFIDANT_URL}/demo/api/config")
    if status != 200 or not isinstance(cfg, dict):
        raise ConfidantError(
            f"CONFIDANT_MESSENGER_ID is not set and {CONFIDANT_URL} is not a `confidant demo` server "
            f"(GET /demo/api/config answered {status})"
        )
    _messenger = {
        "siteId": int(os.environ.get("CONFIDANT_SITE_ID", cfg["siteId"])),
        "messengerId": cfg["messengerId"],
    }
    return _messenger


# ---------------------------------------------------------------------------------------------
# The portal's customers and sessions (made up; a real portal has its own login)

CUSTOMERS = {
    "mark": {"id": "mark", "name": "Mark Tylor", "email": "mark@example-portal.test", "phone": "+1 555 0101", "city": "Boston"},
    "ana": {"id": "ana", "name": "Ana Souza", "email": "ana@example-portal.test", "phone": "+1 555 0102", "city": "Austin"},
}
SESSIONS = {}  # session id → customer id (in memory: a restart logs everyone out)
SESSION_COOKIE = "portal_session"


def current_customer():
    customer_id = SESSIONS.get(request.cookies.get(SESSION_COOKIE, ""))
    return CUSTOMERS.get(customer_id) if customer_id else None


# ---------------------------------------------------------------------------------------------
# What a business backend does for Confidant


def contact_jwt(customer):
    """A Contact JWT for the customer: the identity claim, a short exp, and profile claims."""
    now = int(time.time())
    claims = {
        IDENTITY_CLAIM: customer["email"],
        "iat": now,
        "exp": now + CONTACT_JWT_TTL_SECONDS,
        "comm100.name": customer["name"],
        "comm100.email": customer["email"],
        "comm100.phone": customer["phone"],
        "comm100.city": customer["city"],
    }
    return jwt.encode(claims, SIGNING_KEY, algorithm=SIGNING_ALG, headers={"typ": "JWT"})


def authorize(customer):
    """The backend authorize exchange: Contact JWT → Confidant access token (the page never sees the JWT)."""
    m = messenger()
    status, body = http_json(
        "POST",
        f"{CONFIDANT_URL}/securemessage/authorize",
        {"siteId": m["siteId"], "messengerId": m["messengerId"], "contactJwt": contact_jwt(customer)},
    )
    if status != 200:
        err = (body or {}).get("error") or {} if isinstance(body, dict) else {}
        raise ConfidantError(
            f"authorize answered {status} {err.get('code', '')}: {err.get('message', '')}", err.get("code", "unavailable")
        )
    return {"accessToken": body["accessToken"], "expiresIn": body["expiresIn"]}


# ---------------------------------------------------------------------------------------------
# Pages and routes

app = Flask(__name__)


@app.context_processor
def template_globals():
    return {"customer": current_customer(), "confidant_url": CONFIDANT_URL}


@app.after_request
def headers(response):
    # The portal's own Content-Security-Policy: its scripts plus what the Confidant loader needs.
    parts = urlsplit(CONFIDANT_URL)
    confidant = f"{parts.scheme}://{parts.netloc}"
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' {confidant}; connect-src 'self' {confidant}; "
        f"frame-src {confidant}; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'"
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def signed_in():
    customer = current_customer()
    if not customer:
        if request.method == "GET":
            abort(redirect("/"))
        abort(401)
    return customer


@app.get("/")
def index():
    if current_customer():
        return redirect("/account")
    return render_template("login.html", customers=CUSTOMERS.values())


@app.post("/login")
def login():
    customer = CUSTOMERS.get(request.form.get("customer", ""))
    if not customer:
        return render_template("login.html", customers=CUSTOMERS.values()), 400
    sid = secrets.token_urlsafe(24)
    SESSIONS[sid] = customer["id"]
    response = redirect("/account", code=303)
    # SameSite=Lax: another site's scripts cannot POST to /api/confidant-token with this cookie.
    response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="Lax", path="/")
    return response


@app.post("/logout")
def logout():
    SESSIONS.pop(request.cookies.get(SESSION_COOKIE, ""), None)
    response = redirect("/", code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@app.get("/account")
def account():
    signed_in()
    return render_template("account.html")


@app.get("/messages/jwt")
def messages_jwt():
    customer = signed_in()
    try:
        # (a) The installation code (CONTRACT §8) with data-contact-jwt filled in; the loader does the rest.
        return render_template("messages_jwt.html", messenger=messenger(), contact_jwt=contact_jwt(customer))
    except ConfidantError as e:
        return render_template("error.html", error=e), 502


@app.get("/messages/authorize")
def messages_authorize():
    customer = signed_in()
    try:
        # (b) No installation-code placeholders: portal.js calls Confidant.init({accessToken, getToken}).
        return render_template("messages_authorize.html", messenger=messenger(), token=authorize(customer))
    except ConfidantError as e:
        print(f"python-portal: {e}", file=sys.stderr)
        return render_template("error.html", error=e), 502


@app.post("/api/confidant-token")
def confidant_token():
    """The page's getToken(): authorize again for the signed-in customer, answer the access token only."""
    customer = current_customer()
    if not customer:
        return jsonify(error="not signed in"), 401
    try:
        return jsonify(authorize(customer))
    except ConfidantError as e:
        print(f"python-portal: {e}", file=sys.stderr)
        return jsonify(error=e.code), 502


if __name__ == "__main__":
    origin = f"http://{HOST}:{PORT}"
    print(f"Example portal (Python) on {origin}/")
    print(f"  Confidant: {CONFIDANT_URL}; Contact JWTs signed with the {SIGNING_DESCRIPTION}")
    print(f"  The messenger's allowed URLs must include {origin} (admin pages → Security tab).", flush=True)
    # Flask's development server, enough for an example (a real portal runs behind gunicorn or similar).
    app.run(host=HOST, port=PORT, debug=False, threaded=True)
