//! The Helm chart's RBAC, proven against a real API server (RBAC enforced): `helm template`
//! renders the chart, its ServiceAccount, Roles, ClusterRoles and bindings are applied, and the
//! operator binary runs with that ServiceAccount's token (TokenRequest API), the rendered
//! Deployment's arguments and environment, against the strict Twilio simulator.
//!
//! - The rules suffice: with all of them a full reconcile (lease, finalizers, claim, Ready,
//!   confirmation, Events, Secret protection, a Secret and an instance change, a repeated Event, a
//!   stale binding taken over) and a deletion (webhook restored, finalizers gone, bindings and
//!   Secrets released) succeed, with one namespace watched (`watchNamespaces`, the table's
//!   baseline) and cluster-wide (the default chart, on a control plane of its own so that the
//!   operator sees no other test's channels).
//! - Every rule is needed: with any single (resource, verb) removed from the chart's roles, a
//!   named step of that scenario fails ([`NEEDED_FOR`]). A rule the chart grows without an entry
//!   there, or an entry whose rule is gone, fails the test.
//! - With `watchNamespaces`, no ClusterRole grants Secrets and the token cannot read them
//!   elsewhere.

mod common;

use std::collections::BTreeSet;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use serde::Deserialize;
use serde_json::{json, Value};
use whatsapp_operator::api::{WhatsAppChannel, WhatsAppNumberBinding};
use whatsapp_operator::controller::protection::SECRET_FINALIZER;
use whatsapp_operator::controller::FINALIZER;

use common::control_plane::ControlPlane;
use common::operator::{random_account_sid, random_number, start_sim, StrictSim};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/whatsapp-operator");
const MANAGER: &str = "whatsapp-operator-chart-test";
const TOKEN: &str = "tok-0123456789abcdef0123456789ab";
const RECEIVER: &str = "https://receiver.example.com/api/webhook/LeadGen/whatsapp";
/// The webhook A's number had before the operator: restored on deletion.
const PREVIOUS: &str = "https://old-crm.example.com/hook";
const CONFIRM_TO: &str = "+14155550123";
/// How long one step may take before it counts as failed.
const STEP: Duration = Duration::from_secs(20);
/// Table cases running at once (each an operator process, a simulator, a namespace).
const PARALLEL: usize = 4;

/// For each (API group, resource, verb) the chart grants: the first step of
/// [`World::scenario`] that fails without it (every step before it passes).
const NEEDED_FOR: &[(&str, &str, &str, &str)] = &[
    // Leader election: the Lease is read, created once, then renewed (replace).
    ("coordination.k8s.io", "leases", "get", "lease-acquired"),
    ("coordination.k8s.io", "leases", "create", "lease-acquired"),
    ("coordination.k8s.io", "leases", "update", "lease-renewed"),
    // Every pass waits for the caches' first listings; the first thing it writes is the
    // channel's finalizer (JSON patch).
    ("whatsapp-operator.io", "whatsappchannels", "list", "initial-list"),
    ("", "secrets", "list", "initial-list"),
    ("whatsapp-operator.io", "whatsappnumberbindings", "list", "initial-list"),
    ("whatsapp-operator.io", "whatsappchannels", "patch", "initial-list"),
    // The default cluster identity (the kube-system namespace's UID) is read before the
    // controller starts.
    ("", "namespaces", "get", "initial-list"),
    // A channel created after the listing is seen only through the watch.
    ("whatsapp-operator.io", "whatsappchannels", "watch", "channel-watched"),
    // The credentials are read (the one Secret's data) before the number is claimed.
    ("", "secrets", "get", "number-bound"),
    ("whatsapp-operator.io", "whatsappnumberbindings", "create", "number-bound"),
    // A claim ends its pass; the next one needs the binding in the cache (its watch event).
    ("whatsapp-operator.io", "whatsappnumberbindings", "watch", "ready"),
    // A's Secret is created after the listing: only the watch brings it into the cache (without,
    // A is claimed but reports the Secret missing).
    ("", "secrets", "watch", "ready"),
    // The Secret is protected (its finalizer patched) before the pass writes any status.
    ("", "secrets", "patch", "ready"),
    ("whatsapp-operator.io", "whatsappchannels/status", "patch", "ready"),
    ("events.k8s.io", "events", "create", "event-published"),
    ("whatsapp-operator.io", "whatsappnumberbindings", "patch", "instance-repointed"),
    // The same Event again within minutes: its series is patched.
    ("events.k8s.io", "events", "patch", "event-counted"),
    // A binding whose holder the caches lack is read (in any namespace) before it is called
    // stale, then deleted with preconditions.
    ("whatsapp-operator.io", "whatsappchannels", "get", "stale-binding-taken-over"),
    ("whatsapp-operator.io", "whatsappnumberbindings", "delete", "stale-binding-taken-over"),
];

// ---------------------------------------------------------------------------------------------
// helm template

/// The helm binary: `$HELM`, else the one `hack/install-tools.sh` installs (and prints the dir of).
fn helm() -> &'static str {
    static HELM: OnceLock<String> = OnceLock::new();
    HELM.get_or_init(|| {
        if let Ok(h) = std::env::var("HELM") {
            return h;
        }
        let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/install-tools.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run hack/install-tools.sh");
        assert!(out.status.success(), "hack/install-tools.sh failed");
        format!("{}/helm", String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// `helm template RELEASE CHART --namespace NAMESPACE -f VALUES`: the rendered objects.
fn render(release: &str, namespace: &str, values: &Value) -> Vec<Value> {
    let file = std::env::temp_dir().join(format!("wao-chart-{release}-{}.json", common::random_suffix()));
    std::fs::write(&file, serde_json::to_vec(values).expect("values json")).expect("write values");
    let out = Command::new(helm())
        .args(["template", release, CHART, "--namespace", namespace, "-f"])
        .arg(&file)
        .output()
        .expect("run helm template");
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "helm template failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    serde_yaml::Deserializer::from_str(&text)
        .filter_map(|doc| {
            let v = Value::deserialize(doc).expect("rendered YAML");
            (!v.is_null()).then_some(v)
        })
        .collect()
}

fn kind(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or_default()
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

fn namespace(o: &Value) -> &str {
    o["metadata"]["namespace"].as_str().unwrap_or_default()
}

fn only<'a>(objects: &'a [Value], k: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| kind(o) == k).collect();
    assert_eq!(found.len(), 1, "exactly one {k} rendered");
    found[0]
}

/// The values of a test run: the simulator as Twilio, leader election on with short timings,
/// quick backoff.
fn values(sim_url: &str, watch: Option<&str>, metrics_port: u16) -> Value {
    json!({
        "watchNamespaces": watch.map(|n| vec![n]).unwrap_or_default(),
        "twilio": {"apiUrl": sim_url, "messagingUrl": sim_url},
        "leaderElection": {"enabled": true, "leaseDuration": "6s", "renewDeadline": "4s", "retryPeriod": "1s"},
        "metrics": {"port": metrics_port},
        "extraArgs": ["--backoff-base=100ms", "--backoff-max=1s"],
    })
}

/// A free local TCP port (for `--metrics-addr`, so that parallel operators do not collide).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

// ---------------------------------------------------------------------------------------------
// RBAC

/// (API group, resource, verb).
type Key = (String, String, String);

/// One verb on one resource, granted by one rule of one role.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    kind: String,
    object: String,
    namespace: String,
    group: String,
    resource: String,
    verb: String,
}

impl Grant {
    fn key(&self) -> Key {
        (self.group.clone(), self.resource.clone(), self.verb.clone())
    }
}

impl Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() { "core" } else { &self.group };
        write!(f, "{} {}/{} ({} {})", self.verb, group, self.resource, self.kind, self.object)
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// Every (group, resource, verb) the rendered Roles and ClusterRoles grant.
fn grants(objects: &[Value]) -> Vec<Grant> {
    let mut out = Vec::new();
    for o in objects.iter().filter(|o| matches!(kind(o), "Role" | "ClusterRole")) {
        for rule in o["rules"].as_array().into_iter().flatten() {
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        out.push(Grant {
                            kind: kind(o).to_owned(),
                            object: name(o).to_owned(),
                            namespace: namespace(o).to_owned(),
                            group: group.clone(),
                            resource: resource.clone(),
                            verb,
                        });
                    }
                }
            }
        }
    }
    out.sort();
    out
}

