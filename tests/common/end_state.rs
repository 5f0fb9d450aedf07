//! A fleet of channels over one simulated Twilio account, and the end-state checks of the fault
//! and crash tests: every channel Ready, exactly one confirmation message per channel, exactly one
//! binding per number held by its channel, and no webhook pointing anywhere but its holder's
//! receiver.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use twilio_sim::SimHandle;
use whatsapp_operator::api::{WhatsAppChannel, WhatsAppNumberBinding};

use super::operator::{random_account_sid, random_number, FIXTURE_TOKEN};

/// The receiver of channel `ns/name` (distinct per channel, so a webhook says whose it is).
pub fn receiver(ns: &str, name: &str) -> String {
    format!("https://{name}.{ns}.example.com/api/webhook/LeadGen/whatsapp")
}

/// One channel of a fleet.
#[derive(Clone, Debug)]
pub struct Member {
    /// Its namespace.
    pub ns: String,
    /// Its name.
    pub name: String,
    /// Its number (E.164).
    pub number: String,
}

/// A simulated account with one online sender per number, and its channels' specs.
pub struct Fleet {
    /// The account SID.
    pub account: String,
    /// The numbers, in order.
    pub numbers: Vec<String>,
}

impl Fleet {
    /// Seeds an account ([`FIXTURE_TOKEN`]) with `n` senders on `sim`.
    pub fn seed(sim: &SimHandle, n: usize) -> Self {
        let account = random_account_sid();
        let mut numbers: Vec<String> = Vec::new();
        while numbers.len() < n {
            let number = random_number();
            if !numbers.contains(&number) {
                numbers.push(number);
            }
        }
        let senders: String = numbers.iter().map(|n| format!("  - sender_id: whatsapp:{n}\n")).collect();
        sim.seed_yaml(&format!(
            "accounts:\n- sid: {account}\n  friendly_name: prod\n  auth_token: {FIXTURE_TOKEN}\n  whatsapp_senders:\n{senders}"
        ))
        .expect("seed the fleet's account");
        Self { account, numbers }
    }

    /// The spec of channel `ns/name` on `number` (Secret `twilio`, a confirmation message).
    pub fn spec(&self, ns: &str, name: &str, number: &str) -> serde_json::Value {
        json!({
            "phoneNumber": number,
            "instance": "crm-prod",
            "confirmationPhoneNumber": "+14155550123",
            "twilio": {"accountSid": self.account, "credentialsSecretRef": {"name": "twilio"}},
            "webhook": {"url": receiver(ns, name)},
            "queue": "sales",
        })
    }
}

/// Twilio writes the simulator answered with success: confirmation messages per sending number,
/// webhook writes per sender.
#[derive(Debug, Default, PartialEq)]
pub struct Writes {
    /// Messages per `From` number (E.164).
    pub messages: BTreeMap<String, usize>,
    /// Webhook writes per sender path.
    pub webhooks: BTreeMap<String, usize>,
    /// Every successful write, as `(time, method path)`.
    pub all: Vec<(chrono::DateTime<chrono::Utc>, String)>,
}

impl Writes {
    /// The successful writes in the simulator's log.
    pub fn of(sim: &SimHandle) -> Self {
        let mut w = Writes::default();
        for r in sim.requests() {
            if !r.is_write() || r.status.is_none_or(|s| s >= 300) {
                continue;
            }
            if r.path.ends_with("/Messages.json") {
                let from = r.form_value("From").unwrap_or_default().trim_start_matches("whatsapp:").to_owned();
                *w.messages.entry(from).or_insert(0) += 1;
            } else if r.path.starts_with("/v2/Channels/Senders/XE") {
                *w.webhooks.entry(r.path.clone()).or_insert(0) += 1;
            }
            w.all.push((r.time, format!("{} {}", r.method, r.path)));
        }
        w
    }

    /// The writes made at or after `t`.
    pub fn since(&self, t: chrono::DateTime<chrono::Utc>) -> Vec<String> {
        self.all.iter().filter(|(at, _)| *at >= t).map(|(_, w)| w.clone()).collect()
    }
}

