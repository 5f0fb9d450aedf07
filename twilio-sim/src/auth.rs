//! HTTP Basic authentication (`ACsid:auth_token` or `SKsid:secret`) and account authorization.
//!
//! Decisions (see README): bad or missing credentials → 401 20003; credentials of a suspended or
//! closed account (or addressing one) → 401 20003, except `FetchAccount` of that account, which
//! answers 200 so a client can tell "suspended" apart; a Standard API key on `/Accounts/{Sid}.json`
//! → 401 20003; valid credentials addressing another account (not a subaccount of the
//! credentials' account) → 404 20404. While an account has a secondary auth token, either token
//! authenticates; the Auth Token resources (`/v1/AuthTokens/...`) refuse API keys (401 20003).

use base64::Engine;

use crate::errors::ApiError;
use crate::http::SimRequest;
use crate::router::{Api, PathParams, Route};
use crate::state::{AccountStatus, ApiKeyKind, SimState};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal {
    /// The `AC...` or `SK...` SID used as username.
    pub sid: String,
    /// The account the credentials belong to.
    pub account_sid: String,
    /// Set when an API key was used.
    pub key_kind: Option<ApiKeyKind>,
}

/// The username and password of a `Basic` `Authorization` header.
pub(crate) fn basic_credentials(req: &SimRequest) -> Option<(String, String)> {
    let header = req.header("authorization")?;
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// The account a request is about before authentication (for fault matching, concurrency
/// limits and the log): the path's AccountSid, else the username's account.
pub(crate) fn addressed_account(
    state: &SimState,
    req: &SimRequest,
    route: Option<(&Route, &PathParams)>,
) -> Option<String> {
    if let Some((route, params)) = route {
        if route.api == Api::V2010 {
            return params.get("AccountSid").or_else(|| params.get("Sid")).map(str::to_string);
        }
    }
    let (user, _) = basic_credentials(req)?;
    if user.starts_with("SK") {
        state.find_key(&user).map(|(a, _)| a.sid.clone())
    } else {
        Some(user)
    }
}

/// Checks the credentials alone.
pub(crate) fn authenticate(state: &SimState, req: &SimRequest) -> Result<Principal, ApiError> {
    let (user, pass) = basic_credentials(req)
        .ok_or_else(|| ApiError::authenticate("No credentials provided. Use HTTP Basic: AccountSid:AuthToken."))?;
    let wrong = || ApiError::authenticate("Your AccountSid or AuthToken was incorrect.");
    if user.starts_with("SK") {
        let (acct, key) = state.find_key(&user).ok_or_else(wrong)?;
        if !constant_time_eq(key.secret.as_bytes(), pass.as_bytes()) {
            return Err(wrong());
        }
        return Ok(Principal { sid: user, account_sid: acct.sid.clone(), key_kind: Some(key.kind) });
    }
    let acct = state.account(&user).ok_or_else(wrong)?;
    // While a secondary token exists, either token authenticates.
    let secondary =
        acct.secondary_auth_token.as_deref().is_some_and(|s| constant_time_eq(s.as_bytes(), pass.as_bytes()));
    if !constant_time_eq(acct.auth_token.as_bytes(), pass.as_bytes()) && !secondary {
        return Err(wrong());
    }
    Ok(Principal { sid: user, account_sid: acct.sid.clone(), key_kind: None })
}

/// Decides whether `principal` may run `route` on the addressed account; returns that account.
pub(crate) fn authorize(
    state: &SimState,
    principal: &Principal,
    route: &Route,
    params: &PathParams,
    path: &str,
) -> Result<String, ApiError> {
    let is_accounts_resource = route.template == "/2010-04-01/Accounts/{Sid}.json";
    let is_fetch_account = route.operation_id == "FetchAccount";
    if is_accounts_resource && principal.key_kind == Some(ApiKeyKind::Standard) {
        return Err(ApiError::authenticate(
            "Standard API keys cannot access the /Accounts resource; use a Main key or the Auth Token.",
        ));
    }
    // The spec declares only `accountSid_authToken` for the Auth Token resources.
    if route.api == Api::AccountsV1 && principal.key_kind.is_some() {
        return Err(ApiError::authenticate("The Auth Token resources need the Account SID and Auth Token."));
    }
    let own = state
        .account(&principal.account_sid)
        .ok_or_else(|| ApiError::authenticate("Your AccountSid or AuthToken was incorrect."))?;
    let target_sid = match route.api {
        Api::V2010 => params.get("AccountSid").or_else(|| params.get("Sid")).unwrap_or_default().to_string(),
        Api::MessagingV1
        | Api::MessagingV2
        | Api::ConversationsV1
        | Api::ContentV1
        | Api::AccountsV1
        | Api::MonitorV1 => own.sid.clone(),
    };
    let target = state
        .account(&target_sid)
        .filter(|t| t.sid == own.sid || t.owner_account_sid == own.sid)
        .ok_or_else(|| ApiError::not_found(path))?;
    let inactive = |s: AccountStatus| s != AccountStatus::Active;
    if (inactive(own.status) || inactive(target.status)) && !(is_fetch_account && target.sid == target_sid) {
        return Err(ApiError::authenticate(format!(
            "Account {} is {}.",
            if inactive(own.status) { &own.sid } else { &target.sid },
            if inactive(own.status) { own.status.as_str() } else { target.status.as_str() }
        )));
    }
    Ok(target.sid.clone())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