/// `objects` with the one grant `g` taken out of its role (the rest of its rule kept).
fn without(objects: &[Value], g: &Grant) -> Vec<Value> {
    objects
        .iter()
        .map(|o| {
            if kind(o) != g.kind || name(o) != g.object || namespace(o) != g.namespace {
                return o.clone();
            }
            let mut o = o.clone();
            let mut rules = Vec::new();
            for rule in o["rules"].as_array().cloned().unwrap_or_default() {
                let has = |field: &str, v: &str| strings(&rule[field]).iter().any(|x| x == v);
                if !(has("apiGroups", &g.group) && has("resources", &g.resource) && has("verbs", &g.verb)) {
                    rules.push(rule);
                    continue;
                }
                let others: Vec<String> =
                    strings(&rule["resources"]).into_iter().filter(|r| *r != g.resource).collect();
                if !others.is_empty() {
                    let mut r = rule.clone();
                    r["resources"] = json!(others);
                    rules.push(r);
                }
                let verbs: Vec<String> = strings(&rule["verbs"]).into_iter().filter(|v| *v != g.verb).collect();
                if !verbs.is_empty() {
                    let mut r = rule.clone();
                    r["resources"] = json!([g.resource]);
                    r["verbs"] = json!(verbs);
                    rules.push(r);
                }
            }
            o["rules"] = json!(rules);
            o
        })
        .collect()
}

/// Applies the ServiceAccount, Roles, ClusterRoles and their bindings among `objects`.
async fn apply_rbac(client: &Client, objects: &[Value]) {
    async fn apply<K>(api: Api<K>, o: &Value)
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        api.patch(name(o), &PatchParams::apply(MANAGER).force(), &Patch::Apply(o))
            .await
            .unwrap_or_else(|e| panic!("apply {} {}: {e}", kind(o), name(o)));
    }
    for o in objects {
        let ns = namespace(o);
        match kind(o) {
            "ServiceAccount" => apply(Api::<ServiceAccount>::namespaced(client.clone(), ns), o).await,
            "Role" => apply(Api::<Role>::namespaced(client.clone(), ns), o).await,
            "RoleBinding" => apply(Api::<RoleBinding>::namespaced(client.clone(), ns), o).await,
            "ClusterRole" => apply(Api::<ClusterRole>::all(client.clone()), o).await,
            "ClusterRoleBinding" => apply(Api::<ClusterRoleBinding>::all(client.clone()), o).await,
            _ => {}
        }
    }
}

/// Removes the cluster-scoped RBAC objects among `objects` (namespaced ones go with their
/// namespace).
async fn delete_cluster_rbac(client: &Client, objects: &[Value]) {
    for o in objects {
        let dp = DeleteParams::default();
        let _ = match kind(o) {
            "ClusterRole" => Api::<ClusterRole>::all(client.clone()).delete(name(o), &dp).await.map(|_| ()),
            "ClusterRoleBinding" => {
                Api::<ClusterRoleBinding>::all(client.clone()).delete(name(o), &dp).await.map(|_| ())
            }
            _ => Ok(()),
        };
    }
}

/// A token of ServiceAccount `ns/sa` (TokenRequest API, Kubernetes 1.20+).
async fn token_for(client: &Client, ns: &str, sa: &str) -> String {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let request = TokenRequest {
        spec: TokenRequestSpec { audiences: Vec::new(), expiration_seconds: Some(3600), bound_object_ref: None },
        ..TokenRequest::default()
    };
    let issued = api.create_token_request(sa, &PostParams::default(), &request).await.expect("TokenRequest");
    issued.status.expect("TokenRequest status").token
}

/// Writes a kubeconfig for the cluster of `admin` (its current context) that authenticates with
/// `token` only.
fn write_kubeconfig(admin: &Path, token: &str, out: &Path) {
    let kc = kube::config::Kubeconfig::read_from(admin).expect("read the admin kubeconfig");
    let context = kc
        .contexts
        .iter()
        .find(|c| Some(&c.name) == kc.current_context.as_ref())
        .and_then(|c| c.context.clone())
        .expect("current context");
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.clone())
        .expect("the context's cluster");
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": {
            "server": cluster.server,
            "certificate-authority-data": cluster.certificate_authority_data,
        }}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "cluster", "user": "operator"}}],
        "current-context": "operator",
    });
    std::fs::write(out, serde_json::to_vec_pretty(&config).expect("kubeconfig json")).expect("write kubeconfig");
}

