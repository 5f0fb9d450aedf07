//! The OAuth2 token endpoint standing in for the CRM's identity server (IdentityServer4 style):
//! `POST /connect/token` (client credentials grant, RFC 6749 §4.4 / errors §5.2) and a minimal
//! discovery document at `GET /.well-known/openid-configuration`.

use base64::Engine;
use serde_json::json;

use crate::http::{SimRequest, SimResponse};
use crate::state::SimState;

/// Whether `path` belongs to the identity server stand-in.
pub(crate) fn is_oauth_path(path: &str) -> bool {
    path.starts_with("/connect/") || path.starts_with("/.well-known/")
}

fn oauth_error(status: u16, error: &str, description: &str) -> SimResponse {
    SimResponse::json(status, &json!({"error": error, "error_description": description}))
        .with_header("Cache-Control", "no-store")
        .with_header("Pragma", "no-cache")
}

/// Client credentials from HTTP Basic (form-urlencoded per RFC 6749 §2.3.1).
fn basic_client(req: &SimRequest) -> Option<(String, String)> {
    let header = req.header("authorization")?;
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
            .ok()
            .and_then(|v| v.into_iter().next().map(|(_, v)| v))
            .unwrap_or_else(|| s.to_string())
    };
    Some((decode(id), decode(secret)))
}

/// Handles an identity-server request; returns the response and the authenticated client id.
pub(crate) fn handle(state: &mut SimState, req: &SimRequest, base_url: &str) -> (SimResponse, Option<String>) {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/.well-known/openid-configuration") => {
            let doc = json!({
                "issuer": base_url,
                "token_endpoint": format!("{base_url}/connect/token"),
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "scopes_supported": state
                    .identity_clients
                    .iter()
                    .flat_map(|c| c.scopes.iter().cloned())
                    .collect::<std::collections::BTreeSet<_>>(),
            });
            (SimResponse::json(200, &doc), None)
        }
        ("POST", "/connect/token") => token(state, req),
        (_, "/connect/token") => (oauth_error(405, "invalid_request", "Use POST"), None),
        _ => (oauth_error(404, "invalid_request", "Unknown identity server endpoint"), None),
    }
}

fn token(state: &mut SimState, req: &SimRequest) -> (SimResponse, Option<String>) {
    if !req.is_form() {
        return (oauth_error(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded"), None);
    }
    let form = req.form_params();
    let basic = basic_client(req);
    let used_basic = basic.is_some();
    let (client_id, client_secret) = match basic {
        Some(c) => c,
        None => (
            form.get("client_id").unwrap_or_default().to_string(),
            form.get("client_secret").unwrap_or_default().to_string(),
        ),
    };
    let invalid_client = || {
        if used_basic {
            oauth_error(401, "invalid_client", "Client authentication failed")
                .with_header("WWW-Authenticate", "Basic realm=\"identity\"")
        } else {
            oauth_error(400, "invalid_client", "Client authentication failed")
        }
    };
    let Some(client) = state.identity_clients.iter().find(|c| c.client_id == client_id).cloned() else {
        return (invalid_client(), None);
    };
    if client_id.is_empty() || client.client_secret != client_secret {
        return (invalid_client(), None);
    }
    match form.get("grant_type") {
        None => return (oauth_error(400, "invalid_request", "grant_type is required"), Some(client_id)),
        Some("client_credentials") => {}
        Some(_) => {
            return (
                oauth_error(400, "unsupported_grant_type", "Only client_credentials is supported"),
                Some(client_id),
            )
        }
    }
    let granted: Vec<String> = match form.get("scope").map(str::trim).filter(|s| !s.is_empty()) {
        Some(requested) => {
            let wanted: Vec<String> = requested.split_whitespace().map(str::to_string).collect();
            if let Some(bad) = wanted.iter().find(|s| !client.scopes.contains(s)) {
                return (oauth_error(400, "invalid_scope", &format!("Scope '{bad}' is not allowed")), Some(client_id));
            }
            wanted
        }
        None => client.scopes.clone(),
    };
    let access_token = state.sids.token(64);
    let body = json!({
        "access_token": access_token,
        "expires_in": client.access_token_lifetime,
        "token_type": "Bearer",
        "scope": granted.join(" "),
    });
    (
        SimResponse::json(200, &body).with_header("Cache-Control", "no-store").with_header("Pragma", "no-cache"),
        Some(client_id),
    )
}