/// Whether a channel is Ready for its current generation with its confirmation sent.
pub fn converged(ch: &WhatsAppChannel) -> bool {
    super::operator::current(ch, "Ready").is_some_and(|c| c.status == "True")
        && super::operator::current(ch, "ConfirmationSent").is_some_and(|c| c.status == "True")
}

/// Waits (at most `timeout`) until every member has [`converged`]; fails naming those that did
/// not, with their conditions.
pub async fn wait_converged(client: &Client, members: &[Member], timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut waiting = Vec::new();
        for ns in namespaces(members) {
            let api: Api<WhatsAppChannel> = Api::namespaced(client.clone(), &ns);
            let Ok(list) = api.list(&ListParams::default()).await else {
                waiting.push(format!("{ns}: cannot list"));
                continue;
            };
            for m in members.iter().filter(|m| m.ns == ns) {
                match list.items.iter().find(|c| c.name_any() == m.name) {
                    Some(ch) if converged(ch) => {}
                    Some(ch) => waiting.push(format!(
                        "{ns}/{}: {:?}",
                        m.name,
                        ch.status.as_ref().map(|s| s
                            .conditions
                            .iter()
                            .map(|c| format!("{}={} {} {}", c.type_, c.status, c.reason, c.message))
                            .collect::<Vec<_>>())
                    )),
                    None => waiting.push(format!("{ns}/{}: missing", m.name)),
                }
            }
        }
        if waiting.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {} channels not Ready after {timeout:?}:\n{}",
            waiting.len(),
            members.len(),
            waiting.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn namespaces(members: &[Member]) -> Vec<String> {
    let mut ns: Vec<String> = members.iter().map(|m| m.ns.clone()).collect();
    ns.sort();
    ns.dedup();
    ns
}

/// The end state every fault and crash must leave: exactly one confirmation message per channel
/// (none for numbers no channel holds), exactly one binding per number naming its channel, and
/// every sender's webhook at its holder's receiver (or untouched when nobody holds it).
pub async fn assert_exactly_once(client: &Client, sim: &SimHandle, fleet: &Fleet, members: &[Member]) {
    let writes = Writes::of(sim);
    for m in members {
        assert_eq!(
            writes.messages.get(&m.number).copied().unwrap_or(0),
            1,
            "{}/{}: exactly one confirmation message from {}: {:?}",
            m.ns,
            m.name,
            m.number,
            writes.messages
        );
    }
    assert_eq!(
        writes.messages.len(),
        members.len(),
        "no message from a number no channel holds: {:?}",
        writes.messages
    );

    let bindings: Api<WhatsAppNumberBinding> = Api::all(client.clone());
    let bindings = bindings.list(&ListParams::default()).await.expect("list bindings").items;
    for m in members {
        let api: Api<WhatsAppChannel> = Api::namespaced(client.clone(), &m.ns);
        let ch = api.get(&m.name).await.expect("get channel");
        let held: Vec<&WhatsAppNumberBinding> = bindings.iter().filter(|b| b.spec.phone_number == m.number).collect();
        assert_eq!(held.len(), 1, "{}/{}: exactly one binding for {}: {held:#?}", m.ns, m.name, m.number);
        let r = &held[0].spec.channel_ref;
        assert_eq!(
            (r.namespace.as_str(), r.name.as_str(), Some(r.uid.as_str())),
            (m.ns.as_str(), m.name.as_str(), ch.uid().as_deref()),
            "the binding of {} names its channel",
            m.number
        );
    }

    let state = sim.state();
    let account = state.account(&fleet.account).expect("the fleet's account");
    for sender in &account.senders {
        let number = sender.sender_id.trim_start_matches("whatsapp:");
        let url = sender.webhook.callback_url.as_deref().map(super::unmarked);
        let url = url.as_deref();
        match members.iter().find(|m| m.number == number) {
            Some(m) => assert_eq!(
                url,
                Some(receiver(&m.ns, &m.name).as_str()),
                "the webhook of {number} points at its holder {}/{}",
                m.ns,
                m.name
            ),
            None => assert_eq!(url, None, "the webhook of {number}, which no channel holds, is untouched"),
        }
    }
}