/// The operator binary, run as the rendered Deployment runs it; killed when dropped.
struct Operator {
    child: Child,
    log: PathBuf,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Operator {
    /// Starts `whatsapp-operator` with the container's arguments and environment from
    /// `deployment` (the downward API filled in with `pod`/`pod_ns`), authenticated by
    /// `kubeconfig`.
    fn start(deployment: &Value, kubeconfig: &Path, pod: &str, pod_ns: &str, log: PathBuf) -> Operator {
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let args = strings(&container["args"]);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_whatsapp-operator"));
        cmd.args(&args).env("KUBECONFIG", kubeconfig);
        for (k, _) in std::env::vars() {
            if k.starts_with("WAO_") {
                cmd.env_remove(k);
            }
        }
        for e in container["env"].as_array().into_iter().flatten() {
            let var = e["name"].as_str().expect("env name");
            let value = match (e["value"].as_str(), e["valueFrom"]["fieldRef"]["fieldPath"].as_str()) {
                (Some(v), _) => v.to_owned(),
                (None, Some("metadata.name")) => pod.to_owned(),
                (None, Some("metadata.namespace")) => pod_ns.to_owned(),
                other => panic!("unexpected env {var}: {other:?}"),
            };
            cmd.env(var, value);
        }
        let file = std::fs::File::create(&log).expect("operator log file");
        cmd.stdin(Stdio::null()).stdout(file.try_clone().expect("log file")).stderr(file);
        Operator { child: cmd.spawn().expect("start the operator binary"), log }
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

// ---------------------------------------------------------------------------------------------
// The scenario

/// A step that did not happen within [`STEP`].
#[derive(Debug)]
struct Failed {
    step: &'static str,
    why: String,
}

fn e(err: impl Display) -> String {
    err.to_string()
}

/// Polls `check` until it succeeds or [`STEP`] has passed.
async fn step<T>(name: &'static str, mut check: impl AsyncFnMut() -> Result<T, String>) -> Result<T, Failed> {
    let deadline = Instant::now() + STEP;
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(why) if Instant::now() >= deadline => return Err(Failed { step: name, why }),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// One run's world: where things live and the Twilio account they use.
struct World {
    /// An admin client.
    client: Client,
    /// The release namespace: the ServiceAccount and the Lease.
    release_ns: String,
    /// Channels P (Secret `twilio-p`), A and D (Secret `twilio`).
    ns_a: String,
    /// Channel B and its Secret `twilio-b` (another namespace when cluster-wide).
    ns_b: String,
    /// The Lease's name (the release's full name).
    lease: String,
    /// The pod name the operator runs as.
    pod: String,
    sim: StrictSim,
    account: String,
    /// The numbers of P, A, B and D.
    numbers: [String; 4],
    /// The Deployment's probe port and paths (liveness, readiness), and the ServiceMonitor's path.
    http: Option<(u16, Vec<String>)>,
}

/// The port its probes name, and the liveness and readiness paths, of the rendered Deployment;
/// with `/metrics` (what the metrics Service and ServiceMonitor serve).
fn probe_endpoints(deployment: &Value) -> (u16, Vec<String>) {
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut port = None;
    let mut paths = Vec::new();
    for probe in ["livenessProbe", "readinessProbe"] {
        let get = &container[probe]["httpGet"];
        let named = get["port"].as_str().expect("a named probe port");
        let number = container["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == named)
            .and_then(|p| p["containerPort"].as_u64())
            .expect("the probe's port is a container port");
        assert!(port.is_none_or(|p| p == number), "both probes on one port");
        port = Some(number);
        paths.push(get["path"].as_str().expect("probe path").to_owned());
    }
    paths.push("/metrics".to_owned());
    (u16::try_from(port.expect("port")).expect("port number"), paths)
}

fn binding_name(number: &str) -> String {
    format!("whatsapp-{}", number.trim_start_matches('+'))
}

fn channel_spec(number: &str, secret: &str, confirm: bool) -> Value {
    let mut spec = json!({
        "phoneNumber": number,
        "instance": "crm-prod",
        "twilio": {"accountSid": "", "credentialsSecretRef": {"name": secret}},
        "webhook": {"url": RECEIVER},
        "queue": "sales",
    });
    if confirm {
        spec["confirmationPhoneNumber"] = json!(CONFIRM_TO);
    }
    spec
}

impl World {
    /// Namespaces, the seeded simulator, the Secret `twilio-p` and channel P: what exists before
    /// the operator starts.
    async fn new(client: Client, release_ns: &str, ns_a: &str, ns_b: &str, lease: &str) -> World {
        for ns in [release_ns, ns_a, ns_b] {
            let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns, "labels": {
                "whatsapp-operator.io/test": "chart"}}}))
            .expect("namespace");
            match Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &obj).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(err) => panic!("create namespace {ns}: {err}"),
            }
        }
        let sim = start_sim().await;
        let account = random_account_sid();
        let numbers = [random_number(), random_number(), random_number(), random_number()];
        let sender = |n: &str, webhook: &str| {
            let mut s = format!("  - sender_id: whatsapp:{n}\n    status: ONLINE\n");
            if !webhook.is_empty() {
                s.push_str(&format!("    webhook: {{callback_url: \"{webhook}\", callback_method: POST}}\n"));
            }
            s
        };
        let senders: String =
            numbers.iter().enumerate().map(|(i, n)| sender(n, if i == 1 { PREVIOUS } else { "" })).collect();
        sim.seed_yaml(&format!(
            "accounts:\n- sid: {account}\n  friendly_name: prod\n  auth_token: {TOKEN}\n  whatsapp_senders:\n{senders}"
        ))
        .expect("seed");
        let world = World {
            client,
            release_ns: release_ns.to_owned(),
            ns_a: ns_a.to_owned(),
            ns_b: ns_b.to_owned(),
            lease: lease.to_owned(),
            pod: format!("whatsapp-operator-{}", common::random_suffix()),
            sim,
            account,
            numbers,
            http: None,
        };
        world.create_secret(&world.ns_a, "twilio-p").await;
        world.create_channel(&world.ns_a, "p", channel_spec(&world.numbers[0], "twilio-p", false)).await;
        world
    }

    fn channels(&self, ns: &str) -> Api<WhatsAppChannel> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn bindings(&self) -> Api<WhatsAppNumberBinding> {
        Api::all(self.client.clone())
    }

    async fn create_secret(&self, ns: &str, name: &str) {
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": name}, "stringData": {"authToken": TOKEN}}))
                .expect("secret");
        Api::<Secret>::namespaced(self.client.clone(), ns)
            .create(&PostParams::default(), &secret)
            .await
            .expect("create secret");
    }

    async fn create_channel(&self, ns: &str, name: &str, mut spec: Value) -> WhatsAppChannel {
        spec["twilio"]["accountSid"] = json!(self.account);
        let ch: WhatsAppChannel = serde_json::from_value(json!({
            "apiVersion": "whatsapp-operator.io/v1alpha1",
            "kind": "WhatsAppChannel",
            "metadata": {"name": name},
            "spec": spec,
        }))
        .expect("channel");
        self.channels(ns).create(&PostParams::default(), &ch).await.expect("create channel")
    }

    async fn channel(&self, ns: &str, name: &str) -> Result<WhatsAppChannel, String> {
        self.channels(ns).get_opt(name).await.map_err(e)?.ok_or_else(|| format!("{ns}/{name} is gone"))
    }

    async fn has_finalizer(&self, ns: &str, name: &str) -> Result<(), String> {
        let ch = self.channel(ns, name).await?;
        if ch.finalizers().iter().any(|f| f == FINALIZER) {
            Ok(())
        } else {
            Err(format!("{name} has no finalizer: {:?}", ch.finalizers()))
        }
    }

    /// `type_` is `status` for the channel's current generation.
    async fn condition(&self, ns: &str, name: &str, type_: &str, status: &str) -> Result<(), String> {
        let ch = self.channel(ns, name).await?;
        let st = ch.status.as_ref().ok_or_else(|| format!("{name} has no status"))?;
        if st.observed_generation != ch.metadata.generation {
            return Err(format!("{name}: status of generation {:?}", st.observed_generation));
        }
        match st.conditions.iter().find(|c| c.type_ == type_) {
            Some(c) if c.status == status => Ok(()),
            other => Err(format!("{name}: {type_} is {other:?}")),
        }
    }

    async fn holder_uid(&self, number: &str) -> Result<String, String> {
        let b = self.bindings().get_opt(&binding_name(number)).await.map_err(e)?.ok_or("no binding")?;
        Ok(b.spec.channel_ref.uid)
    }

    async fn lease_spec(&self) -> Result<LeaseSpec, String> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.release_ns);
        api.get_opt(&self.lease).await.map_err(e)?.ok_or("no Lease")?.spec.ok_or_else(|| "no Lease spec".into())
    }

    async fn events_about(&self, ns: &str, name: &str) -> Result<Vec<Event>, String> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        let list = api.list(&ListParams::default()).await.map_err(e)?;
        Ok(list
            .items
            .into_iter()
            .filter(|ev| ev.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect())
    }

    async fn secret_protected(&self, ns: &str, name: &str) -> Result<bool, String> {
        let s = Api::<Secret>::namespaced(self.client.clone(), ns).get(name).await.map_err(e)?;
        Ok(s.finalizers().iter().any(|f| f == SECRET_FINALIZER))
    }

    fn sender_webhook(&self, number: &str) -> Option<String> {
        self.sim
            .state()
            .accounts
            .iter()
            .flat_map(|a| a.senders.iter())
            .find(|s| s.sender_id == format!("whatsapp:{number}"))
            .and_then(|s| s.webhook.callback_url.clone())
            .map(|u| common::unmarked(&u))
    }

    /// The scenario, step by step; stops at the first step that does not happen.
    async fn scenario(&self) -> Result<(), Failed> {
        let (a_ns, b_ns) = (self.ns_a.as_str(), self.ns_b.as_str());
        let [p_num, a_num, b_num, d_num] = &self.numbers;

        // Leader election: the Lease is created, then renewed.
        let first = step("lease-acquired", async || {
            let spec = self.lease_spec().await?;
            match spec.holder_identity.as_deref() {
                Some(h) if h == self.pod => Ok(spec.renew_time),
                other => Err(format!("held by {other:?}")),
            }
        })
        .await?;
        step("lease-renewed", async || {
            let spec = self.lease_spec().await?;
            if spec.holder_identity.as_deref() == Some(self.pod.as_str()) && spec.renew_time != first {
                Ok(())
            } else {
                Err(format!("holder {:?}, renewed {:?}", spec.holder_identity, spec.renew_time))
            }
        })
        .await?;
        // P, there before the operator, gets the finalizer: channels, Secrets and bindings were
        // listed (the caches' readiness gates every pass) and channels can be patched.
        step("initial-list", async || self.has_finalizer(a_ns, "p").await).await?;
        // What the kubelet and Prometheus ask for: /healthz, /readyz (the caches listed), /metrics.
        if let Some((port, paths)) = &self.http {
            step("probes-ready", async || {
                for path in paths {
                    let r = reqwest::get(format!("http://127.0.0.1:{port}{path}")).await.map_err(e)?;
                    if !r.status().is_success() {
                        return Err(format!("{path}: {}", r.status()));
                    }
                }
                Ok(())
            })
            .await?;
        }
        // A and its Secret, created now, are seen through the watches. A's number points at a
        // receiver from before: taken over, restored on deletion.
        self.create_secret(a_ns, "twilio").await;
        let mut a_spec = channel_spec(a_num, "twilio", true);
        a_spec["bindingPolicy"] = json!("Takeover");
        a_spec["takeover"] = json!({"from": PREVIOUS});
        let a = self.create_channel(a_ns, "a", a_spec).await;
        step("channel-watched", async || self.has_finalizer(a_ns, "a").await).await?;
        let a_uid = a.uid().unwrap_or_default();
        step("number-bound", async || {
            let holder = self.holder_uid(a_num).await?;
            if holder == a_uid {
                Ok(())
            } else {
                Err(format!("held by {holder}"))
            }
        })
        .await?;
        step("ready", async || self.condition(a_ns, "a", "Ready", "True").await).await?;
        step("confirmation-sent", async || self.condition(a_ns, "a", "ConfirmationSent", "True").await).await?;
        step("event-published", async || {
            let events = self.events_about(a_ns, "a").await?;
            if events.is_empty() {
                Err("no Event about a".into())
            } else {
                Ok(())
            }
        })
        .await?;
        step("secret-protected", async || match self.secret_protected(a_ns, "twilio").await? {
            true => Ok(()),
            false => Err("twilio has no credentials-in-use finalizer".into()),
        })
        .await?;
        // B's Secret appears after B: only the Secret watch tells the operator.
        self.create_channel(b_ns, "b", channel_spec(b_num, "twilio-b", false)).await;
        step("second-channel-seen", async || {
            let ch = self.channel(b_ns, "b").await?;
            ch.status.map(|_| ()).ok_or_else(|| "b has no status".into())
        })
        .await?;
        self.create_secret(b_ns, "twilio-b").await;
        step("secret-watched", async || self.condition(b_ns, "b", "Ready", "True").await).await?;
        // A new instance: the binding is patched.
        self.channels(a_ns)
            .patch("a", &PatchParams::default(), &Patch::Merge(json!({"spec": {"instance": "crm-next"}})))
            .await
            .expect("patch a's instance");
        step("instance-repointed", async || {
            let b = self.bindings().get(&binding_name(a_num)).await.map_err(e)?;
            if b.spec.instance == "crm-next" {
                Ok(())
            } else {
                Err(format!("binding instance {}", b.spec.instance))
            }
        })
        .await?;
        // The same Event again within minutes (Ready again after a suspension): counted by a
        // patch of the first one's series, not published twice.
        let suspend = |on: bool| {
            let patch = json!({"spec": {"suspend": on}});
            async move {
                self.channels(a_ns).patch("a", &PatchParams::default(), &Patch::Merge(patch)).await.expect("suspend a")
            }
        };
        suspend(true).await;
        step("suspended", async || self.condition(a_ns, "a", "Ready", "False").await).await?;
        suspend(false).await;
        step("event-counted", async || {
            let events = self.events_about(a_ns, "a").await?;
            let ready: Vec<_> = events.iter().filter(|ev| ev.reason.as_deref() == Some("ChannelReady")).collect();
            match ready.iter().filter_map(|ev| ev.series.as_ref()).map(|s| s.count).max() {
                Some(n) if n >= 2 => Ok(()),
                other => Err(format!("{} ChannelReady Events, series count {other:?}", ready.len())),
            }
        })
        .await?;
        // D's number is bound to a channel that no longer exists, in a namespace not watched:
        // read (404) before it is called stale, then deleted and claimed.
        let ghost: WhatsAppNumberBinding = serde_json::from_value(json!({
            "apiVersion": "whatsapp-operator.io/v1alpha1",
            "kind": "WhatsAppNumberBinding",
            "metadata": {"name": binding_name(d_num)},
            "spec": {"phoneNumber": d_num, "instance": "crm-old", "channelRef": {
                "namespace": format!("{a_ns}-gone"), "name": "ghost", "uid": "00000000-0000-4000-8000-000000000000"}},
        }))
        .expect("binding");
        self.bindings().create(&PostParams::default(), &ghost).await.expect("create the stale binding");
        let d = self.create_channel(a_ns, "d", channel_spec(d_num, "twilio", false)).await;
        let d_uid = d.uid().unwrap_or_default();
        step("stale-binding-taken-over", async || {
            let holder = self.holder_uid(d_num).await?;
            if holder == d_uid {
                self.condition(a_ns, "d", "Ready", "True").await
            } else {
                Err(format!("held by {holder}"))
            }
        })
        .await?;

        // Deletion: the webhooks restored, the finalizers removed, bindings and Secrets released.
        for (ns, name) in [(a_ns, "p"), (a_ns, "a"), (b_ns, "b"), (a_ns, "d")] {
            self.channels(ns).delete(name, &DeleteParams::default()).await.expect("delete channel");
        }
        step("channels-deleted", async || {
            for (ns, name) in [(a_ns, "p"), (a_ns, "a"), (b_ns, "b"), (a_ns, "d")] {
                if self.channels(ns).get_opt(name).await.map_err(e)?.is_some() {
                    return Err(format!("{ns}/{name} still there"));
                }
            }
            Ok(())
        })
        .await?;
        step("webhook-restored", async || match self.sender_webhook(a_num) {
            Some(url) if url == PREVIOUS => Ok(()),
            other => Err(format!("a's number points at {other:?}")),
        })
        .await?;
        step("bindings-released", async || {
            for n in [p_num, a_num, b_num, d_num] {
                if self.bindings().get_opt(&binding_name(n)).await.map_err(e)?.is_some() {
                    return Err(format!("{} still bound", n));
                }
            }
            Ok(())
        })
        .await?;
        step("secrets-released", async || {
            for (ns, name) in [(a_ns, "twilio-p"), (a_ns, "twilio"), (b_ns, "twilio-b")] {
                if self.secret_protected(ns, name).await? {
                    return Err(format!("{ns}/{name} still protected"));
                }
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Best-effort cleanup on the shared control plane: finalizers off, bindings and namespaces
    /// gone.
    async fn cleanup(&self) {
        let clear = Patch::Merge(json!({"metadata": {"finalizers": null}}));
        for ns in [&self.ns_a, &self.ns_b] {
            let channels = self.channels(ns);
            for ch in channels.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
                let _ = channels.patch(&ch.name_any(), &PatchParams::default(), &clear).await;
            }
            let secrets: Api<Secret> = Api::namespaced(self.client.clone(), ns);
            for name in ["twilio-p", "twilio", "twilio-b"] {
                let _ = secrets.patch_metadata(name, &PatchParams::default(), &clear).await;
            }
        }
        for n in &self.numbers {
            let _ = self.bindings().delete(&binding_name(n), &DeleteParams::default()).await;
        }
        for ns in [&self.release_ns, &self.ns_a, &self.ns_b] {
            let _ = Api::<Namespace>::all(self.client.clone()).delete(ns, &DeleteParams::default()).await;
        }
    }
}

/// The admin kubeconfig of the shared control plane.
fn admin_kubeconfig() -> PathBuf {
    PathBuf::from(std::env::var_os("KUBECONFIG").expect("KUBECONFIG (run under hack/with-control-plane.sh)"))
}

/// A case: the chart rendered for a namespace of its own, the grant of `removed` (group,
/// resource, verb) taken out of its role, the scenario run. Returns the grant removed, the outcome
/// and the operator's last log lines.
async fn run_case(client: Client, index: usize, removed: Option<Key>) -> (Option<Grant>, Result<(), Failed>, String) {
    let ns = format!("chart-{index}-{}", common::random_suffix());
    let release = format!("wao-{index}");
    let lease = format!("{release}-whatsapp-operator");
    let mut world = World::new(client.clone(), &ns, &ns, &ns, &lease).await;
    let objects = render(&release, &ns, &values(world.sim.base_url(), Some(&ns), free_port()));
    world.http = Some(probe_endpoints(only(&objects, "Deployment")));
    let removed = removed.map(|key| {
        grants(&objects).into_iter().find(|g| g.key() == key).unwrap_or_else(|| panic!("{key:?} not rendered"))
    });
    let rbac = match &removed {
        Some(g) => without(&objects, g),
        None => objects.clone(),
    };
    assert_eq!(grants(&rbac).len() + usize::from(removed.is_some()), grants(&objects).len());
    apply_rbac(&client, &rbac).await;
    let sa = name(only(&objects, "ServiceAccount")).to_owned();
    let dir = std::env::temp_dir().join(format!("wao-chart-{ns}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    write_kubeconfig(&admin_kubeconfig(), &token_for(&client, &ns, &sa).await, &dir.join("kubeconfig"));
    if removed.is_none() {
        assert_secrets_confined(&client, &ns, &sa).await;
    }
    let op = Operator::start(
        only(&objects, "Deployment"),
        &dir.join("kubeconfig"),
        &world.pod,
        &ns,
        dir.join("operator.log"),
    );
    let result = world.scenario().await;
    let log = op.log_tail(15);
    drop(op);
    world.cleanup().await;
    delete_cluster_rbac(&client, &objects).await;
    let _ = std::fs::remove_dir_all(&dir);
    (removed, result, log)
}

/// With one namespace watched, the ServiceAccount may read and write Secrets there, and nowhere
/// else (asked of the API server's authorizer).
async fn assert_secrets_confined(client: &Client, ns: &str, sa: &str) {
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    for (where_, verb, expected) in [
        (ns, "get", true),
        (ns, "list", true),
        ("default", "get", false),
        ("default", "list", false),
        ("kube-system", "watch", false),
    ] {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(format!("system:serviceaccount:{ns}:{sa}")),
                groups: Some(vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{ns}")]),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(where_.to_owned()),
                    verb: Some(verb.to_owned()),
                    resource: Some("secrets".to_owned()),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let answer = api.create(&PostParams::default(), &review).await.expect("SubjectAccessReview");
        let allowed = answer.status.is_some_and(|s| s.allowed);
        assert_eq!(allowed, expected, "{verb} secrets in {where_}");
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn with_watch_namespaces_no_cluster_role_grants_secrets() {
    let objects = render(
        "wao",
        "ops",
        &json!({
            "watchNamespaces": ["apps"],
            "replicas": 2,
            "webhook": {"enabled": true, "certificate": {"source": "helm"}},
        }),
    );
    let all = grants(&objects);
    let cluster: Vec<&Grant> = all.iter().filter(|g| g.kind == "ClusterRole").collect();
    assert!(!cluster.is_empty());
    for g in &cluster {
        assert!(g.resource != "secrets" && g.resource != "*" && g.group != "*", "cluster-wide: {g}");
    }
    for g in all.iter().filter(|g| g.resource == "secrets") {
        assert_eq!((g.kind.as_str(), g.namespace.as_str()), ("Role", "apps"), "{g}");
    }
    // Cluster-wide only what is cluster-wide by nature: the bindings, reading a holder, and
    // reading the kube-system namespace (the default cluster identity).
    let keys: BTreeSet<_> = cluster.iter().map(|g| g.key()).collect();
    let expected: BTreeSet<_> = ["list", "watch", "create", "patch", "delete"]
        .iter()
        .map(|v| ("whatsapp-operator.io".to_owned(), "whatsappnumberbindings".to_owned(), (*v).to_owned()))
        .chain([("whatsapp-operator.io".to_owned(), "whatsappchannels".to_owned(), "get".to_owned())])
        .chain([(String::new(), "namespaces".to_owned(), "get".to_owned())])
        .collect();
    assert_eq!(keys, expected);
}

#[test]
fn cluster_scope_grants_the_same_rules_as_one_namespace() {
    let keys = |objects: &[Value]| {
        let mut keys: Vec<Key> = grants(objects).iter().map(Grant::key).collect();
        keys.sort();
        keys
    };
    let cluster = render("wao", "ops", &values("https://api.twilio.com", None, 8080));
    let namespaced = render("wao", "ops", &values("https://api.twilio.com", Some("apps"), 8080));
    assert_eq!(keys(&cluster), keys(&namespaced), "the same (group, resource, verb) set, each granted once");
    // Cluster scope: one ClusterRole, and the Lease Role in the release namespace.
    let roles: Vec<(&str, &str)> =
        cluster.iter().filter(|o| kind(o).ends_with("Role")).map(|o| (kind(o), namespace(o))).collect();
    assert_eq!(roles, [("ClusterRole", ""), ("Role", "ops")]);
    let table: BTreeSet<(String, String, String)> =
        NEEDED_FOR.iter().map(|(g, r, v, _)| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned())).collect();
    assert_eq!(
        keys(&cluster).into_iter().collect::<BTreeSet<_>>(),
        table,
        "NEEDED_FOR covers exactly the chart's rules"
    );
    // Without leader election no Lease access at all.
    let mut single = values("https://api.twilio.com", None, 8080);
    single["leaderElection"]["enabled"] = json!(false);
    assert!(grants(&render("wao", "ops", &single)).iter().all(|g| g.resource != "leases"));
}

/// The chart's webhook configuration is the one `--admission-register` writes, but for how the
/// API server reaches the webhook (the chart's Service and CA bundle instead of a URL).
#[test]
fn the_chart_installs_the_webhooks_the_operator_registers() {
    use whatsapp_operator::admission::{webhook_configuration, Registration};
    let registered =
        serde_json::to_value(webhook_configuration(&Registration::new(), "https://unused", b"CA")).expect("json");
    let strip = |hooks: &Value| {
        let mut hooks = hooks.as_array().cloned().expect("webhooks");
        for h in &mut hooks {
            h.as_object_mut().expect("webhook").remove("clientConfig");
        }
        hooks
    };
    for (source, extra) in [
        ("certManager", json!({})),
        ("helm", json!({})),
        ("existing", json!({"existing": {"secretName": "tls", "caBundle": "Q0E="}})),
    ] {
        let mut certificate = json!({"source": source});
        certificate.as_object_mut().expect("object").extend(extra.as_object().cloned().unwrap_or_default());
        let objects =
            render("whatsapp-operator", "ops", &json!({"webhook": {"enabled": true, "certificate": certificate}}));
        let vwc = only(&objects, "ValidatingWebhookConfiguration");
        assert_eq!(name(vwc), "whatsapp-operator");
        assert_eq!(strip(&vwc["webhooks"]), strip(&registered["webhooks"]), "{source}");
        for hook in vwc["webhooks"].as_array().expect("webhooks") {
            let client = &hook["clientConfig"];
            assert_eq!(
                client["service"],
                json!({"name": "whatsapp-operator-webhook", "namespace": "ops", "path": "/validate-whatsappchannel", "port": 443}),
                "{source}"
            );
            // cert-manager injects the CA bundle (the annotation); otherwise the chart writes it.
            let injected = vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].as_str();
            if source == "certManager" {
                assert_eq!(injected, Some("ops/whatsapp-operator-webhook"));
                assert!(client.get("caBundle").is_none());
            } else {
                assert_eq!(injected, None);
                assert!(client["caBundle"].as_str().is_some_and(|b| !b.is_empty()), "{source}");
            }
        }
        // The Deployment serves it with the certificate's Secret mounted.
        let deployment = only(&objects, "Deployment");
        let args = strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"]);
        for flag in
            ["--admission-addr=0.0.0.0:9443", "--admission-tls-cert=/tls/tls.crt", "--admission-tls-key=/tls/tls.key"]
        {
            assert!(args.iter().any(|a| a == flag), "{source}: {flag} in {args:?}");
        }
        assert!(!args.iter().any(|a| a.contains("admission-register")), "the chart installs the configuration itself");
    }
}

/// `webhook.certificate.source=helm`: the generated Secret is a serving certificate the
/// operator loads and the API server would trust through the rendered caBundle, for the webhook
/// Service's DNS name.
#[tokio::test]
async fn the_helm_generated_certificate_serves_the_webhook() {
    let env = common::setup("chart-cert").await;
    let objects =
        render("whatsapp-operator", "ops", &json!({"webhook": {"enabled": true, "certificate": {"source": "helm"}}}));
    let secret = only(&objects, "Secret");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let vwc = only(&objects, "ValidatingWebhookConfiguration");
    let decode = |v: &Value| serde_json::from_value::<k8s_openapi::ByteString>(v.clone()).expect("base64").0;
    let ca = decode(&vwc["webhooks"][0]["clientConfig"]["caBundle"]);
    assert_eq!(ca, decode(&secret["data"]["ca.crt"]), "the caBundle is the Secret's CA");
    let dir = std::env::temp_dir().join(format!("wao-chart-cert-{}", common::random_suffix()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("tls.crt"), decode(&secret["data"]["tls.crt"])).expect("write cert");
    std::fs::write(dir.join("tls.key"), decode(&secret["data"]["tls.key"])).expect("write key");
    let port = free_port();
    let mut op = Command::new(env!("CARGO_BIN_EXE_whatsapp-operator"))
        .args(["run", "--namespace", &env.ns, "--admission-addr", &format!("127.0.0.1:{port}")])
        .arg("--admission-tls-cert")
        .arg(dir.join("tls.crt"))
        .arg("--admission-tls-key")
        .arg(dir.join("tls.key"))
        .stdin(Stdio::null())
        .spawn()
        .expect("start the operator");
    let host = "whatsapp-operator-webhook.ops.svc";
    let https = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).expect("CA")])
        .resolve(host, ([127, 0, 0, 1], port).into())
        .build()
        .expect("https client");
    let answer = common::within(common::TIMEOUT, async {
        loop {
            match https.get(format!("https://{host}:{port}/healthz")).send().await {
                Ok(r) => break r.text().await.expect("body"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    })
    .await;
    let _ = op.kill();
    let _ = op.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(answer, "ok");
}

/// The rows between `<!-- NAME:start -->` and `<!-- NAME:end -->` of the chart's README, as cells
/// (backticks trimmed).
fn readme_table(name: &str) -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(format!("{CHART}/README.md")).expect("chart README");
    let start = readme.find(&format!("<!-- {name}:start -->")).unwrap_or_else(|| panic!("{name}:start marker"));
    let end = readme.find(&format!("<!-- {name}:end -->")).unwrap_or_else(|| panic!("{name}:end marker"));
    readme[start..end]
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|l| l.trim().trim_matches('|').split(" | ").map(|c| c.trim().trim_matches('`').to_owned()).collect())
        .collect()
}

/// Leaf keys of values.yaml (non-empty maps are descended into) with their values.
fn leaves(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v.as_object() {
        Some(map) if !map.is_empty() => {
            for (k, child) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                leaves(&key, child, out);
            }
        }
        _ => out.push((prefix.to_owned(), v.clone())),
    }
}

#[test]
fn the_readme_values_table_matches_values_yaml() {
    let text = std::fs::read_to_string(format!("{CHART}/values.yaml")).expect("values.yaml");
    let values: Value = serde_yaml::from_str(&text).expect("values.yaml parses");
    let mut keys = Vec::new();
    leaves("", &values, &mut keys);
    let table: Vec<(String, String)> =
        readme_table("values-table").into_iter().map(|row| (row[0].clone(), row[1].clone())).collect();
    let documented: BTreeSet<&str> = table.iter().map(|(k, _)| k.as_str()).collect();
    let actual: BTreeSet<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        actual.difference(&documented).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "keys of values.yaml missing from the README's values table"
    );
    assert_eq!(
        documented.difference(&actual).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "README values table rows that values.yaml does not have"
    );
    for (key, value) in &keys {
        let (_, default) = table.iter().find(|(k, _)| k == key).expect("documented");
        assert_eq!(default, &value.to_string(), "default of {key} in the README");
    }
}

#[test]
fn a_set_cluster_id_is_passed_and_needs_no_namespace_read() {
    let has_namespace_rule = |objects: &[Value]| grants(objects).iter().any(|g| g.resource == "namespaces");
    let default = render("wao", "ops", &values("https://api.twilio.com", None, 8080));
    assert!(has_namespace_rule(&default), "the default --cluster-id reads namespaces/kube-system");
    let rule = default
        .iter()
        .filter(|o| kind(o) == "ClusterRole")
        .flat_map(|o| o["rules"].as_array().cloned().unwrap_or_default())
        .find(|r| strings(&r["resources"]) == ["namespaces"])
        .expect("the namespaces rule");
    assert_eq!(strings(&rule["resourceNames"]), ["kube-system"], "only kube-system");
    let mut v = values("https://api.twilio.com", None, 8080);
    v["clusterId"] = json!("eu-west-1");
    let objects = render("wao", "ops", &v);
    assert!(!has_namespace_rule(&objects));
    let deployment = only(&objects, "Deployment");
    let args = strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert!(args.iter().any(|a| a == "--cluster-id=eu-west-1"), "{args:?}");
}

#[test]
fn the_readme_rbac_table_matches_the_chart_and_the_proof() {
    let objects = render("wao", "ops", &values("https://api.twilio.com", Some("apps"), 8080));
    let rendered: BTreeSet<(String, String, String, String)> = grants(&objects)
        .iter()
        .map(|g| {
            let resource = if g.group.is_empty() { g.resource.clone() } else { format!("{}/{}", g.group, g.resource) };
            let place = match (g.kind.as_str(), g.namespace.as_str()) {
                ("ClusterRole", _) => "cluster",
                ("Role", "apps") => "namespace",
                ("Role", "ops") => "release namespace",
                other => panic!("unexpected role {other:?}"),
            };
            let step = NEEDED_FOR
                .iter()
                .find(|(gr, r, v, _)| (*gr, *r, *v) == (g.group.as_str(), g.resource.as_str(), g.verb.as_str()))
                .map(|t| t.3)
                .unwrap_or("?");
            (g.verb.clone(), resource, place.to_owned(), step.to_owned())
        })
        .collect();
    let documented: BTreeSet<(String, String, String, String)> = readme_table("rbac-table")
        .into_iter()
        .map(|row| {
            let step = row[3].split(['`', ':']).find(|s| !s.is_empty()).unwrap_or_default().to_owned();
            (row[0].clone(), row[1].clone(), row[2].clone(), step)
        })
        .collect();
    assert_eq!(
        documented, rendered,
        "the README's RBAC table: (verb, resource, where, the step that fails without it)"
    );
}

/// Every rule of the chart (one namespace watched) is needed: with it removed, the step
/// [`NEEDED_FOR`] names fails, and every step before it passes; with all of them, the whole
/// scenario passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_is_needed_and_together_they_suffice() {
    let env = common::setup("chart-rules").await;
    let client = env.client.clone();
    let probe = render("probe", "probe", &values("https://api.twilio.com", Some("probe"), 8080));
    let rules = grants(&probe);
    let table: BTreeSet<_> =
        NEEDED_FOR.iter().map(|(g, r, v, _)| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned())).collect();
    let rendered: BTreeSet<_> = rules.iter().map(Grant::key).collect();
    assert_eq!(rendered, table, "NEEDED_FOR must list exactly the chart's rules");
    assert_eq!(rendered.len(), rules.len(), "each (group, resource, verb) granted once");

    let cases: Vec<Option<Key>> = std::iter::once(None).chain(rules.iter().map(|g| Some(g.key()))).collect();
    let outcomes: Vec<_> = futures::stream::iter(cases.into_iter().enumerate())
        .map(|(i, removed)| run_case(client.clone(), i, removed))
        .buffer_unordered(PARALLEL)
        .collect()
        .await;

    let mut wrong = Vec::new();
    let mut report = String::from("\nrule removed -> first step that failed (expected)\n");
    for (removed, result, log) in &outcomes {
        let failed = result.as_ref().err().map(|f| f.step);
        let expected = removed.as_ref().map(|g| {
            NEEDED_FOR
                .iter()
                .find(|(gr, r, v, _)| (*gr, *r, *v) == (g.group.as_str(), g.resource.as_str(), g.verb.as_str()))
                .map(|t| t.3)
                .unwrap_or("?")
        });
        let label = removed.as_ref().map_or("(none)".to_owned(), ToString::to_string);
        report.push_str(&format!(
            "  {label:70} -> {:28} ({})\n",
            failed.unwrap_or("all passed"),
            expected.unwrap_or("all pass")
        ));
        if failed != expected {
            wrong.push(format!("{label}: {result:?}\n--- operator log ---\n{log}"));
        }
    }
    eprintln!("{report}");
    assert!(wrong.is_empty(), "{report}\n{}", wrong.join("\n\n"));
    let _ = Api::<Namespace>::all(env.client.clone()).delete(&env.ns, &DeleteParams::default()).await;
}

