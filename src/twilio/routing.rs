//! [`RoutingDirectory`]: what else than a number's own sender or incoming number may route its
//! inbound WhatsApp messages — the Messaging Service whose pool holds it, a Conversations
//! address configuration — listed once per account and interval and shared by every channel of
//! the account (single-flight, like [`super::SenderDirectory`]), so that the cost grows with the
//! account's services, not with its channels.
//!
//! One listing is `ListService` (pages of 1,000), each service's `ListChannelSender` and
//! `ListPhoneNumber`, and `ListConfigurationAddress?Type=whatsapp` (pages of 50): 2 + 2 × services
//! requests (more for pools over 1,000), whatever the number of channels. A listing that fails
//! in any part fails whole: never a partial answer taken as "not in a service".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::address::E164;
use super::client::TwilioClient;
use super::conversations::AddressConfiguration;
use super::directory::DEFAULT_IDLE_AFTER;
use super::error::TwilioError;
use super::secret::Credentials;
use super::services::{MessagingService, Pool};
use super::shared_listing::SharedListings;

/// A Messaging Service and how many senders and numbers its pools hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceFacts {
    /// The service.
    pub service: MessagingService,
    /// Senders (`XE…`) and numbers (`PN…`) in its pools: more than one means other numbers
    /// depend on its inbound URL.
    pub members: usize,
}

/// What may route one number besides its own carrier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingFacts {
    /// The Messaging Service whose pool holds the carrier (its sender or number SID).
    pub service: Option<ServiceFacts>,
    /// The number's WhatsApp address configuration with auto-creation enabled.
    pub address_configuration: Option<AddressConfiguration>,
}

#[derive(Clone, Debug, Default)]
struct Index {
    services: HashMap<String, ServiceFacts>,
    /// Pool member SID → service SID.
    member_of: HashMap<String, String>,
    /// Number (digits) → address configuration taking its inbound messages.
    addresses: HashMap<String, AddressConfiguration>,
}

/// The shared per-account routing listings. See the module documentation.
#[derive(Debug)]
pub struct RoutingDirectory {
    listings: SharedListings<Index>,
}

impl Default for RoutingDirectory {
    fn default() -> Self {
        Self::new(DEFAULT_IDLE_AFTER)
    }
}

impl RoutingDirectory {
    /// Empty; an account not looked up for `idle_after` is forgotten.
    pub fn new(idle_after: Duration) -> Self {
        Self { listings: SharedListings::new(idle_after) }
    }

    /// What may route `number`, whose carrier (its WhatsApp sender, else its incoming number) is
    /// `carrier_sid`, from a listing younger than `max_age` (else a new one).
    pub async fn facts(
        &self,
        twilio: &TwilioClient,
        creds: &Credentials,
        number: &E164,
        carrier_sid: &str,
        max_age: Duration,
    ) -> Result<RoutingFacts, TwilioError> {
        let index: Arc<Index> = self.listings.get(creds, max_age, || list(twilio, creds)).await?;
        let service = index.member_of.get(carrier_sid).and_then(|mg| index.services.get(mg)).cloned();
        let address_configuration = index.addresses.get(number.as_str()).cloned();
        Ok(RoutingFacts { service, address_configuration })
    }

    /// Records a service as Twilio returned it after the operator's write.
    pub fn service_written(&self, account_sid: &str, service: &MessagingService) {
        self.listings.modify(account_sid, |index| {
            if let Some(f) = index.services.get_mut(&service.sid) {
                f.service = service.clone();
            }
        });
    }

    /// Forgets the account's listings.
    pub fn invalidate(&self, account_sid: &str) {
        self.listings.invalidate(account_sid);
    }

    /// Listings started so far (each is 2 + 2 × services requests when it succeeds).
    pub fn listings(&self) -> u64 {
        self.listings.listings()
    }
}

