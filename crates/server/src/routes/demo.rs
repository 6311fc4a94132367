//! The demo (CONTRACT §9): a business portal's backend, played by the server itself. It signs
//! Contact JWTs for a few made-up customers with the demo messenger's shared token.

use axum::Json;
use axum::extract::State;
use jsonwebtoken::{EncodingKey, Header};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::{AppState, now_secs};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::routes::authorize::exchange;

#[derive(Clone)]
pub struct DemoState {
    pub site_id: i64,
    pub messenger_id: String,
    pub secret: Vec<u8>,
}

pub struct Customer {
    pub id: &'static str,
    pub name: &'static str,
    pub email: &'static str,
    pub phone: &'static str,
    pub city: &'static str,
}

pub const CUSTOMERS: &[Customer] = &[
    Customer {
        id: "mark",
        name: "Mark Tylor",
        email: "mark@healthify.test",
        phone: "+1 555 0101",
        city: "Boston",
    },
    Customer {
        id: "ana",
        name: "Ana Souza",
        email: "ana@healthify.test",
        phone: "+1 555 0102",
        city: "Austin",
    },
    Customer {
        id: "li",
        name: "Li Wei",
        email: "li@healthify.test",
        phone: "+1 555 0103",
        city: "Seattle",
    },
];

fn demo(app: &AppState) -> ApiResult<&DemoState> {
    app.demo
        .get()
        .ok_or_else(|| ApiError::not_found("demo (run `confidant demo`)"))
}

#[utoipa::path(get, path = "/demo/api/config", tag = "demo", responses((status = 200, description = "the demo's site, messenger and customers")))]
pub async fn config(State(app): State<AppState>) -> ApiResult<Json<Value>> {
    let d = demo(&app)?;
    let customers: Vec<Value> = CUSTOMERS
        .iter()
        .map(|c| json!({"id": c.id, "name": c.name, "email": c.email}))
        .collect();
    Ok(Json(
        json!({"siteId": d.site_id, "messengerId": d.messenger_id, "customers": customers}),
    ))
}

#[derive(Deserialize)]
pub struct Pick {
    customer: Option<String>,
}

fn sign_for(d: &DemoState, customer: Option<&str>) -> ApiResult<String> {
    let c = CUSTOMERS
        .iter()
        .find(|c| Some(c.id) == customer)
        .ok_or_else(|| ApiError::invalid("customer: unknown"))?;
    let now = now_secs();
    let claims = json!({
        "sub": c.email, "iat": now, "exp": now + 600,
        "comm100.name": c.name, "comm100.email": c.email, "comm100.phone": c.phone, "comm100.city": c.city,
    });
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(&d.secret),
    )
    .map_err(|e| ApiError::internal(&e))
}

/// The portal's backend signs a Contact JWT for the customer (10 minutes).
#[utoipa::path(post, path = "/demo/api/contact-jwt", tag = "demo", responses((status = 200, description = "a Contact JWT")))]
pub async fn contact_jwt(
    State(app): State<AppState>,
    ApiJson(p): ApiJson<Pick>,
) -> ApiResult<Json<Value>> {
    let d = demo(&app)?;
    Ok(Json(
        json!({"contactJwt": sign_for(d, p.customer.as_deref())?}),
    ))
}

/// The portal's backend trades the Contact JWT for an access token; the page sees only that.
#[utoipa::path(post, path = "/demo/api/access-token", tag = "demo", responses((status = 200, description = "an access token")))]
pub async fn access_token(
    State(app): State<AppState>,
    ApiJson(p): ApiJson<Pick>,
) -> ApiResult<Json<Value>> {
    let d = demo(&app)?.clone();
    let jwt = sign_for(&d, p.customer.as_deref())?;
    let m = app
        .messenger(confidant_core::SiteId(d.site_id), &d.messenger_id)
        .await?
        .ok_or_else(ApiError::messenger_not_found)?;
    let out = exchange(&app, &m, &jwt, false).await?;
    Ok(Json(
        json!({"accessToken": out["accessToken"], "expiresIn": out["expiresIn"]}),
    ))
}

/// On a fresh database: the demo site (10000), a messenger allowed on the server's own origin,
/// and a demo agent. On later starts the same ones are found again. Prints how to use them.
pub async fn prepare(app: &std::sync::Arc<crate::app::App>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use confidant_core::security::SecurityInput;
    use confidant_core::{Security, SiteId, Validation};

    let store = &app.store;
    let now = crate::app::now_millis();
    let site = match store.get_site(SiteId::FIRST).await? {
        Some(s) => s,
        None => store.create_site("Healthify (demo)", now).await?,
    };
    let messenger = match store
        .list_messengers(site.site_id)
        .await?
        .into_iter()
        .next()
    {
        Some(m) => m,
        None => {
            let input =
                json!({"allowedUrls": [app.config.public_url], "contactIdentityKey": "sub"});
            let parsed = Security::parse(
                &input,
                &SecurityInput {
                    previous: None,
                    allow_http_jwks: false,
                },
                crate::auth::random_token,
            )
            .map_err(|e| anyhow::anyhow!("demo security: {e}"))?;
            store
                .create_messenger(
                    site.site_id,
                    "Support",
                    &serde_json::to_string(&parsed.security)?,
                    now,
                )
                .await?
        }
    };
    let security: Security = serde_json::from_str(&messenger.security)?;
    let Validation::SharedToken { secret, encoding } = &security.validation else {
        anyhow::bail!("the demo messenger no longer uses a shared token");
    };
    let secret = Validation::secret_bytes(secret, *encoding).context("demo secret")?;

    let email = "demo@confidant.test";
    let pw_file = app.config.data_dir.join("demo-agent-password");
    let password = match std::fs::read_to_string(&pw_file) {
        Ok(p)
            if store
                .find_agent_for_login(site.site_id, email)
                .await?
                .is_some() =>
        {
            p.trim().to_owned()
        }
        _ => {
            let p = crate::auth::random_token()[..16].to_owned();
            if store
                .find_agent_for_login(site.site_id, email)
                .await?
                .is_none()
            {
                let hash = crate::routes::admin::hash_password(p.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message))?;
                store
                    .create_agent(
                        site.site_id,
                        email,
                        "Dana (demo agent)",
                        "admin",
                        &hash,
                        now,
                    )
                    .await?;
            } else {
                anyhow::bail!(
                    "the demo agent exists but its password file {} is gone; use a fresh data directory",
                    pw_file.display()
                );
            }
            std::fs::create_dir_all(&app.config.data_dir)?;
            std::fs::write(&pw_file, &p)?;
            p
        }
    };
    let _ = app.demo.set(DemoState {
        site_id: site.site_id.0,
        messenger_id: messenger.messenger_id.to_string(),
        secret,
    });
    let url = &app.config.public_url;
    println!("Confidant demo is ready.");
    println!("  portal (a business page with the messenger): {url}/demo/");
    println!(
        "  agent console:                               {url}/console/?siteId={}",
        site.site_id
    );
    println!(
        "  admin pages:                                 {url}/admin/?siteId={}",
        site.site_id
    );
    println!(
        "site: {}  messenger: {}",
        site.site_id, messenger.messenger_id
    );
    if let Validation::SharedToken { secret, .. } = &security.validation {
        println!("messenger shared token (signs the demo's Contact JWTs): {secret}");
    }
    println!("email: {email}");
    println!("password: {password}");
    println!("(demo secrets are for this demo only)");
    Ok(())
}
