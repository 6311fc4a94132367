//! The audit log (CONTRACT §13), the site settings (§12) and contact search (§14).

use axum::Json;
use axum::extract::State;
use confidant_core::SiteId;

use crate::api::{self, AuditPage, AuditVerify, ContactList, ErrorBody};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, ClientIp};
use crate::service::accounts::Principal;
use crate::service::audit::Who;

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/audit", tag = "admin",
    params(("siteId" = i64, Path), api::AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn audit_page(
    State(app): State<AppState>,
    p: Principal,
    ApiPath(site): ApiPath<SiteId>,
    ApiQuery(q): ApiQuery<api::AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    p.require_admin(site)?;
    let (rows, last_seq) = app
        .audit
        .page(site, q.after.unwrap_or(0), q.limit.unwrap_or(100))
        .await?;
    Ok(Json(AuditPage {
        entries: rows.iter().map(api::AuditEntry::from).collect(),
        last_seq,
    }))
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/audit/verify", tag = "admin",
    params(("siteId" = i64, Path)),
    responses((status = 200, body = AuditVerify, description = "`ok` false names the first broken `seq`"),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn audit_verify(
    State(app): State<AppState>,
    p: Principal,
    ApiPath(site): ApiPath<SiteId>,
) -> ApiResult<Json<AuditVerify>> {
    p.require_admin(site)?;
    let check = app.audit.verify(site).await?;
    Ok(Json(AuditVerify {
        ok: check.broken_at.is_none(),
        entries: check.entries,
        broken_seq: check.broken_at,
    }))
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/settings", tag = "admin",
    params(("siteId" = i64, Path)),
    responses((status = 200, body = api::SiteSettings), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_settings(
    State(app): State<AppState>,
    p: Principal,
    ApiPath(site): ApiPath<SiteId>,
) -> ApiResult<Json<api::SiteSettings>> {
    p.require_admin(site)?;
    Ok(Json(app.audit.settings(site).await?.into()))
}

#[utoipa::path(put, path = "/api/v1/sites/{siteId}/settings", tag = "admin",
    params(("siteId" = i64, Path)), request_body = api::PutSiteSettings,
    responses((status = 200, body = api::SiteSettings), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn put_settings(
    State(app): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiPath(site): ApiPath<SiteId>,
    ApiJson(body): ApiJson<api::PutSiteSettings>,
) -> ApiResult<Json<api::SiteSettings>> {
    p.require_admin(site)?;
    let old = app.audit.settings(site).await?;
    let mut settings = old;
    let mut problems = Vec::new();
    if let Some(idle) = body.idle_timeout_minutes {
        match idle {
            Some(m) if !(1..=1440).contains(&m) => {
                problems.push("idleTimeoutMinutes: must be 1 to 1440 minutes, or null for 60")
            }
            _ => settings.idle_timeout_minutes = idle,
        }
    }
    if let Some(days) = body.retention_days {
        match days {
            Some(d) if !(0..=3650).contains(&d) => {
                problems.push("retentionDays: must be 0 to 3650 days, or null to keep everything")
            }
            _ => settings.retention_days = days,
        }
    }
    if let Some(totp) = body.require_totp {
        settings.require_totp = totp;
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems.join("; ")));
    }
    let saved = app
        .audit
        .put_settings(site, old, settings, &Who::of(&p, ip))
        .await?;
    Ok(Json(saved.into()))
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/contacts", tag = "agent",
    params(("siteId" = i64, Path), api::ContactQuery),
    responses((status = 200, body = ContactList, description = "at most 50, most recently updated first"),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn search_contacts(
    State(app): State<AppState>,
    p: Principal,
    ApiPath(site): ApiPath<SiteId>,
    ApiQuery(q): ApiQuery<api::ContactQuery>,
) -> ApiResult<Json<ContactList>> {
    app.accounts.check_site(&p, site).await?;
    let text = q.query.as_deref().map(str::trim).unwrap_or_default();
    if text.is_empty() || text.chars().count() > 256 {
        return Err(ApiError::invalid("query: must be 1 to 256 characters"));
    }
    let found = app.contacts.search(site, text).await?;
    Ok(Json(ContactList {
        contacts: found.iter().map(api::Contact::from).collect(),
    }))
}
