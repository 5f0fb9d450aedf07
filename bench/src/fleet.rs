//! The fleet: N channels over the accounts (one namespace and one credentials Secret per
//! account), each number an ONLINE WhatsApp sender of its account at the simulator, half of the
//! channels with a confirmation number; and the cluster's unrelated Secrets.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::Client;
use serde_json::json;
use twilio_sim::SimHandle;
use whatsapp_operator::api::WhatsAppChannel;

use crate::Result;

/// How many objects the bench creates at once.
pub const CREATE_CONCURRENCY: usize = 32;
/// The name of every credentials Secret (one per account namespace).
pub const CREDENTIALS_SECRET: &str = "twilio";

/// One Twilio account of the fleet.
#[derive(Clone, Debug)]
pub struct Account {
    /// Position, from 0.
    pub index: usize,
    /// `AC…`.
    pub sid: String,
    /// The auth token (the simulator's and the Secret's).
    pub token: String,
    /// The namespace of its channels and Secret.
    pub namespace: String,
}

/// One channel of the fleet.
#[derive(Clone, Debug)]
pub struct Channel {
    /// The account's position.
    pub account: usize,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// E.164.
    pub number: String,
    /// The confirmation number, for every other channel.
    pub confirmation: Option<String>,
}

/// The whole fleet.
#[derive(Clone, Debug)]
pub struct Fleet {
    /// The accounts.
    pub accounts: Vec<Account>,
    /// The channels, account by account.
    pub channels: Vec<Channel>,
}

impl Fleet {
    /// `n` channels spread evenly over `accounts` accounts.
    pub fn new(n: usize, accounts: usize) -> Self {
        let accounts: Vec<Account> = (0..accounts)
            .map(|i| Account {
                index: i,
                sid: format!("AC{:032x}", 0xbe0c_0000_u128 + i as u128),
                token: format!("{:032x}", 0xfeed_0000_0000_u128 + i as u128),
                namespace: format!("bench-a{i}"),
            })
            .collect();
        let channels = (0..n)
            .map(|j| {
                let a = j % accounts.len();
                // Every other channel of each account confirms.
                let confirms = (j / accounts.len()).is_multiple_of(2);
                Channel {
                    account: a,
                    namespace: accounts[a].namespace.clone(),
                    name: format!("ch-{j:05}"),
                    number: format!("+1555{a}{j:06}"),
                    confirmation: confirms.then(|| format!("+1777{a}{j:06}")),
                }
            })
            .collect();
        Self { accounts, channels }
    }

    /// The channels of account `a`.
    pub fn of_account(&self, a: usize) -> impl Iterator<Item = &Channel> {
        self.channels.iter().filter(move |c| c.account == a)
    }

    /// Senders per account (the most of any account).
    pub fn senders_per_account(&self) -> usize {
        (0..self.accounts.len()).map(|a| self.of_account(a).count()).max().unwrap_or(0)
    }

    /// The simulator's state: each account with its numbers as ONLINE WhatsApp senders, no
    /// webhook set (every channel needs one webhook write on its first pass).
    pub fn seed(&self, sim: &SimHandle) -> Result<()> {
        let accounts: Vec<_> = self
            .accounts
            .iter()
            .map(|a| {
                let senders: Vec<_> = self
                    .of_account(a.index)
                    .map(|c| json!({"sender_id": format!("whatsapp:{}", c.number), "status": "ONLINE"}))
                    .collect();
                json!({
                    "friendly_name": format!("bench-{}", a.index),
                    "sid": a.sid,
                    "auth_token": a.token,
                    "whatsapp_senders": senders,
                })
            })
            .collect();
        let seed: twilio_sim::SeedFile = serde_json::from_value(json!({ "accounts": accounts }))?;
        sim.seed(&seed)?;
        Ok(())
    }

    /// The namespaces and credentials Secrets.
    pub async fn create_namespaces(&self, client: &Client) -> Result<()> {
        for a in &self.accounts {
            create_namespace(client, &a.namespace).await?;
            let secret: Secret = serde_json::from_value(json!({
                "metadata": {"name": CREDENTIALS_SECRET, "namespace": a.namespace},
                "stringData": {"authToken": a.token},
            }))?;
            Api::<Secret>::namespaced(client.clone(), &a.namespace).create(&PostParams::default(), &secret).await?;
        }
        Ok(())
    }

