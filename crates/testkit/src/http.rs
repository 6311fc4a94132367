//! An HTTP client for one server (in process or a real binary), and the typed actors a test
//! talks through: a [`Site`], its [`Messenger`], a [`Contact`] and an [`Agent`].

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};

use crate::app::OPERATOR;
use crate::jwt::{hs256, now};
use crate::ws::{AGENT_WS, CONTACT_WS, Socket};

/// The shared token of the messengers the kit creates.
pub const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";
/// The password of the agents the kit creates.
pub const PASSWORD: &str = "correct horse battery";

/// A server's address and a client for it. Cheap to clone; every actor holds one.
#[derive(Clone)]
pub struct Http {
    pub base: String,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        Http {
            base: format!("http://{addr}"),
            addr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut r = self.client.get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("GET")
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut r = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("POST")
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut r = self.client.put(self.url(path)).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("PUT")
    }

    /// Create a site as the operator.
    pub async fn site(&self, name: &str) -> Site {
        let r = self
            .post("/api/v1/sites", Some(OPERATOR), &json!({"name": name}))
            .await;
        assert_eq!(r.status(), 201);
        let id = r.json::<Value>().await.expect("site")["siteId"]
            .as_i64()
            .expect("siteId");
        Site {
            http: self.clone(),
            id,
        }
    }

    /// The site of an id (created elsewhere).
    pub fn site_of(&self, id: i64) -> Site {
        Site {
            http: self.clone(),
            id,
        }
    }

    pub async fn create_site(&self, name: &str) -> i64 {
        self.site(name).await.id
    }

    /// A messenger of `site` with `security` merged over a shared-token default that allows
    /// the server's own origin; returns the created messenger's JSON.
    pub async fn create_messenger(&self, site: i64, security: Value) -> Value {
        self.site_of(site).messenger(security).await.body
    }

    /// Site "Acme" with one shared-token messenger: (siteId, messengerId).
    pub async fn site_with_messenger(&self) -> (i64, String) {
        let m = self.site("Acme").await.messenger(json!({})).await;
        (m.site, m.id)
    }

    /// POST /securemessage/authorize.
    pub async fn authorize(&self, site: i64, messenger: &str, jwt: &str) -> reqwest::Response {
        self.post(
            "/securemessage/authorize",
            None,
            &json!({"siteId": site, "messengerId": messenger, "contactJwt": jwt}),
        )
        .await
    }

    /// Authorize `identity` with an HS256 token of [`SECRET`]; returns the access token.
    pub async fn access_token(&self, site: i64, messenger: &str, identity: &str) -> String {
        self.messenger_of(site, messenger)
            .contact(identity)
            .await
            .token
    }

    pub async fn create_agent(&self, site: i64, email: &str, role: &str) -> Value {
        self.site_of(site).create_agent(email, role).await
    }

    /// Create an agent and log in; returns its session token.
    pub async fn agent_token(&self, site: i64, email: &str, role: &str) -> String {
        self.site_of(site).agent(email, role).await.token
    }

    /// The messenger of ids created elsewhere.
    pub fn messenger_of(&self, site: i64, id: &str) -> Messenger {
        Messenger {
            http: self.clone(),
            site,
            id: id.to_owned(),
            body: Value::Null,
        }
    }

    /// Log in as an agent; the answer as it comes.
    pub async fn login(&self, site: i64, email: &str, password: &str) -> reqwest::Response {
        self.post(
            "/api/v1/auth/login",
            None,
            &json!({"siteId": site, "email": email, "password": password}),
        )
        .await
    }

    /// Connect a socket to `path` and authenticate with `token`: (socket, ready frame).
    pub async fn socket(&self, path: &str, token: &str) -> (Socket, Value) {
        Socket::open(&self.ws_url(path), token).await
    }
}

/// A site, created by the operator.
#[derive(Clone)]
pub struct Site {
    pub http: Http,
    pub id: i64,
}

impl Site {
    /// A messenger with `security` merged over a shared-token ([`SECRET`]) default that allows
    /// the server's own origin.
    pub async fn messenger(&self, security: Value) -> Messenger {
        let mut sec = json!({"validation": {"method": "sharedToken", "sharedToken": SECRET}, "allowedUrls": [self.http.base]});
        if let (Some(base), Some(over)) = (sec.as_object_mut(), security.as_object()) {
            for (k, v) in over {
                base.insert(k.clone(), v.clone());
            }
        }
        let r = self
            .http
            .post(
                &format!("/api/v1/sites/{}/messengers", self.id),
                Some(OPERATOR),
                &json!({"name": "Support", "security": sec}),
            )
            .await;
        let status = r.status();
        let body: Value = r.json().await.expect("messenger");
        assert_eq!(status, 201, "{body}");
        Messenger {
            http: self.http.clone(),
            site: self.id,
            id: body["messengerId"]
                .as_str()
                .expect("messengerId")
                .to_owned(),
            body,
        }
    }

