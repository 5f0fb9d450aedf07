//! The route table: every Twilio operation the simulator implements, matched by method and
//! templated path (`{Name}` segments, optionally with a static suffix such as `{Sid}.json`).

use serde::Serialize;

use crate::config::SimConfig;
use crate::errors::ApiError;
use crate::http::{SimRequest, SimResponse};
use crate::state::{Account, SimState};
use crate::{accounts, api2010, content, conversations, messaging, monitor};

/// Which Twilio API (and spec file) a route belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    V2010,
    MessagingV1,
    MessagingV2,
    ConversationsV1,
    ContentV1,
    AccountsV1,
    MonitorV1,
}

impl Api {
    pub fn spec(self) -> &'static str {
        match self {
            Api::V2010 => "twilio_api_v2010",
            Api::MessagingV1 => "twilio_messaging_v1",
            Api::MessagingV2 => "twilio_messaging_v2",
            Api::ConversationsV1 => "twilio_conversations_v1",
            Api::ContentV1 => "twilio_content_v1",
            Api::AccountsV1 => "twilio_accounts_v1",
            Api::MonitorV1 => "twilio_monitor_v1",
        }
    }
}

/// What a handler gets: the locked state, the request, path parameters and the account the
/// request was authorized for.
pub(crate) struct Ctx<'a> {
    pub state: &'a mut SimState,
    pub req: &'a SimRequest,
    pub params: &'a PathParams,
    pub account_sid: &'a str,
    pub base_url: &'a str,
    pub config: &'a SimConfig,
}

impl Ctx<'_> {
    /// The authorized account.
    pub fn account(&mut self) -> Result<&mut Account, ApiError> {
        let path = self.req.path.clone();
        self.state.account_mut(self.account_sid).ok_or_else(|| ApiError::not_found(&path))
    }

    /// A path parameter.
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).unwrap_or("")
    }

    /// 404 for the current path.
    pub fn not_found(&self) -> ApiError {
        ApiError::not_found(&self.req.path)
    }
}

pub(crate) type Handler = fn(&mut Ctx<'_>) -> Result<SimResponse, ApiError>;

/// One implemented operation.
pub(crate) struct Route {
    pub method: &'static str,
    pub template: &'static str,
    pub operation_id: &'static str,
    pub api: Api,
    pub handler: Handler,
}

/// An implemented Twilio operation, as listed by [`crate::implemented_operations`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperationInfo {
    /// Spec file stem, e.g. `twilio_api_v2010`.
    pub spec: &'static str,
    /// Upper-case method.
    pub method: &'static str,
    /// Templated path as in the spec.
    pub path_template: &'static str,
    /// The spec's operationId.
    pub operation_id: &'static str,
}

const ACCOUNT: &str = "/2010-04-01/Accounts/{Sid}.json";
const NUMBERS: &str = "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json";
const NUMBER: &str = "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json";
const MESSAGES: &str = "/2010-04-01/Accounts/{AccountSid}/Messages.json";
const MESSAGE: &str = "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json";
const SERVICES: &str = "/v1/Services";
const SERVICE: &str = "/v1/Services/{Sid}";
const SVC_NUMBERS: &str = "/v1/Services/{ServiceSid}/PhoneNumbers";
const SVC_NUMBER: &str = "/v1/Services/{ServiceSid}/PhoneNumbers/{Sid}";
const SVC_SENDERS: &str = "/v1/Services/{MessagingServiceSid}/ChannelSenders";
const SVC_SENDER: &str = "/v1/Services/{MessagingServiceSid}/ChannelSenders/{Sid}";
const SENDERS: &str = "/v2/Channels/Senders";
const SENDER: &str = "/v2/Channels/Senders/{Sid}";
const ADDRESSES: &str = "/v1/Configuration/Addresses";
const ADDRESS: &str = "/v1/Configuration/Addresses/{Sid}";
const CONTENTS: &str = "/v1/Content";
const CONTENT: &str = "/v1/Content/{Sid}";
const APPROVAL: &str = "/v1/Content/{Sid}/ApprovalRequests";
const APPROVAL_SUBMIT: &str = "/v1/Content/{ContentSid}/ApprovalRequests/whatsapp";
const SECONDARY_TOKEN: &str = "/v1/AuthTokens/Secondary";
const PROMOTE_TOKEN: &str = "/v1/AuthTokens/Promote";
const ALERTS: &str = "/v1/Alerts";
const ALERT: &str = "/v1/Alerts/{Sid}";

