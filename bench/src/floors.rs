//! The floors each figure is judged against, taken in the same run:
//! - **Twilio**: the fewest calls the fleet needs × the latency ÷ the in-flight limit, per
//!   account, accounts in parallel (computed from the simulator's settings);
//! - **API server**: a trivial client doing only the operator's writes of the cold start until
//!   all channels were Ready (the same creates, status writes and patches, in the same numbers)
//!   at the operator's concurrency, on look-alike objects the operator does not watch;
//! - **memory**: an empty kube-rs program holding the operator's three watches in reflector
//!   stores (a child process: `whatsapp-bench memory-floor`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event, ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use whatsapp_operator::api::{WhatsAppChannel, WhatsAppNumberBinding};

use crate::fleet::{self, Fleet};
use crate::Result;

/// The group of the look-alike kinds.
pub const FLOOR_GROUP: &str = "floor.bench.whatsapp-operator.io";

/// The Twilio floor of a cold start: seconds, and the fewest calls per channel.
pub fn twilio_floor(fleet: &Fleet, latency: Duration, in_flight: usize) -> (f64, f64) {
    let mut worst: f64 = 0.0;
    let mut calls_total = 0usize;
    for a in &fleet.accounts {
        let channels: Vec<_> = fleet.of_account(a.index).collect();
        let confirmations = channels.iter().filter(|c| c.confirmation.is_some()).count();
        // One listing page per 1,000 senders, one verification, one webhook write per channel,
        // a send and one status read per confirmation.
        let calls = channels.len().div_ceil(1000) + 1 + channels.len() + 2 * confirmations;
        calls_total += calls;
        worst = worst.max(calls as f64 * latency.as_secs_f64() / in_flight as f64);
    }
    (worst, calls_total as f64 / fleet.channels.len().max(1) as f64)
}

/// The look-alike CRDs: the operator's, renamed into [`FLOOR_GROUP`] (same schema, so the API
/// server validates and stores the same bytes).
pub fn floor_crds(operator_crds: &str) -> Result<String> {
    use serde::Deserialize;
    let mut out = String::new();
    for doc in serde_yaml::Deserializer::from_str(operator_crds) {
        let mut v = serde_yaml::Value::deserialize(doc)?;
        if v.is_null() {
            continue;
        }
        let kind = v["spec"]["names"]["kind"].as_str().unwrap_or_default().to_owned();
        let floor_kind = format!("Floor{}", kind.trim_start_matches("WhatsApp"));
        let plural = format!("{}s", floor_kind.to_lowercase());
        v["metadata"]["name"] = format!("{plural}.{FLOOR_GROUP}").into();
        v["spec"]["group"] = FLOOR_GROUP.into();
        v["spec"]["names"] = serde_yaml::to_value(json!({
            "kind": floor_kind, "listKind": format!("{floor_kind}List"),
            "plural": plural, "singular": floor_kind.to_lowercase(),
        }))?;
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&v)?);
    }
    Ok(out)
}

fn floor_api(client: &Client, kind: &str, ns: Option<&str>) -> Api<DynamicObject> {
    let plural = format!("{}s", kind.to_lowercase());
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(FLOOR_GROUP, "v1alpha1", kind), &plural);
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

fn floor_ns(ns: &str) -> String {
    format!("{ns}-floor")
}

