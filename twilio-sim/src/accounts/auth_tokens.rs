//! `POST`/`DELETE /v1/AuthTokens/Secondary` (CreateSecondaryAuthToken,
//! DeleteSecondaryAuthToken) and `POST /v1/AuthTokens/Promote` (UpdateAuthTokenPromotion).
//!
//! While a secondary token exists, both tokens authenticate; promoting it makes it the primary,
//! and the old primary fails from then on (twilio.com/docs/iam/api/secondary_authtoken,
//! twilio.com/docs/iam/api/authtoken).

use chrono::Utc;
use serde_json::json;

use crate::errors::ApiError;
use crate::http::SimResponse;
use crate::messaging::iso8601;
use crate::router::Ctx;

/// POST Secondary: a new secondary token (one that existed is replaced) → 201.
pub(crate) fn create_secondary(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let token = ctx.state.sids.hex32();
    let url = format!("{}/v1/AuthTokens/Secondary", ctx.base_url);
    let acct = ctx.account()?;
    let now = Utc::now();
    acct.secondary_auth_token = Some(token.clone());
    acct.date_updated = now;
    Ok(SimResponse::json(
        201,
        &json!({
            "account_sid": acct.sid,
            "date_created": iso8601(&now),
            "date_updated": iso8601(&now),
            "secondary_auth_token": token,
            "url": url,
        }),
    ))
}

/// DELETE Secondary → 204 (also when there is none).
pub(crate) fn delete_secondary(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let acct = ctx.account()?;
    acct.secondary_auth_token = None;
    Ok(SimResponse::no_content())
}

/// POST Promote: the secondary becomes the primary → 200; without a secondary → 400 20001.
pub(crate) fn promote(ctx: &mut Ctx<'_>) -> Result<SimResponse, ApiError> {
    let url = format!("{}/v1/AuthTokens/Promote", ctx.base_url);
    let acct = ctx.account()?;
    let Some(token) = acct.secondary_auth_token.take() else {
        return Err(ApiError::bad_request(20001, "There is no secondary Auth Token to promote"));
    };
    let now = Utc::now();
    acct.auth_token = token.clone();
    acct.date_updated = now;
    Ok(SimResponse::json(
        200,
        &json!({
            "account_sid": acct.sid,
            "auth_token": token,
            "date_created": iso8601(&acct.date_created),
            "date_updated": iso8601(&now),
            "url": url,
        }),
    ))
}