    /// Create an agent with [`PASSWORD`]; returns the created agent's JSON.
    pub async fn create_agent(&self, email: &str, role: &str) -> Value {
        let r = self
            .http
            .post(
                &format!("/api/v1/sites/{}/agents", self.id),
                Some(OPERATOR),
                &json!({"email": email, "password": PASSWORD, "name": email, "role": role}),
            )
            .await;
        assert_eq!(r.status(), 201);
        r.json().await.expect("agent")
    }

    /// Create an agent and log in.
    pub async fn agent(&self, email: &str, role: &str) -> Agent {
        self.create_agent(email, role).await;
        self.login(email).await
    }

    /// Log an existing agent in again (another session).
    pub async fn login(&self, email: &str) -> Agent {
        let r = self.http.login(self.id, email, PASSWORD).await;
        assert_eq!(r.status(), 200);
        let token = r.json::<Value>().await.expect("login")["token"]
            .as_str()
            .expect("token")
            .to_owned();
        Agent {
            http: self.http.clone(),
            site: self.id,
            email: email.to_owned(),
            token,
        }
    }
}

/// A messenger of a site.
#[derive(Clone)]
pub struct Messenger {
    pub http: Http,
    pub site: i64,
    pub id: String,
    /// The messenger as created (`Null` when made from ids).
    pub body: Value,
}

impl Messenger {
    /// POST /securemessage/authorize with `jwt`, the answer as it comes.
    pub async fn authorize(&self, jwt: &str) -> reqwest::Response {
        self.http.authorize(self.site, &self.id, jwt).await
    }

    /// `identity` authorized with an HS256 token of [`SECRET`] (`sub` and `exp` only).
    pub async fn contact(&self, identity: &str) -> Contact {
        let jwt = hs256(SECRET, &json!({"sub": identity, "exp": now() + 600}));
        let r = self.authorize(&jwt).await;
        assert_eq!(r.status(), 200);
        self.contact_from(identity, r).await
    }

    /// `identity` authorized with its name in `comm100.name`, as a preview or not.
    pub async fn named_contact(&self, identity: &str, preview: bool) -> Contact {
        let jwt = hs256(
            SECRET,
            &json!({"sub": identity, "exp": now() + 600, "comm100.name": identity}),
        );
        let r = self
            .http
            .post(
                "/securemessage/authorize",
                None,
                &json!({"siteId": self.site, "messengerId": self.id, "contactJwt": jwt, "isPreview": preview}),
            )
            .await;
        assert_eq!(r.status(), 200);
        self.contact_from(identity, r).await
    }

    async fn contact_from(&self, identity: &str, r: reqwest::Response) -> Contact {
        let v: Value = r.json().await.expect("authorize");
        Contact {
            http: self.http.clone(),
            site: self.site,
            messenger: self.id.clone(),
            identity: identity.to_owned(),
            token: v["accessToken"].as_str().expect("accessToken").to_owned(),
            id: v["contact"]["contactId"]
                .as_str()
                .expect("contactId")
                .to_owned(),
        }
    }
}

/// A customer authorized through a messenger, with its access token.
#[derive(Clone)]
pub struct Contact {
    pub http: Http,
    pub site: i64,
    pub messenger: String,
    pub identity: String,
    pub token: String,
    /// The contactId.
    pub id: String,
}

impl Contact {
    /// Send a message; the status and the JSON body (`Null` when there is none).
    pub async fn try_send(&self, client_message_id: &str, body: &str) -> (u16, Value) {
        json_of(
            self.http
                .post(
                    "/api/v1/messenger/messages",
                    Some(&self.token),
                    &json!({"clientMessageId": client_message_id, "body": body}),
                )
                .await,
        )
        .await
    }

    /// Send a message that must be stored as new (201); the stored message.
    pub async fn send(&self, client_message_id: &str, body: &str) -> Value {
        let (status, v) = self.try_send(client_message_id, body).await;
        assert_eq!(status, 201, "{v}");
        v
    }

    /// GET a contact path with this contact's token: (status, JSON).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        json_of(self.fetch(path).await).await
    }

    /// GET a path with this contact's token.
    pub async fn fetch(&self, path: &str) -> reqwest::Response {
        self.http.get(path, Some(&self.token)).await
    }

    /// POST to a path with this contact's token.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http.post(path, Some(&self.token), body).await
    }

    /// The contact's conversations (GET /api/v1/messenger/conversations), asserting 200.
    pub async fn conversations(&self) -> Value {
        let (s, v) = self.get("/api/v1/messenger/conversations").await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// The messages of a conversation, `query` being e.g. `"?after=10&limit=5"`.
    pub async fn messages(&self, conversation: &str, query: &str) -> Vec<Value> {
        let (s, v) = self
            .get(&format!(
                "/api/v1/messenger/conversations/{conversation}/messages{query}"
            ))
            .await;
        assert_eq!(s, 200, "{v}");
        v["messages"].as_array().expect("messages").clone()
    }

    /// The contact's socket, authenticated: (socket, ready frame).
    pub async fn socket(&self) -> (Socket, Value) {
        self.http.socket(CONTACT_WS, &self.token).await
    }
}

