//! The request pipeline, in order:
//! control API (`/_sim/`, unlogged) → request log entry → per-account concurrency limit →
//! fault rules (latency, error, 429, drop or stall before apply) → contract middleware (strict mode:
//! `check_request` → handler → `check_response`) → drop or latency after apply → log.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use serde_json::Value;

use crate::auth;
use crate::control;
use crate::errors::ApiError;
use crate::faults::FaultAction;
use crate::http::{SimRequest, SimResponse};
use crate::log::{redact_json, redact_pairs, RequestKind, RequestRecord, ViolationPhase, ViolationRecord, REDACTED};
use crate::oauth;
use crate::router::{self, Ctx, RouteMatch};
use crate::shared::{lock, Shared};
use crate::spec::{coverage, RequestParts};

/// What the connection should do.
pub(crate) enum Outcome {
    /// Send this response.
    Respond(SimResponse),
    /// Close the connection without a response.
    Drop,
}

/// Adds the headers every response carries.
fn finish(path: &str, request_id: &str, mut resp: SimResponse) -> SimResponse {
    if resp.status != 204 {
        resp.headers.push(("Content-Type", "application/json".into()));
    }
    resp.headers.push(("Twilio-Request-Id", request_id.to_string()));
    if path.starts_with("/v2/") {
        resp.headers.push(("T-Request-Id", request_id.to_string()));
    }
    resp
}

fn new_record(
    seq: u64,
    kind: RequestKind,
    req: &SimRequest,
    request_id: &str,
    account: Option<String>,
) -> RequestRecord {
    let json = if req.is_json() && !req.body.is_empty() {
        serde_json::from_slice::<Value>(&req.body).ok().map(|mut v| {
            redact_json(&mut v);
            v
        })
    } else {
        None
    };
    let query_params = redact_pairs(&req.query_params().0);
    let query = match &req.query {
        Some(q) if query_params.iter().any(|(_, v)| v == REDACTED) => {
            Some(serde_urlencoded::to_string(&query_params).unwrap_or_default())
        }
        other => other.clone(),
    };
    RequestRecord {
        seq,
        time: Utc::now(),
        answered: None,
        kind,
        method: req.method.clone(),
        path: req.path.clone(),
        query,
        query_params,
        content_type: req.content_type().map(str::to_string),
        form: req.is_form().then(|| redact_pairs(&req.form_params().0)),
        json,
        account_sid: account,
        principal: None,
        user_agent: req.header("user-agent").map(str::to_string),
        request_id: request_id.to_string(),
        status: None,
        dropped: false,
        abandoned: false,
        fault: None,
        route: None,
        operation_id: None,
        violations: Vec::new(),
    }
}

/// Releases a concurrency slot when dropped.
struct Slot<'a> {
    shared: &'a Shared,
    account: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        lock(&self.shared.limiter).release(&self.account);
    }
}

/// A request's log entry until the pipeline is done with it. If the client goes away first
/// (its timeout expires during an injected delay), hyper drops the pipeline's future: the
/// entry is then logged as abandoned, so the log still holds every request.
struct Pending {
    shared: Arc<Shared>,
    record: Option<RequestRecord>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.abandoned = true;
            record.answered = Some(Utc::now());
            tracing::info!(seq = record.seq, method = %record.method, path = %record.path, "request abandoned by the client");
            lock(&self.shared.log).push(record);
        }
    }
}

