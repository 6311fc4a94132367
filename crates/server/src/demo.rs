//! The demo (CONTRACT §9): a business portal's backend, played by the server itself. It signs
//! Contact JWTs for a few made-up customers with the demo messenger's shared token. Its routes
//! are merged into the router only by `confidant demo`.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use confidant_core::time_fmt::now_millis;
use confidant_core::{MessengerId, SiteId};
use jsonwebtoken::{EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::{App, AppState};
use crate::error::{ApiError, ApiResult};
use crate::http::extract::ApiJson;
use crate::service::accounts::NewAgent;
use crate::tokens::random_token;

/// What the demo's backend knows: its site, messenger and the messenger's shared token.
pub struct DemoState {
    pub site_id: SiteId,
    pub messenger_id: MessengerId,
    pub secret: Vec<u8>,
}

/// The demo portal's backend calls, for `confidant demo` only.
pub fn routes(demo: DemoState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(config))
        .routes(routes!(contact_jwt))
        .routes(routes!(access_token))
        .layer(Extension(Arc::new(demo)))
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

#[derive(Serialize, ToSchema)]
pub struct DemoCustomer {
    id: &'static str,
    name: &'static str,
    email: &'static str,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DemoConfig {
    #[schema(value_type = i64)]
    site_id: SiteId,
    #[schema(value_type = String, format = Uuid)]
    messenger_id: MessengerId,
    customers: Vec<DemoCustomer>,
}

#[utoipa::path(get, path = "/demo/api/config", tag = "demo", responses((status = 200, body = DemoConfig)))]
async fn config(Extension(d): Extension<Arc<DemoState>>) -> Json<DemoConfig> {
    Json(DemoConfig {
        site_id: d.site_id,
        messenger_id: d.messenger_id,
        customers: CUSTOMERS
            .iter()
            .map(|c| DemoCustomer {
                id: c.id,
                name: c.name,
                email: c.email,
            })
            .collect(),
    })
}

#[derive(Deserialize, ToSchema)]
pub struct Pick {
    /// `mark`, `ana` or `li`.
    #[schema(value_type = String, required = true, pattern = "^(mark|ana|li)$")]
    customer: Option<String>,
}

fn sign_for(d: &DemoState, customer: Option<&str>) -> ApiResult<String> {
    let c = CUSTOMERS
        .iter()
        .find(|c| Some(c.id) == customer)
        .ok_or_else(|| ApiError::invalid("customer: unknown"))?;
    let now = now_millis() / 1000;
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
#[utoipa::path(post, path = "/demo/api/contact-jwt", tag = "demo", request_body = Pick,
    responses((status = 200, body = Object, description = "{\"contactJwt\": \"…\"}")))]
async fn contact_jwt(
    Extension(d): Extension<Arc<DemoState>>,
    ApiJson(p): ApiJson<Pick>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(
        json!({"contactJwt": sign_for(&d, p.customer.as_deref())?}),
    ))
}

/// The portal's backend trades the Contact JWT for an access token; the page sees only that.
#[utoipa::path(post, path = "/demo/api/access-token", tag = "demo", request_body = Pick,
    responses((status = 200, body = Object, description = "{\"accessToken\", \"expiresIn\"}")))]
async fn access_token(
    State(app): State<AppState>,
    Extension(d): Extension<Arc<DemoState>>,
    ApiJson(p): ApiJson<Pick>,
) -> ApiResult<Json<serde_json::Value>> {
    let jwt = sign_for(&d, p.customer.as_deref())?;
    let m = app
        .messengers
        .compiled(d.site_id, d.messenger_id)
        .await?
        .ok_or_else(ApiError::messenger_not_found)?;
    let out = app.authorizer.exchange(&m, &jwt, false).await?;
    Ok(Json(
        json!({"accessToken": out.access_token, "expiresIn": out.expires_in}),
    ))
}

/// On a fresh database: the demo site (10000), a messenger allowed on the server's own origin,
/// and a demo agent. On later starts the same ones are found again. Prints how to use them.
pub async fn prepare(app: &App) -> anyhow::Result<DemoState> {
    use anyhow::Context as _;
    use confidant_core::security::SecurityInput;
    use confidant_core::{Security, Validation};

    let store = &app.store;
    let now = now_millis();
    // CONTRACT §9: never take over a real site (print its shared token, add an agent to it,
    // mint tokens for it). The demo marks the site it makes; any other site ends the start
    // here, before anything is written.
    let foreign = store.count_sites_not_made_by_demo().await?;
    if foreign > 0 {
        anyhow::bail!(
            "this database holds {foreign} site(s) that `confidant demo` did not make; \
             run the demo on its own data directory or database (--data-dir, --database-url)"
        );
    }
    let site = match store.get_site(SiteId::FIRST).await? {
        Some(s) => s,
        None => store.create_demo_site("Healthify (demo)", now).await?,
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
                    allow_private_urls: false,
                },
                random_token,
            )
            .map_err(|e| anyhow::anyhow!("demo security: {e}"))?;
            store
                .create_messenger(
                    site.site_id,
                    "Support",
                    &serde_json::to_string(&parsed.security)?,
                    now,
                    Some(confidant_store::AuditEntry::new(
                        site.site_id,
                        now,
                        confidant_store::Actor::System,
                        "messenger.created",
                        serde_json::json!({"name": "Support", "method": "sharedToken", "demo": true}),
                    )),
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
            let p = random_token()[..16].to_owned();
            if store
                .find_agent_for_login(site.site_id, email)
                .await?
                .is_none()
            {
                app.accounts
                    .create_agent(
                        site.site_id,
                        NewAgent {
                            email: email.to_owned(),
                            name: "Dana (demo agent)".to_owned(),
                            password: p.clone(),
                            role: "admin",
                        },
                        &crate::service::audit::Who::system(),
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message))?;
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
    Ok(DemoState {
        site_id: site.site_id,
        messenger_id: messenger.messenger_id,
        secret,
    })
}
