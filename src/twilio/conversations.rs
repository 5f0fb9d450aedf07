//! Conversations address configurations (Conversations v1), read only: an address whose inbound
//! messages Conversations takes (auto-creation) is routed neither by its sender nor by a
//! Messaging Service.

use std::ops::ControlFlow;

use serde::Deserialize;

use super::address::E164;
use super::client::{Api, Paged, TwilioClient};
use super::error::TwilioError;
use super::secret::Credentials;
use super::wire;

/// The largest page of `ListConfigurationAddress` (spec: maximum 50).
pub const ADDRESSES_PAGE_SIZE: u32 = 50;

/// `auto_creation` of an address configuration (the fields routing depends on).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct AutoCreation {
    /// Whether inbound messages to the address create conversations.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `webhook`, `studio` or `default`.
    #[serde(default, rename = "type", deserialize_with = "wire::opt_string")]
    pub type_: Option<String>,
    /// `webhook` type: the URL Conversations calls.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub webhook_url: Option<String>,
    /// `webhook` type: its method.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub webhook_method: Option<String>,
}

/// An address configuration (`conversations.v1.configuration_address`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct AddressConfiguration {
    /// `IG…`.
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub sid: String,
    /// `whatsapp`, `sms`, …
    #[serde(default, rename = "type", deserialize_with = "wire::opt_string")]
    pub type_: Option<String>,
    /// `whatsapp:+E164` (or a bare E.164).
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub address: Option<String>,
    /// What inbound messages do.
    #[serde(default)]
    pub auto_creation: Option<AutoCreation>,
}

impl AddressConfiguration {
    /// The number it configures, when its address is one.
    pub fn e164(&self) -> Option<E164> {
        let a = self.address.as_deref()?;
        E164::parse(a.strip_prefix("whatsapp:").unwrap_or(a)).ok()
    }

    /// Whether it takes inbound messages (auto-creation enabled).
    pub fn takes_inbound(&self) -> bool {
        self.auto_creation.as_ref().and_then(|a| a.enabled).unwrap_or(false)
    }
}

#[derive(Deserialize)]
struct PageMeta {
    #[serde(default, deserialize_with = "wire::opt_string")]
    next_page_url: Option<String>,
}

#[derive(Deserialize)]
struct AddressPage {
    #[serde(default, deserialize_with = "wire::vec_or_null")]
    address_configurations: Vec<AddressConfiguration>,
    #[serde(default)]
    meta: Option<PageMeta>,
}

impl Paged for AddressPage {
    type Item = AddressConfiguration;
    fn next_link(&self) -> Option<&str> {
        self.meta.as_ref()?.next_page_url.as_deref()
    }
    fn into_items(self) -> Vec<AddressConfiguration> {
        self.address_configurations
    }
}

impl TwilioClient {
    /// The account's WhatsApp address configurations: `GET /v1/Configuration/Addresses?Type=whatsapp`,
    /// all pages of 50.
    pub async fn list_whatsapp_address_configurations(
        &self,
        creds: &Credentials,
    ) -> Result<Vec<AddressConfiguration>, TwilioError> {
        let template = "/v1/Configuration/Addresses";
        let first = self.url(
            Api::Conversations,
            template,
            &[("Type", "whatsapp".to_owned()), ("PageSize", ADDRESSES_PAGE_SIZE.to_string())],
        )?;
        let mut all = Vec::new();
        self.paginate::<AddressPage, _>(
            Api::Conversations,
            "list_address_configurations",
            template,
            creds,
            first,
            |p| {
                all.extend(p);
                ControlFlow::Continue(())
            },
        )
        .await?;
        Ok(all)
    }
}