/// The API-server floor: creates look-alike channels (not timed), then replays `writes` (the
/// operator's cold-start writes by `verb resource`) spread evenly over them at `concurrency`,
/// timed; `status` is a Ready channel's status, the size the operator writes.
pub async fn api_floor(
    client: &Client,
    fleet: &Fleet,
    writes: &BTreeMap<String, u64>,
    status: &serde_json::Value,
    concurrency: usize,
) -> Result<f64> {
    let n = fleet.channels.len();
    for a in &fleet.accounts {
        fleet::create_namespace(client, &floor_ns(&a.namespace)).await?;
    }
    futures::stream::iter(fleet.channels.iter().map(|c| {
        let client = client.clone();
        let sid = fleet.accounts[c.account].sid.clone();
        async move {
            let mut v = fleet::channel_json(c, &sid, "https://floor.invalid");
            v["apiVersion"] = json!(format!("{FLOOR_GROUP}/v1alpha1"));
            v["kind"] = json!("FloorChannel");
            v["metadata"]["namespace"] = json!(floor_ns(&c.namespace));
            let obj: DynamicObject = serde_json::from_value(v)?;
            floor_api(&client, "FloorChannel", Some(&floor_ns(&c.namespace)))
                .create(&PostParams::default(), &obj)
                .await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }
    }))
    .buffer_unordered(fleet::CREATE_CONCURRENCY)
    .try_collect::<Vec<()>>()
    .await?;

    // Each write kind's total, dealt out channel by channel.
    let mut plan: Vec<Vec<String>> = vec![Vec::new(); n];
    let mut i = 0;
    for (kind, count) in writes {
        if !crate::operator::is_write(kind) {
            continue;
        }
        for _ in 0..*count {
            plan[i % n].push(kind.clone());
            i += 1;
        }
    }
    for ops in &mut plan {
        // Creates before patches (a patch of an Event needs the Event).
        ops.sort_by_key(|k| !k.starts_with("create"));
    }
    let started = Instant::now();
    futures::stream::iter(fleet.channels.iter().zip(plan).map(|(c, ops)| {
        let client = client.clone();
        let status = status.clone();
        let sid = fleet.accounts[c.account].sid.clone();
        async move { replay(&client, c, &sid, &ops, &status).await }
    }))
    .buffer_unordered(concurrency.max(1))
    .try_collect::<Vec<()>>()
    .await?;
    // The look-alikes stay (the operator does not watch them; the control plane goes with the run).
    Ok(started.elapsed().as_secs_f64())
}