/// The default chart (cluster scope) on a control plane of its own: the operator watches every
/// namespace; channels in two namespaces, the Lease in a third.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_chart_reconciles_and_deletes_cluster_wide() {
    common::init_crypto();
    let cp = ControlPlane::start();
    let client = cp.client().await;
    install_chart_crds(&client).await;
    let mut world = World::new(client.clone(), "ops", "apps", "team-b", "whatsapp-operator").await;
    let objects = render("whatsapp-operator", "ops", &values(world.sim.base_url(), None, free_port()));
    let deployment = only(&objects, "Deployment");
    world.http = Some(probe_endpoints(deployment));
    assert!(
        !strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"])
            .iter()
            .any(|a| a.starts_with("--namespace")),
        "cluster scope: no --namespace"
    );
    apply_rbac(&client, &objects).await;
    let sa = name(only(&objects, "ServiceAccount")).to_owned();
    let dir = std::env::temp_dir().join(format!("wao-chart-cluster-{}", common::random_suffix()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    write_kubeconfig(cp.kubeconfig(), &token_for(&client, "ops", &sa).await, &dir.join("kubeconfig"));
    let op = Operator::start(deployment, &dir.join("kubeconfig"), &world.pod, "ops", dir.join("operator.log"));
    let result = world.scenario().await;
    let log = op.log_tail(30);
    drop(op);
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(f) = result {
        panic!("step {} failed: {}\n--- operator log ---\n{log}", f.step, f.why);
    }
}

/// Applies the chart's `crds/` (as `helm install` would) and waits until they are established.
async fn install_chart_crds(client: &Client) {
    let text = std::fs::read_to_string(format!("{CHART}/crds/whatsapp-operator.io_crds.yaml")).expect("chart CRDs");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let crd = CustomResourceDefinition::deserialize(doc).expect("CRD");
        let n = crd.name_any();
        api.patch(&n, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&crd)).await.expect("apply CRD");
        common::within(common::TIMEOUT, await_condition(api.clone(), &n, conditions::is_crd_established()))
            .await
            .expect("CRD established");
    }
}

