//! The control API under `/_sim/` (JSON; not Twilio: never logged, never contract-checked).
//! Every route maps to a [`crate::SimHandle`] method; see README for the list.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::errors::SimError;
use crate::faults::FaultRule;
use crate::http::{SimRequest, SimResponse};
use crate::router::implemented_operations;
use crate::seed::{self, SeedFile};
use crate::shared::{lock, Shared};
use crate::state::{
    AccountPatch, MessageOutcome, NumberPatch, SandboxPatch, SenderPatch, ServicePatch, SessionWindowPatch,
};

fn ok(value: &impl serde::Serialize) -> SimResponse {
    SimResponse::json(200, &serde_json::to_value(value).unwrap_or(Value::Null))
}

fn err(status: u16, message: impl std::fmt::Display) -> SimResponse {
    SimResponse::json(status, &json!({"error": message.to_string()}))
}

fn sim_err(e: SimError) -> SimResponse {
    match e {
        SimError::NotFound(_) => err(404, e),
        _ => err(400, e),
    }
}

fn body<T: DeserializeOwned>(req: &SimRequest) -> Result<T, SimResponse> {
    let raw: &[u8] = if req.body.is_empty() { b"{}" } else { &req.body };
    serde_json::from_slice(raw).map_err(|e| err(400, format!("invalid JSON body: {e}")))
}

fn decode(seg: &str) -> String {
    percent_encoding::percent_decode_str(seg).decode_utf8_lossy().into_owned()
}

/// `{"auth_token": ...}` for token rotation.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    #[serde(default)]
    auth_token: Option<String>,
}

/// `{"account": ..., "limit": ...}` for concurrency limits.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConcurrencyBody {
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// Handles one control request.
pub(crate) fn handle(shared: &Shared, req: &SimRequest) -> SimResponse {
    match route(shared, req) {
        Ok(r) | Err(r) => r,
    }
}

fn route(shared: &Shared, req: &SimRequest) -> Result<SimResponse, SimResponse> {
    let segs: Vec<String> =
        req.path.trim_start_matches("/_sim").split('/').filter(|s| !s.is_empty()).map(decode).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    let resp = match (m, segs.as_slice()) {
        ("GET", ["health"]) => ok(&json!({"ok": true})),
        ("GET", ["state"]) => ok(&lock(&shared.state).snapshot()),
        ("POST", ["reset"]) => {
            lock(&shared.state).reset();
            SimResponse::no_content()
        }
        ("POST", ["seed"]) => {
            let text = String::from_utf8_lossy(&req.body);
            let seed = SeedFile::from_yaml(&text).map_err(sim_err)?;
            let sids = seed::apply(&mut lock(&shared.state), &seed).map_err(sim_err)?;
            ok(&json!({ "accounts": sids }))
        }
        ("GET", ["requests"]) => ok(&lock(&shared.log).records()),
        ("DELETE", ["requests"]) => {
            lock(&shared.log).clear_records();
            SimResponse::no_content()
        }
        ("GET", ["violations"]) => ok(&lock(&shared.log).violations()),
        ("DELETE", ["violations"]) => {
            lock(&shared.log).clear_violations();
            SimResponse::no_content()
        }
        ("GET", ["faults"]) => ok(&lock(&shared.faults).list()),
        ("POST", ["faults"]) => {
            let rule: FaultRule = body(req)?;
            let id = lock(&shared.faults).add(rule).map_err(sim_err)?;
            SimResponse::json(201, &json!({ "id": id }))
        }
        ("DELETE", ["faults"]) => {
            lock(&shared.faults).clear();
            SimResponse::no_content()
        }
        ("DELETE", ["faults", id]) => {
            let id: u64 = id.parse().map_err(|_| err(400, "fault id must be a number"))?;
            if !lock(&shared.faults).remove(id) {
                return Err(err(404, format!("no fault {id}")));
            }
            SimResponse::no_content()
        }
        ("PUT" | "POST", ["concurrency"]) => {
            let b: ConcurrencyBody = body(req)?;
            lock(&shared.limiter).set(b.account.as_deref(), b.limit);
            ok(&json!({ "account": b.account, "limit": b.limit }))
        }
        ("GET", ["operations"]) => ok(&implemented_operations()),
        ("GET", ["accounts", key]) => {
            let snap = lock(&shared.state).snapshot();
            let acct = snap.account(key).ok_or_else(|| err(404, format!("not found: account {key}")))?;
            ok(acct)
        }
        ("POST", ["accounts", key]) => {
            let patch: AccountPatch = body(req)?;
            ok(&lock(&shared.state).update_account(key, &patch).map_err(sim_err)?)
        }
        ("POST", ["accounts", key, "auth-token"]) => {
            let b: TokenBody = body(req)?;
            let token = lock(&shared.state).rotate_auth_token(key, b.auth_token).map_err(sim_err)?;
            ok(&json!({ "auth_token": token }))
        }
        ("POST", ["accounts", key, "numbers", number]) => {
            let patch: NumberPatch = body(req)?;
            ok(&lock(&shared.state).update_number(key, number, &patch).map_err(sim_err)?)
        }
        ("POST", ["accounts", key, "senders", sender]) => {
            let patch: SenderPatch = body(req)?;
            ok(&lock(&shared.state).update_sender(key, sender, &patch).map_err(sim_err)?)
        }
        ("GET", ["accounts", key, "inbound", number]) => {
            let snap = lock(&shared.state).snapshot();
            let acct = snap.account(key).ok_or_else(|| err(404, format!("not found: account {key}")))?;
            let route =
                acct.inbound_route(number).ok_or_else(|| err(404, format!("not found: {number} in account {key}")))?;
            ok(&route)
        }
        ("POST", ["accounts", key, "services", service]) => {
            let patch: ServicePatch = body(req)?;
            ok(&lock(&shared.state).update_service(key, service, &patch).map_err(sim_err)?)
        }
        ("GET", ["accounts", key, "sandbox"]) => {
            let snap = lock(&shared.state).snapshot();
            let acct = snap.account(key).ok_or_else(|| err(404, format!("not found: account {key}")))?;
            let sandbox = acct.sandbox.as_ref().ok_or_else(|| err(404, format!("not found: sandbox of {key}")))?;
            ok(sandbox)
        }
        ("POST", ["accounts", key, "sandbox"]) => {
            let patch: SandboxPatch = body(req)?;
            ok(&lock(&shared.state).update_sandbox(key, &patch).map_err(sim_err)?)
        }
        ("DELETE", ["accounts", key, "sandbox"]) => {
            lock(&shared.state).remove_sandbox(key).map_err(sim_err)?;
            SimResponse::no_content()
        }
        ("POST", ["accounts", key, "session-window"]) => {
            let patch: SessionWindowPatch = body(req)?;
            ok(&lock(&shared.state).update_session_window(key, &patch).map_err(sim_err)?)
        }
        ("POST", ["accounts", key, "messages", sid]) => {
            let outcome: MessageOutcome = body(req)?;
            ok(&lock(&shared.state).set_message_status(key, sid, outcome).map_err(sim_err)?)
        }
        _ => err(404, format!("unknown control route {m} {}", req.path)),
    };
    Ok(resp)
}