/// One look-alike channel's share of the writes.
async fn replay(
    client: &Client,
    c: &fleet::Channel,
    sid: &str,
    ops: &[String],
    status: &serde_json::Value,
) -> Result<()> {
    let ns = floor_ns(&c.namespace);
    let channels = floor_api(client, "FloorChannel", Some(&ns));
    let mut event: Option<String> = None;
    for (k, op) in ops.iter().enumerate() {
        match op.as_str() {
            "create whatsappnumberbindings" => {
                let mut v = fleet::channel_json(c, sid, "https://floor.invalid");
                v["metadata"]["uid"] = json!(format!("floor-{}-{}", c.namespace, c.name));
                let ch: WhatsAppChannel = serde_json::from_value(v)?;
                let number = whatsapp_operator::twilio::E164::parse(&c.number)?;
                let Some(b) = whatsapp_operator::binding::binding_for(&ch, &number) else {
                    return Err("no binding for a floor channel".into());
                };
                let mut v = serde_json::to_value(&b)?;
                v["apiVersion"] = json!(format!("{FLOOR_GROUP}/v1alpha1"));
                v["kind"] = json!("FloorNumberBinding");
                v["metadata"]["name"] = json!(format!("floor-{}-{k}", b.name_any()));
                let obj: DynamicObject = serde_json::from_value(v)?;
                floor_api(client, "FloorNumberBinding", None).create(&PostParams::default(), &obj).await?;
            }
            "create events" => {
                let ev = floor_event(&ns, &c.name, k);
                let made = Api::<Event>::namespaced(client.clone(), &ns).create(&PostParams::default(), &ev).await?;
                event = made.metadata.name;
            }
            "patch events" if event.is_some() => {
                let name = event.clone().unwrap_or_default();
                let patch = json!({"count": k + 2, "lastTimestamp": Time(k8s_openapi::jiff::Timestamp::now())});
                Api::<Event>::namespaced(client.clone(), &ns)
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            "patch whatsappchannels/status" => {
                let mut st = status.clone();
                st["verifiedInputs"] = json!(format!("floor-{k}"));
                let patch =
                    json!({"apiVersion": format!("{FLOOR_GROUP}/v1alpha1"), "kind": "FloorChannel", "status": st});
                channels
                    .patch_status(&c.name, &PatchParams::apply("whatsapp-operator").force(), &Patch::Apply(&patch))
                    .await?;
            }
            // Any other write (the finalizer, a Secret's protection, …): a metadata patch of the
            // same size class.
            _ => {
                let patch = json!({"metadata": {"annotations": {"floor.bench/write": k.to_string()}}});
                channels.patch(&c.name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            }
        }
    }
    Ok(())
}

fn floor_event(ns: &str, name: &str, k: usize) -> Event {
    let now = k8s_openapi::jiff::Timestamp::now();
    Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}.")),
            namespace: Some(ns.to_owned()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some(format!("{FLOOR_GROUP}/v1alpha1")),
            kind: Some("FloorChannel".into()),
            name: Some(name.to_owned()),
            namespace: Some(ns.to_owned()),
            ..Default::default()
        },
        reason: Some("Bound".into()),
        message: Some(format!(
            "Floor write {k}: a message of the size the operator writes, naming a number and an instance"
        )),
        type_: Some("Normal".into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        action: Some("Reconcile".into()),
        reporting_component: Some("whatsapp-bench".into()),
        reporting_instance: Some("floor".into()),
        count: Some(1),
        ..Default::default()
    }
}

/// Runs `whatsapp-bench memory-floor` as a child and returns its peak RSS, MiB.
pub fn memory_floor() -> Result<f64> {
    let out = std::process::Command::new(std::env::current_exe()?).arg("memory-floor").output()?;
    if !out.status.success() {
        return Err(format!("memory-floor failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let bytes: u64 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
    Ok(bytes as f64 / (1024.0 * 1024.0))
}

/// The child: three reflector stores over the operator's watches, nothing else; prints the
/// process's peak RSS in bytes once they have listed and `settle` has passed.
pub async fn memory_floor_child(settle: Duration) -> Result<()> {
    let client = Client::try_default().await?;
    let (channels, cw) = reflector::store::<WhatsAppChannel>();
    let (bindings, bw) = reflector::store::<WhatsAppNumberBinding>();
    let (secrets, sw) = reflector::store::<PartialObjectMeta<Secret>>();
    let c = watcher(Api::<WhatsAppChannel>::all(client.clone()), watcher::Config::default())
        .reflect(cw)
        .applied_objects()
        .for_each(|_| async {});
    let b = watcher(Api::<WhatsAppNumberBinding>::all(client.clone()), watcher::Config::default())
        .reflect(bw)
        .applied_objects()
        .for_each(|_| async {});
    let s = watcher(Api::<PartialObjectMeta<Secret>>::all(client.clone()), watcher::Config::default())
        .reflect(sw)
        .applied_objects()
        .for_each(|_| async {});
    let ready = async {
        channels.wait_until_ready().await?;
        bindings.wait_until_ready().await?;
        secrets.wait_until_ready().await?;
        tokio::time::sleep(settle).await;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    };
    tokio::select! {
        r = ready => r?,
        _ = c => return Err("the channel watch ended".into()),
        _ = b => return Err("the binding watch ended".into()),
        _ = s => return Err("the Secret watch ended".into()),
    }
    let stats = crate::operator::proc_stats(std::process::id())?;
    eprintln!(
        "memory floor: {} channels, {} bindings, {} Secrets",
        channels.state().len(),
        bindings.state().len(),
        secrets.state().len()
    );
    println!("{}", stats.peak_rss);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_twilio_floor_counts_the_fewest_calls() {
        let f = Fleet::new(1000, 10);
        // Per account: 100 channels, 50 confirmations: 1 page + 1 verification + 100 writes + 100.
        let (secs, per_channel) = twilio_floor(&f, Duration::from_millis(100), 100);
        assert!((secs - 202.0 * 0.1 / 100.0).abs() < 1e-9, "{secs}");
        assert!((per_channel - 2.02).abs() < 1e-9, "{per_channel}");
    }

    #[test]
    fn floor_crds_rename_kinds_but_keep_the_schema() {
        let crds = whatsapp_operator::crdgen::crds_yaml().expect("crds");
        let floor = floor_crds(&crds).expect("floor");
        assert!(floor.contains("name: floorchannels.floor.bench.whatsapp-operator.io"));
        assert!(floor.contains("kind: FloorNumberBinding"));
        assert!(!floor.contains("group: whatsapp-operator.io"));
        assert!(floor.contains("phoneNumber"));
    }
}