// ---------------------------------------------------------------------------------------------
// helm template per values combination, and helm install / upgrade / uninstall

fn kinds(objects: &[Value]) -> BTreeSet<String> {
    objects.iter().map(|o| kind(o).to_owned()).collect()
}

fn container_args(objects: &[Value]) -> Vec<String> {
    strings(&only(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"])
}

#[test]
fn each_values_combination_renders_the_objects_it_promises() {
    // Default: one replica, cluster scope, no PDB, no ServiceMonitor, no webhook, no Lease access.
    let default = render("combo", "wao-system", &json!({}));
    let k = kinds(&default);
    for want in ["Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service"] {
        assert!(k.contains(want), "default renders a {want}: {k:?}");
    }
    for absent in ["PodDisruptionBudget", "ServiceMonitor", "ValidatingWebhookConfiguration", "Role"] {
        assert!(!k.contains(absent), "default renders no {absent}");
    }
    assert!(!container_args(&default).iter().any(|a| a == "--leader-elect"), "one replica: no leader election");
    assert_eq!(only(&default, "Deployment")["spec"]["strategy"]["type"], "Recreate", "never two leaders-by-default");

    // Two replicas: leader election, a PDB, Lease access in the release namespace.
    let two = render("combo", "wao-system", &json!({"replicas": 2}));
    let k = kinds(&two);
    assert!(k.contains("PodDisruptionBudget") && k.contains("Role"), "{k:?}");
    assert_eq!(only(&two, "Deployment")["spec"]["replicas"], 2);
    assert!(container_args(&two).iter().any(|a| a == "--leader-elect"));
    let lease_role = two.iter().find(|o| kind(o) == "Role").expect("a Role");
    assert_eq!(namespace(lease_role), "wao-system");
    assert!(lease_role["rules"].to_string().contains("leases"), "{lease_role}");

    // A ServiceMonitor on request.
    let monitored = render("combo", "wao-system", &json!({"metrics": {"serviceMonitor": {"enabled": true}}}));
    assert!(kinds(&monitored).contains("ServiceMonitor"));

    // The outbound allow-list: one --outbound-allow flag with the entries, none by default.
    assert!(!container_args(&default).iter().any(|a| a.starts_with("--outbound-allow")));
    let allow = render("combo", "wao-system", &json!({"outboundAllow": ["*.corp.example", "10.0.0.0/8"]}));
    let args = container_args(&allow);
    assert_eq!(args.iter().filter(|a| a.starts_with("--outbound-allow")).count(), 1, "{args:?}");
    assert!(args.iter().any(|a| a == "--outbound-allow=*.corp.example,10.0.0.0/8"), "{args:?}");
}

/// Runs helm against the test control plane (`KUBECONFIG`).
fn helm_run(args: &[&str]) -> std::process::Output {
    let out = Command::new(helm()).args(args).output().expect("run helm");
    assert!(out.status.success(), "helm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

#[tokio::test]
async fn helm_installs_upgrades_and_uninstalls_into_the_control_plane() {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
    let env = common::setup("helm").await;
    let release = format!("wao-{}", common::random_suffix());
    let selector = ListParams::default().labels(&format!("app.kubernetes.io/instance={release}"));
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), &env.ns);
    // policy/v1beta1 on the 1.20 test control plane (the chart picks the version by capabilities).
    let pdb = ApiResource::from_gvk(&GroupVersionKind::gvk("policy", "v1beta1", "PodDisruptionBudget"));
    let pdbs: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.ns, &pdb);
    let cluster_roles: Api<ClusterRole> = Api::all(env.client.clone());

    // Install: Pods never run here, so helm does not wait; the objects are what is checked.
    helm_run(&["install", &release, CHART, "--namespace", &env.ns, "--set", "verifyInterval=5m"]);
    let d = deployments.list(&selector).await.expect("list").items;
    assert_eq!(d.len(), 1, "one Deployment");
    let args = d[0].spec.as_ref().and_then(|s| s.template.spec.as_ref()).map(|p| p.containers[0].args.clone());
    assert!(args.flatten().unwrap_or_default().iter().any(|a| a.contains("5m")), "values reach the arguments");
    assert!(pdbs.list(&selector).await.expect("list").items.is_empty(), "no PDB with one replica");
    assert_eq!(cluster_roles.list(&selector).await.expect("list").items.len(), 1, "the ClusterRole");

    // Upgrade to two replicas: a PDB appears, leader election is on.
    helm_run(&["upgrade", &release, CHART, "--namespace", &env.ns, "--set", "replicas=2"]);
    let d = deployments.list(&selector).await.expect("list").items;
    assert_eq!(d[0].spec.as_ref().and_then(|s| s.replicas), Some(2));
    let args = d[0].spec.as_ref().and_then(|s| s.template.spec.as_ref()).map(|p| p.containers[0].args.clone());
    assert!(args.flatten().unwrap_or_default().iter().any(|a| a == "--leader-elect"));
    assert_eq!(pdbs.list(&selector).await.expect("list").items.len(), 1, "a PDB with two replicas");

    // Uninstall: the release's objects go, cluster-scoped ones too; the CRDs stay (they hold the
    // users' channels; the README says how to remove them).
    helm_run(&["uninstall", &release, "--namespace", &env.ns, "--wait", "--timeout", "60s"]);
    assert!(deployments.list(&selector).await.expect("list").items.is_empty());
    assert!(pdbs.list(&selector).await.expect("list").items.is_empty());
    assert!(cluster_roles.list(&selector).await.expect("list").items.is_empty());
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    assert!(crds.get_opt("whatsappchannels.whatsapp-operator.io").await.expect("get").is_some());
}
