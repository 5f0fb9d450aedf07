//! The integration-test harness: a real API server (started once per run by
//! `hack/with-control-plane.sh`, or any cluster in `KUBECONFIG`), the CRDs, and a fresh
//! namespace per test.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};

pub mod control_plane;
pub mod end_state;
pub mod fleet;
pub mod operator;
pub mod proxy;

/// How long a test waits for anything before it fails.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// One test's view of the cluster.
pub struct TestEnv {
    /// An admin client.
    pub client: Client,
    /// A namespace of this test's own.
    pub ns: String,
}

/// `url` without the operator's ownership marker (`#wao-owner=…`, a URL fragment): the receiver
/// URL Twilio calls. Tests compare webhook URLs this way and check the marker on its own.
pub fn unmarked(url: &str) -> String {
    whatsapp_operator::controller::owner::read(url).url
}

/// The owner the marker on `url` names (`cluster/namespace/name/instance`).
pub fn marker(url: &str) -> Option<String> {
    whatsapp_operator::controller::owner::read(url).owner.map(|o| o.to_string())
}

/// Installs the rustls crypto provider once per process (kube and reqwest share it).
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// Connects to the cluster, installs the CRDs and creates a namespace for the test.
pub async fn setup(prefix: &str) -> TestEnv {
    init_crypto();
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: run the integration tests with `make test` \
         (it starts a local control plane), or point KUBECONFIG at a cluster"
    );
    let client = Client::try_default().await.expect("kube client from KUBECONFIG");
    setup_with(client, prefix).await
}

/// A client of the shared cluster (KUBECONFIG) counting its requests into `metrics`, as the
/// binary's does: give it to an operator started with the same metrics.
pub async fn counted_client(metrics: &whatsapp_operator::telemetry::Metrics) -> Client {
    let cfg = kube::Config::infer().await.expect("kube config from KUBECONFIG");
    kube::client::ClientBuilder::try_from(cfg).expect("kube client").with_layer(&metrics.kube_layer()).build()
}

/// How many requests of `verb` on `resource` (e.g. `whatsappchannels/status`) a counted client
/// made, whatever their answer.
pub fn kube_requests(metrics: &whatsapp_operator::telemetry::Metrics, verb: &str, resource: &str) -> u64 {
    use whatsapp_operator::telemetry::kube_requests::KubeRequestLabels;
    ["200", "201", "404", "409", "410", "422", "500", "503", "none"]
        .iter()
        .map(|code| {
            let labels = KubeRequestLabels { verb: verb.into(), resource: resource.into(), code: (*code).into() };
            metrics.kube_requests.get_or_create(&labels).get()
        })
        .sum()
}

/// [`setup`] on the cluster `client` reaches (e.g. a [`control_plane::ControlPlane`] of the
/// test's own).
pub async fn setup_with(client: Client, prefix: &str) -> TestEnv {
    init_crypto();
    install_crds(&client).await;
    let ns = format!("{prefix}-{}", random_suffix());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut obj = Namespace::default();
    obj.metadata.name = Some(ns.clone());
    obj.metadata.labels = Some([("whatsapp-operator.io/test".to_owned(), prefix.to_owned())].into());
    namespaces.create(&PostParams::default(), &obj).await.expect("create test namespace");
    TestEnv { client, ns }
}

/// Applies `crds/` (the committed YAML, which a unit test keeps equal to the types) by
/// server-side apply and waits until every CRD is established.
pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply("whatsapp-operator-tests").force();
    for crd in whatsapp_operator::crdgen::crds() {
        let name = crd.name_any();
        crds.patch(&name, &pp, &Patch::Apply(&crd)).await.expect("apply CRD");
        within(TIMEOUT, await_condition(crds.clone(), &name, conditions::is_crd_established()))
            .await
            .expect("CRD established");
    }
}

/// A short random lowercase suffix for names.
pub fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..6).map(|_| (b'a' + rng.random_range(0..26)) as char).collect()
}

/// Awaits `fut`, failing the test after `timeout`.
pub async fn within<F: Future>(timeout: Duration, fut: F) -> F::Output {
    tokio::time::timeout(timeout, fut).await.unwrap_or_else(|_| panic!("timed out after {timeout:?}"))
}

/// The kubectl the tests use: the control plane's (1.20) unless `KUBECTL` is set.
pub fn kubectl() -> std::process::Command {
    let bin = std::env::var("KUBECTL").unwrap_or_else(|_| {
        let home = std::env::var("K8S_TESTENV_HOME").unwrap_or_else(|_| {
            let cache = std::env::var("XDG_CACHE_HOME")
                .unwrap_or_else(|_| format!("{}/.cache", std::env::var("HOME").unwrap_or_default()));
            format!("{cache}/k8s-testenv")
        });
        let candidate = format!("{home}/bin/kubectl");
        if std::path::Path::new(&candidate).exists() {
            candidate
        } else {
            "kubectl".to_owned()
        }
    });
    std::process::Command::new(bin)
}

/// Runs kubectl without blocking the test's runtime (the operator under test runs on it).
pub async fn kubectl_run(args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || kubectl().args(&args).output().expect("run kubectl"))
        .await
        .expect("kubectl task")
}
