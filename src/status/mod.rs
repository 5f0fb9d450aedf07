//! `whatsapp-operator status NAMESPACE/NAME`: one channel on one screen, in the spirit of
//! `cmctl status`: its conditions, its routing at Twilio (expected and actual), the binding
//! that holds its number, the planned changes (`managementPolicy: Observe`), the last
//! confirmation message and its recent Events. Read-only, and from Kubernetes only: the
//! operator's status already holds what it verified at Twilio, so the command needs no Twilio
//! credentials. It uses the caller's kubeconfig (or in-cluster config) and permissions: `get`
//! on whatsappchannels and whatsappnumberbindings, `list` on events.

mod render;

use clap::Args;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use kube::ResourceExt;

use crate::api::{WhatsAppChannel, WhatsAppNumberBinding};
use crate::twilio::E164;

pub use render::{render, Snapshot, EVENTS_SHOWN};

/// Arguments of `whatsapp-operator status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The channel: `NAMESPACE/NAME`, or `NAME` in the namespace of `--namespace` (default: the
    /// kubeconfig context's namespace).
    pub channel: String,
    /// The namespace of a channel given as `NAME`.
    #[arg(short, long)]
    pub namespace: Option<String>,
}

/// Exit status: the channel was printed.
pub const EXIT_OK: u8 = 0;
/// Exit status: the cluster could not be read, or the channel does not exist.
pub const EXIT_FAILED: u8 = 1;
/// Exit status: the arguments are malformed.
pub const EXIT_USAGE: u8 = 2;

/// Splits `NAMESPACE/NAME` (or `NAME`, with `namespace` or `default_ns`).
pub fn target(arg: &str, namespace: Option<&str>, default_ns: &str) -> Result<(String, String), String> {
    let valid = |s: &str| !s.is_empty() && !s.contains('/');
    match arg.split_once('/') {
        Some((ns, name)) if valid(ns) && valid(name) => {
            if namespace.is_some_and(|n| n != ns) {
                return Err(format!("{arg} names namespace {ns}, --namespace another"));
            }
            Ok((ns.to_owned(), name.to_owned()))
        }
        None if valid(arg) => Ok((namespace.unwrap_or(default_ns).to_owned(), arg.to_owned())),
        _ => Err(format!("expected NAMESPACE/NAME or NAME, got {arg:?}")),
    }
}

/// Runs the command: prints the channel's screen to stdout; errors to stderr.
pub async fn execute(args: &StatusArgs) -> u8 {
    let config = match kube::Config::infer().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: no Kubernetes configuration (KUBECONFIG or in-cluster): {e}");
            return EXIT_FAILED;
        }
    };
    let (ns, name) = match target(&args.channel, args.namespace.as_deref(), &config.default_namespace) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let client = match kube::Client::try_from(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot build a Kubernetes client: {e}");
            return EXIT_FAILED;
        }
    };
    match snapshot(&client, &ns, &name).await {
        Ok(Some(s)) => {
            print!("{}", render(&s, &crate::controller::clock::now()));
            EXIT_OK
        }
        Ok(None) => {
            eprintln!("error: WhatsAppChannel {ns}/{name} not found");
            EXIT_FAILED
        }
        Err(e) => {
            eprintln!("error: cannot read WhatsAppChannel {ns}/{name}: {e}");
            EXIT_FAILED
        }
    }
}

/// Reads what the screen shows: the channel, the binding of its number, its Events. A binding
/// or Events the caller may not read are shown as unreadable, not as a failure.
pub async fn snapshot(client: &kube::Client, ns: &str, name: &str) -> Result<Option<Snapshot>, kube::Error> {
    let channels: Api<WhatsAppChannel> = Api::namespaced(client.clone(), ns);
    let Some(channel) = channels.get_opt(name).await? else {
        return Ok(None);
    };
    let binding_name = E164::parse(&channel.spec.phone_number)
        .ok()
        .map(|n| crate::binding::binding_name(&n, crate::binding::scope(&channel)));
    let binding = match &binding_name {
        Some(b) => {
            let bindings: Api<WhatsAppNumberBinding> = Api::all(client.clone());
            bindings.get_opt(b).await.map_err(|e| e.to_string())
        }
        None => Ok(None),
    };
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let mut selector = format!("involvedObject.kind=WhatsAppChannel,involvedObject.name={name}");
    if let Some(uid) = channel.uid() {
        selector.push_str(&format!(",involvedObject.uid={uid}"));
    }
    let events =
        events.list(&ListParams::default().fields(&selector)).await.map(|l| l.items).map_err(|e| e.to_string());
    Ok(Some(Snapshot { channel, binding_name, binding, events }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_is_namespace_slash_name_or_a_name() {
        assert_eq!(target("crm/sales", None, "default"), Ok(("crm".into(), "sales".into())));
        assert_eq!(target("sales", None, "default"), Ok(("default".into(), "sales".into())));
        assert_eq!(target("sales", Some("crm"), "default"), Ok(("crm".into(), "sales".into())));
        assert_eq!(target("crm/sales", Some("crm"), "default"), Ok(("crm".into(), "sales".into())));
        for bad in ["", "/", "crm/", "/sales", "a/b/c"] {
            assert!(target(bad, None, "default").is_err(), "{bad:?}");
        }
        assert!(target("crm/sales", Some("other"), "default").is_err());
    }
}