/// Runs one request through the pipeline.
pub(crate) async fn handle(shared: Arc<Shared>, req: SimRequest) -> Outcome {
    let request_id = shared.request_id();
    if req.path == "/_sim" || req.path.starts_with("/_sim/") {
        let resp = match crate::webhook::control(&shared, &req).await {
            Some(resp) => resp,
            None => control::handle(&shared, &req),
        };
        crate::webhook::send_status_callbacks(&shared);
        return Outcome::Respond(finish(&req.path, &request_id, resp));
    }
    let started = Instant::now();
    let kind = if oauth::is_oauth_path(&req.path) { RequestKind::OAuth } else { RequestKind::Twilio };
    let route = match kind {
        RequestKind::Twilio => Some(router::find(&req.method, &req.path)),
        RequestKind::OAuth => None,
    };
    let account = match &route {
        Some(RouteMatch::Found(r, p)) => auth::addressed_account(&lock(&shared.state), &req, Some((r, p))),
        Some(_) => auth::addressed_account(&lock(&shared.state), &req, None),
        None => None,
    };
    let seq = lock(&shared.log).next_seq();
    let mut pending =
        Pending { shared: shared.clone(), record: Some(new_record(seq, kind, &req, &request_id, account.clone())) };
    let outcome = match pending.record.as_mut() {
        Some(record) => run(&shared, &req, route, account, record).await,
        None => (Outcome::Drop, None),
    };
    let Some(mut record) = pending.record.take() else {
        return Outcome::Drop;
    };
    record.status = match &outcome {
        (Outcome::Respond(r), _) => Some(r.status),
        (Outcome::Drop, status) => *status,
    };
    record.dropped = matches!(outcome.0, Outcome::Drop);
    record.answered = Some(Utc::now());
    tracing::info!(
        seq,
        method = %record.method,
        path = %record.path,
        status = record.status.unwrap_or(0),
        dropped = record.dropped,
        account = record.account_sid.as_deref().unwrap_or("-"),
        principal = record.principal.as_deref().unwrap_or("-"),
        fault = record.fault.as_deref().unwrap_or("-"),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    lock(&shared.log).push(record);
    crate::webhook::send_status_callbacks(&shared);
    match outcome.0 {
        Outcome::Respond(r) => Outcome::Respond(finish(&req.path, &request_id, r)),
        Outcome::Drop => Outcome::Drop,
    }
}

/// Concurrency, faults and the handler. Returns the outcome and, for a dropped connection,
/// the status the handler produced (if it ran).
async fn run(
    shared: &Shared,
    req: &SimRequest,
    route: Option<RouteMatch>,
    account: Option<String>,
    record: &mut RequestRecord,
) -> (Outcome, Option<u16>) {
    let _slot = match &account {
        Some(a) => match lock(&shared.limiter).acquire(a) {
            Ok(()) => Some(Slot { shared, account: a.clone() }),
            Err(in_flight) => {
                record.fault = Some("concurrency_limit".into());
                let err = ApiError::too_many_requests()
                    .with_detail("Too many concurrent requests for this account")
                    .with_header("Twilio-Concurrent-Requests", in_flight.to_string());
                return (Outcome::Respond(SimResponse::error(&err)), None);
            }
        },
        None => None,
    };

    let actions = lock(&shared.faults).take(&req.method, &req.path, account.as_deref());
    // Labelled before any delay, so that a request its client abandons still names its fault.
    if !actions.is_empty() {
        record.fault = Some(actions.iter().map(FaultAction::label).collect::<Vec<_>>().join(", "));
    }
    let mut terminal = None;
    for action in actions {
        match action {
            FaultAction::Latency { ms } => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
            other => terminal = Some(other),
        }
    }
    match &terminal {
        Some(FaultAction::DropBeforeApply) => return (Outcome::Drop, None),
        Some(FaultAction::StallBeforeApply { ms }) => {
            tokio::time::sleep(std::time::Duration::from_millis(*ms)).await;
            return (Outcome::Drop, None);
        }
        Some(action) => {
            if let Some(err) = action.error() {
                return (Outcome::Respond(SimResponse::error(&err)), None);
            }
        }
        None => {}
    }

    let resp = match route {
        None => {
            let base = shared.base_url.clone();
            let (resp, principal) = oauth::handle(&mut lock(&shared.state), req, &base);
            record.principal = principal;
            resp
        }
        Some(route) => with_contract(shared, req, route, record),
    };

    match terminal {
        Some(FaultAction::DropAfterApply) => return (Outcome::Drop, Some(resp.status)),
        Some(FaultAction::LatencyAfterApply { ms }) => {
            // Applied: logged with its status even if the client gives up during the delay.
            record.status = Some(resp.status);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await
        }
        _ => {}
    }
    (Outcome::Respond(resp), None)
}

fn violation(record: &RequestRecord, phase: ViolationPhase, rule: String, message: String) -> ViolationRecord {
    ViolationRecord {
        seq: record.seq,
        phase,
        method: record.method.clone(),
        path: record.path.clone(),
        operation_id: record.operation_id.clone(),
        rule,
        message,
    }
}

/// The contract middleware: in strict mode, checks the request before any handler runs and the
/// buffered response after it; violations are logged (response violations never change the
/// response: they are simulator bugs).
fn with_contract(shared: &Shared, req: &SimRequest, route: RouteMatch, record: &mut RequestRecord) -> SimResponse {
    let record_spec = match &route {
        RouteMatch::Found(r, _) => Some(r.api.spec()),
        _ => None,
    };
    let Some(contract) = &shared.contract else {
        let resp = dispatch(shared, req, route, record);
        if let (Some(cov), Some(spec), Some(op_id)) = (&shared.coverage, record_spec, &record.route) {
            if let Some(op) = cov.operation(spec, op_id) {
                coverage::record(&op, resp.status, record.user_agent.as_deref());
            }
        }
        return resp;
    };
    let parts = RequestParts {
        method: &req.method,
        path: &req.path,
        query: req.query.as_deref(),
        content_type: req.content_type(),
        body: &req.body,
    };
    let op = match contract.check_request(&parts) {
        Ok(op) => op,
        Err(v) => {
            let err = ApiError::bad_request(
                20001,
                format!("Request does not conform to Twilio's OpenAPI contract: {}: {}", v.rule, v.message),
            );
            let rec = violation(record, ViolationPhase::Request, v.rule, v.message);
            record.violations.push(rec);
            return SimResponse::error(&err);
        }
    };
    record.operation_id = Some(op.operation_id.clone());
    let resp = dispatch(shared, req, route, record);
    if let Err(v) = contract.check_response(&op, resp.status, &resp.body) {
        tracing::warn!(
            operation = %op.operation_id,
            status = resp.status,
            rule = %v.rule,
            "simulator response violates the contract: {}",
            v.message
        );
        let rec = violation(record, ViolationPhase::Response, v.rule, v.message);
        record.violations.push(rec);
    }
    if shared.coverage.is_some() {
        coverage::record(&op, resp.status, record.user_agent.as_deref());
    }
    resp
}

/// Routing, authentication, authorization and the handler.
fn dispatch(shared: &Shared, req: &SimRequest, route: RouteMatch, record: &mut RequestRecord) -> SimResponse {
    let (route, params) = match route {
        RouteMatch::Found(r, p) => (r, p),
        RouteMatch::MethodNotAllowed => return ApiError::method_not_allowed().into(),
        RouteMatch::NotFound => return ApiError::not_found(&req.path).into(),
    };
    record.route = Some(route.operation_id.to_string());
    let mut state = lock(&shared.state);
    let principal = match auth::authenticate(&state, req) {
        Ok(p) => p,
        Err(e) => return e.into(),
    };
    record.principal = Some(principal.sid.clone());
    let account_sid = match auth::authorize(&state, &principal, route, &params, &req.path) {
        Ok(a) => a,
        Err(e) => return e.into(),
    };
    record.account_sid = Some(account_sid.clone());
    let mut ctx = Ctx {
        state: &mut state,
        req,
        params: &params,
        account_sid: &account_sid,
        base_url: &shared.base_url,
        config: &shared.config,
    };
    match (route.handler)(&mut ctx) {
        Ok(resp) => resp,
        Err(e) => e.into(),
    }
}