    /// The channels, `CREATE_CONCURRENCY` at a time, receiving at `receiver`.
    pub async fn create_channels(&self, client: &Client, receiver: &str) -> Result<Duration> {
        let started = Instant::now();
        futures::stream::iter(self.channels.iter().map(|c| {
            let client = client.clone();
            let sid = self.accounts[c.account].sid.clone();
            async move {
                let ch: WhatsAppChannel = serde_json::from_value(channel_json(c, &sid, receiver))?;
                Api::<WhatsAppChannel>::namespaced(client, &c.namespace).create(&PostParams::default(), &ch).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            }
        }))
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
        Ok(started.elapsed())
    }
}

/// A channel's manifest.
pub fn channel_json(c: &Channel, account_sid: &str, receiver: &str) -> serde_json::Value {
    let mut spec = json!({
        "phoneNumber": c.number,
        "instance": format!("crm-{}", c.account),
        "twilio": {"accountSid": account_sid, "credentialsSecretRef": {"name": CREDENTIALS_SECRET}},
        "webhook": {"url": format!("{receiver}/{}/{}", c.namespace, c.name)},
        "active": true,
        "queue": "support",
        "language": "en",
    });
    if let Some(to) = &c.confirmation {
        spec["confirmationPhoneNumber"] = json!(to);
    }
    json!({
        "apiVersion": "whatsapp-operator.io/v1alpha1",
        "kind": "WhatsAppChannel",
        "metadata": {"name": c.name, "namespace": c.namespace},
        "spec": spec,
    })
}

/// Creates namespace `name` (an existing one is fine).
pub async fn create_namespace(client: &Client, name: &str) -> Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    match Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `count` unrelated Secrets of 4 KiB each, spread over the fleet's namespaces, created the way
/// most clusters get them: client-side `kubectl apply` (so each carries its data a second time
/// in `kubectl.kubernetes.io/last-applied-configuration`). Four kubectl processes at a time.
pub fn create_unrelated_secrets(fleet: &Fleet, count: usize, kubectl: &Path, dir: &Path) -> Result<Duration> {
    let started = Instant::now();
    std::fs::create_dir_all(dir)?;
    // 4 KiB of data: 4,096 bytes, base64 in the manifest.
    let blob = base64_of(&(0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<_>>());
    let per_file = 250;
    let mut files = Vec::new();
    for (f, start) in (0..count).step_by(per_file).enumerate() {
        let mut text = String::new();
        for i in start..(start + per_file).min(count) {
            let ns = &fleet.accounts[i % fleet.accounts.len()].namespace;
            text.push_str(&format!(
                "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: unrelated-{i:05}\n  namespace: {ns}\n  labels:\n    app: unrelated\ntype: Opaque\ndata:\n  blob: {blob}\n"
            ));
        }
        let path = dir.join(format!("unrelated-{f:03}.yaml"));
        std::fs::write(&path, text)?;
        files.push(path);
    }
    for chunk in files.chunks(4) {
        let children: Vec<_> = chunk
            .iter()
            .map(|p| {
                std::process::Command::new(kubectl)
                    .args(["apply", "-f"])
                    .arg(p)
                    .stdout(std::process::Stdio::null())
                    .spawn()
            })
            .collect::<std::io::Result<_>>()?;
        for mut c in children {
            let status = c.wait()?;
            if !status.success() {
                return Err(format!("kubectl apply of the unrelated Secrets failed: {status}").into());
            }
        }
    }
    Ok(started.elapsed())
}

fn base64_of(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(T[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Installs the CRDs in `yaml` (multi-document) and waits until each is Established.
pub async fn install_crds(client: &Client, yaml: &str) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_yaml::Value::deserialize(doc)?;
        if value.is_null() {
            continue;
        }
        let crd: CustomResourceDefinition = serde_yaml::from_value(value)?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        match api.create(&PostParams::default(), &crd).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        names.push(name);
    }
    for name in names {
        let cond = kube::runtime::conditions::is_crd_established();
        tokio::time::timeout(Duration::from_secs(60), kube::runtime::wait::await_condition(api.clone(), &name, cond))
            .await
            .map_err(|_| format!("CRD {name} not Established within 60 s"))??;
    }
    Ok(())
}

use serde::Deserialize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64_of(b"Man"), "TWFu");
        assert_eq!(base64_of(b"Ma"), "TWE=");
        assert_eq!(base64_of(b"M"), "TQ==");
    }

    #[test]
    fn a_fleet_spreads_over_accounts_and_half_confirm() {
        let f = Fleet::new(100, 10);
        assert_eq!(f.senders_per_account(), 10);
        assert_eq!(f.channels.iter().filter(|c| c.confirmation.is_some()).count(), 50);
        assert_eq!(f.of_account(3).filter(|c| c.confirmation.is_some()).count(), 5);
        let numbers: std::collections::HashSet<_> = f.channels.iter().map(|c| &c.number).collect();
        assert_eq!(numbers.len(), 100);
    }
}