macro_rules! route {
    ($m:literal, $t:expr, $op:literal, $api:ident, $h:path) => {
        Route { method: $m, template: $t, operation_id: $op, api: Api::$api, handler: $h }
    };
}

static ROUTES: &[Route] = &[
    route!("GET", ACCOUNT, "FetchAccount", V2010, api2010::accounts::fetch),
    route!("POST", ACCOUNT, "UpdateAccount", V2010, api2010::accounts::update),
    route!("GET", NUMBERS, "ListIncomingPhoneNumber", V2010, api2010::numbers::list),
    route!("POST", NUMBERS, "CreateIncomingPhoneNumber", V2010, api2010::numbers::create),
    route!("GET", NUMBER, "FetchIncomingPhoneNumber", V2010, api2010::numbers::fetch),
    route!("POST", NUMBER, "UpdateIncomingPhoneNumber", V2010, api2010::numbers::update),
    route!("DELETE", NUMBER, "DeleteIncomingPhoneNumber", V2010, api2010::numbers::delete),
    route!("GET", MESSAGES, "ListMessage", V2010, api2010::messages::list),
    route!("POST", MESSAGES, "CreateMessage", V2010, api2010::messages::create),
    route!("GET", MESSAGE, "FetchMessage", V2010, api2010::messages::fetch),
    route!("DELETE", MESSAGE, "DeleteMessage", V2010, api2010::messages::delete),
    route!("GET", SERVICES, "ListService", MessagingV1, messaging::services::list),
    route!("POST", SERVICES, "CreateService", MessagingV1, messaging::services::create),
    route!("GET", SERVICE, "FetchService", MessagingV1, messaging::services::fetch),
    route!("POST", SERVICE, "UpdateService", MessagingV1, messaging::services::update),
    route!("DELETE", SERVICE, "DeleteService", MessagingV1, messaging::services::delete),
    route!("GET", SVC_NUMBERS, "ListPhoneNumber", MessagingV1, messaging::services::list_numbers),
    route!("POST", SVC_NUMBERS, "CreatePhoneNumber", MessagingV1, messaging::services::add_number),
    route!("GET", SVC_NUMBER, "FetchPhoneNumber", MessagingV1, messaging::services::fetch_number),
    route!("DELETE", SVC_NUMBER, "DeletePhoneNumber", MessagingV1, messaging::services::remove_number),
    route!("GET", SVC_SENDERS, "ListChannelSender", MessagingV1, messaging::services::list_senders),
    route!("POST", SVC_SENDERS, "CreateChannelSender", MessagingV1, messaging::services::add_sender),
    route!("GET", SVC_SENDER, "FetchChannelSender", MessagingV1, messaging::services::fetch_sender),
    route!("DELETE", SVC_SENDER, "DeleteChannelSender", MessagingV1, messaging::services::remove_sender),
    route!("GET", SENDERS, "ListChannelsSender", MessagingV2, messaging::senders::list),
    route!("POST", SENDERS, "CreateChannelsSender", MessagingV2, messaging::senders::create),
    route!("GET", SENDER, "FetchChannelsSender", MessagingV2, messaging::senders::fetch),
    route!("POST", SENDER, "UpdateChannelsSender", MessagingV2, messaging::senders::update),
    route!("DELETE", SENDER, "DeleteChannelsSender", MessagingV2, messaging::senders::delete),
    route!("GET", ADDRESSES, "ListConfigurationAddress", ConversationsV1, conversations::addresses::list),
    route!("POST", ADDRESSES, "CreateConfigurationAddress", ConversationsV1, conversations::addresses::create),
    route!("GET", ADDRESS, "FetchConfigurationAddress", ConversationsV1, conversations::addresses::fetch),
    route!("POST", ADDRESS, "UpdateConfigurationAddress", ConversationsV1, conversations::addresses::update),
    route!("DELETE", ADDRESS, "DeleteConfigurationAddress", ConversationsV1, conversations::addresses::delete),
    route!("GET", CONTENTS, "ListContent", ContentV1, content::list),
    route!("POST", CONTENTS, "CreateContent", ContentV1, content::create),
    route!("GET", CONTENT, "FetchContent", ContentV1, content::fetch),
    route!("DELETE", CONTENT, "DeleteContent", ContentV1, content::delete),
    route!("GET", APPROVAL, "FetchApprovalFetch", ContentV1, content::fetch_approval),
    route!("POST", APPROVAL_SUBMIT, "CreateApprovalCreate", ContentV1, content::submit_approval),
    route!("POST", SECONDARY_TOKEN, "CreateSecondaryAuthToken", AccountsV1, accounts::auth_tokens::create_secondary),
    route!("DELETE", SECONDARY_TOKEN, "DeleteSecondaryAuthToken", AccountsV1, accounts::auth_tokens::delete_secondary),
    route!("POST", PROMOTE_TOKEN, "UpdateAuthTokenPromotion", AccountsV1, accounts::auth_tokens::promote),
    route!("GET", ALERTS, "ListAlert", MonitorV1, monitor::alerts::list),
    route!("GET", ALERT, "FetchAlert", MonitorV1, monitor::alerts::fetch),
];