/// An agent of a site, logged in.
#[derive(Clone)]
pub struct Agent {
    pub http: Http,
    pub site: i64,
    pub email: String,
    /// The session token.
    pub token: String,
}

impl Agent {
    fn conversation_path(&self, conversation: &str, rest: &str) -> String {
        self.site_path(&format!("/conversations/{conversation}{rest}"))
    }

    /// Send into a conversation; the status and the JSON body.
    pub async fn try_send(
        &self,
        conversation: &str,
        client_message_id: &str,
        body: &str,
    ) -> (u16, Value) {
        json_of(
            self.http
                .post(
                    &self.conversation_path(conversation, "/messages"),
                    Some(&self.token),
                    &json!({"clientMessageId": client_message_id, "body": body}),
                )
                .await,
        )
        .await
    }

    /// Send a message that must be stored as new (201); the stored message.
    pub async fn send(&self, conversation: &str, client_message_id: &str, body: &str) -> Value {
        let (status, v) = self.try_send(conversation, client_message_id, body).await;
        assert_eq!(status, 201, "{v}");
        v
    }

    /// Close a conversation: (status, JSON).
    pub async fn close(&self, conversation: &str) -> (u16, Value) {
        json_of(
            self.http
                .post(
                    &self.conversation_path(conversation, "/close"),
                    Some(&self.token),
                    &json!({}),
                )
                .await,
        )
        .await
    }

    fn site_path(&self, rest: &str) -> String {
        format!("/api/v1/sites/{}{rest}", self.site)
    }

    /// GET a site path (after `/api/v1/sites/{site}`) with the agent's session: (status, JSON).
    pub async fn get(&self, rest: &str) -> (u16, Value) {
        json_of(self.fetch(rest).await).await
    }

    /// GET a site path (after `/api/v1/sites/{site}`) with the agent's session.
    pub async fn fetch(&self, rest: &str) -> reqwest::Response {
        self.http
            .get(&self.site_path(rest), Some(&self.token))
            .await
    }

    /// POST to a site path (after `/api/v1/sites/{site}`) with the agent's session.
    pub async fn post(&self, rest: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(&self.site_path(rest), Some(&self.token), body)
            .await
    }

    /// PUT to a site path (after `/api/v1/sites/{site}`) with the agent's session.
    pub async fn put(&self, rest: &str, body: &Value) -> reqwest::Response {
        self.http
            .put(&self.site_path(rest), Some(&self.token), body)
            .await
    }

    /// The site's conversations, `query` being e.g. `"?status=open"`, asserting 200.
    pub async fn conversations(&self, query: &str) -> Value {
        let (s, v) = self.get(&format!("/conversations{query}")).await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// The messages of a conversation as the agent reads them, asserting 200.
    pub async fn messages(&self, conversation: &str, query: &str) -> Vec<Value> {
        let (s, v) = self
            .get(&format!("/conversations/{conversation}/messages{query}"))
            .await;
        assert_eq!(s, 200, "{v}");
        v["messages"].as_array().expect("messages").clone()
    }

    /// Log out (POST /api/v1/auth/logout); the status.
    pub async fn logout(&self) -> u16 {
        self.http
            .post("/api/v1/auth/logout", Some(&self.token), &json!({}))
            .await
            .status()
            .as_u16()
    }

    /// The agent's socket, authenticated: (socket, ready frame).
    pub async fn socket(&self) -> (Socket, Value) {
        self.http.socket(AGENT_WS, &self.token).await
    }
}

/// The status and the JSON body (`Null` when the body is not JSON).
pub async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// The status and the error code (`<no error body>` when there is none).
pub async fn error_code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or("<no error body>")
            .to_owned(),
    )
}

/// Status, error code (or "" on success) and body; panics on a body that is not JSON.
pub async fn answer(r: reqwest::Response) -> (u16, String, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, code, body)
}

/// The field paths a `400 invalid_request` answer names, in order.
pub fn fields_named(body: &Value) -> Vec<&str> {
    crate::fields_in(body["error"]["message"].as_str().unwrap_or_default())
}

/// The `seq` of each message.
pub fn seqs(messages: &[Value]) -> Vec<i64> {
    messages
        .iter()
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect()
}