async fn list(twilio: &TwilioClient, creds: &Credentials) -> Result<Index, TwilioError> {
    let mut index = Index::default();
    for service in twilio.list_messaging_services(creds).await? {
        let mut members = twilio.list_service_pool(creds, &service.sid, Pool::ChannelSenders).await?;
        members.extend(twilio.list_service_pool(creds, &service.sid, Pool::PhoneNumbers).await?);
        for m in &members {
            index.member_of.entry(m.clone()).or_insert_with(|| service.sid.clone());
        }
        let facts = ServiceFacts { members: members.len(), service };
        index.services.insert(facts.service.sid.clone(), facts);
    }
    for c in twilio.list_whatsapp_address_configurations(creds).await? {
        if let (true, Some(n)) = (c.takes_inbound(), c.e164()) {
            index.addresses.entry(n.as_str().to_owned()).or_insert(c);
        }
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twilio::secret::Secret;
    use crate::twilio::TwilioConfig;
    use twilio_sim::{FaultAction, FaultRule, SimConfig, SimHandle};

    const AC: &str = "AC0000000000000000000000000000a001";
    const TOKEN: &str = "routing-token";
    const MINUTE: Duration = Duration::from_secs(60);

    fn n(i: usize) -> E164 {
        E164::parse(&format!("+1555100{i:04}")).unwrap()
    }

    /// A strict simulator (every request and answer held to the specs): 20 senders, the first
    /// two in a shared service, the third alone in a deferring one, a number in a third
    /// service, and an address configuration for the fifth sender.
    async fn sim() -> (SimHandle, TwilioClient) {
        let sim = twilio_sim::Simulator::start(SimConfig { strict: true, ..SimConfig::default() }).await.unwrap();
        let mut yaml =
            format!("accounts:\n- sid: {AC}\n  friendly_name: r\n  auth_token: {TOKEN}\n  whatsapp_senders:\n");
        for i in 0..20 {
            yaml.push_str(&format!("  - sender_id: whatsapp:{}\n", n(i)));
        }
        yaml.push_str(&format!(
            "  incoming_phone_numbers:\n  - phone_number: \"{}\"\n  messaging_services:\n  - friendly_name: shared\n    inbound_request_url: https://shared.example\n    channel_senders: [\"{}\", \"{}\"]\n  - friendly_name: deferring\n    use_inbound_webhook_on_number: true\n    channel_senders: [\"{}\"]\n  - friendly_name: numbers\n    phone_numbers: [\"{}\"]\n  address_configurations:\n  - address: \"{}\"\n",
            n(99), n(0), n(1), n(2), n(99), n(4)
        ));
        sim.seed_yaml(&yaml).unwrap();
        let client = TwilioClient::new(TwilioConfig::with_single_base_url(sim.base_url())).unwrap();
        (sim, client)
    }

    fn creds() -> Credentials {
        Credentials::auth_token(AC, Secret::new(TOKEN))
    }

    fn sid_of(sim: &SimHandle, number: &E164) -> String {
        let acct = sim.account(AC).unwrap();
        acct.sender(&number.whatsapp())
            .map(|s| s.sid.clone())
            .unwrap_or_else(|| acct.number(number.as_str()).unwrap().sid.clone())
    }

    #[tokio::test]
    async fn one_listing_per_account_answers_every_channel() {
        let (sim, twilio) = sim().await;
        let dir = Arc::new(RoutingDirectory::default());
        let numbers: Vec<E164> = (0..20).map(n).chain([n(99)]).collect();
        let tasks: Vec<_> = numbers
            .iter()
            .map(|number| {
                let (dir, twilio, number, carrier) =
                    (dir.clone(), twilio.clone(), number.clone(), sid_of(&sim, number));
                tokio::spawn(async move { dir.facts(&twilio, &creds(), &number, &carrier, MINUTE).await })
            })
            .collect();
        let mut facts = Vec::new();
        for t in tasks {
            facts.push(t.await.unwrap().unwrap());
        }
        assert_eq!(dir.listings(), 1, "21 channels, one listing");
        let reqs = sim.requests();
        assert_eq!(reqs.len(), 1 + 2 * 3 + 1, "services, two pools per service, address configurations: {reqs:#?}");
        assert!(sim.violations().is_empty(), "{:#?}", sim.violations());
        let service =
            |i: usize| facts[i].service.as_ref().map(|f| (f.service.friendly_name.clone().unwrap(), f.members));
        assert_eq!(service(0), Some(("shared".into(), 2)));
        assert_eq!(service(1), Some(("shared".into(), 2)));
        assert_eq!(service(2), Some(("deferring".into(), 1)));
        assert_eq!(facts[2].service.as_ref().unwrap().service.use_inbound_webhook_on_number, Some(true));
        assert_eq!(service(3), None);
        assert_eq!(service(20), Some(("numbers".into(), 1)), "the incoming number's service");
        assert!(facts[4].address_configuration.as_ref().is_some_and(|c| c.sid.starts_with("IG")));
        assert!(facts.iter().enumerate().all(|(i, f)| (i == 4) == f.address_configuration.is_some()));

        // Within max_age: no request; the operator's own write is seen without listing.
        sim.clear_requests();
        let shared = facts[0].service.clone().unwrap().service;
        let written = twilio
            .update_service_inbound(&creds(), &shared.sid, "https://ours.example", crate::twilio::SmsMethod::Post)
            .await
            .unwrap();
        dir.service_written(AC, &written);
        let again = dir.facts(&twilio, &creds(), &n(1), &sid_of(&sim, &n(1)), MINUTE).await.unwrap();
        assert_eq!(again.service.unwrap().service.inbound_request_url.as_deref(), Some("https://ours.example"));
        assert_eq!(sim.requests().len(), 1, "only the write");
    }

    #[tokio::test]
    async fn a_transient_failure_fails_the_whole_listing_and_is_not_kept() {
        let (sim, twilio) = sim().await;
        sim.add_fault(FaultRule {
            times: Some(1),
            ..FaultRule::new(FaultAction::Error { status: 503, code: None, message: None })
                .path("^/v1/Configuration/Addresses$")
        })
        .unwrap();
        let dir = RoutingDirectory::default();
        let carrier = sid_of(&sim, &n(0));
        let e = dir.facts(&twilio, &creds(), &n(0), &carrier, MINUTE).await.unwrap_err();
        assert!(e.is_transient(), "{e}");
        let f = dir.facts(&twilio, &creds(), &n(0), &carrier, MINUTE).await.unwrap();
        assert!(f.service.is_some());
        assert_eq!(dir.listings(), 2);
    }
}