/// Every Twilio operation the simulator implements.
pub fn implemented_operations() -> Vec<OperationInfo> {
    ROUTES
        .iter()
        .map(|r| OperationInfo {
            spec: r.api.spec(),
            method: r.method,
            path_template: r.template,
            operation_id: r.operation_id,
        })
        .collect()
}

/// Path parameters by template name.
#[derive(Debug, Default)]
pub(crate) struct PathParams(Vec<(String, String)>);

impl PathParams {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The result of routing a request.
pub(crate) enum RouteMatch {
    Found(&'static Route, PathParams),
    MethodNotAllowed,
    NotFound,
}

fn match_template(template: &str, path: &str) -> Option<PathParams> {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    if t.len() != p.len() {
        return None;
    }
    let mut params = Vec::new();
    for (ts, ps) in t.iter().zip(p.iter()) {
        match (ts.strip_prefix('{'), ts.find('}')) {
            (Some(_), Some(close)) => {
                let name = &ts[1..close];
                let suffix = &ts[close + 1..];
                let value = ps.strip_suffix(suffix)?;
                if value.is_empty() {
                    return None;
                }
                params.push((name.to_string(), value.to_string()));
            }
            _ if ts == ps => {}
            _ => return None,
        }
    }
    Some(PathParams(params))
}

/// Finds the route for `method` and `path`.
pub(crate) fn find(method: &str, path: &str) -> RouteMatch {
    let mut path_known = false;
    for route in ROUTES {
        if let Some(params) = match_template(route.template, path) {
            if route.method == method {
                return RouteMatch::Found(route, params);
            }
            path_known = true;
        }
    }
    if path_known {
        RouteMatch::MethodNotAllowed
    } else {
        RouteMatch::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_suffix_params() {
        match find("GET", "/2010-04-01/Accounts/AC1/IncomingPhoneNumbers/PN2.json") {
            RouteMatch::Found(r, p) => {
                assert_eq!(r.operation_id, "FetchIncomingPhoneNumber");
                assert_eq!(p.get("AccountSid"), Some("AC1"));
                assert_eq!(p.get("Sid"), Some("PN2"));
            }
            _ => panic!("no match"),
        }
        match find("GET", "/2010-04-01/Accounts/AC1.json") {
            RouteMatch::Found(r, p) => {
                assert_eq!(r.operation_id, "FetchAccount");
                assert_eq!(p.get("Sid"), Some("AC1"));
            }
            _ => panic!("no match"),
        }
        assert!(matches!(find("PUT", "/v2/Channels/Senders/XE1"), RouteMatch::MethodNotAllowed));
        assert!(matches!(find("GET", "/2010-04-01/Accounts/AC1/Calls.json"), RouteMatch::NotFound));
        assert!(matches!(find("GET", "/2010-04-01/Accounts/AC1"), RouteMatch::NotFound));
    }
}
