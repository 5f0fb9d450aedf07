//! The command line: `whatsapp-operator <command>`.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::admission::{AdmissionConfig, Registration, TlsSource};
use crate::check::CheckArgs;
use crate::controller::OperatorConfig;
use crate::telemetry::LogFormat;
use crate::twilio::{AllowRule, OutboundPolicy, TwilioConfig, DEFAULT_API_BASE_URL, DEFAULT_MESSAGING_BASE_URL};

/// Kubernetes operator for WhatsApp messaging channels backed by Twilio.
///
/// Platform teams declare `WhatsAppChannel` resources; the operator verifies the Twilio
/// credentials, points the number's inbound webhook at the application's receiver, sends one
/// confirmation message, guarantees that a number serves one application instance, and reports
/// each channel's health as status conditions (`kubectl wait --for=condition=Ready wac/NAME`).
#[derive(Debug, Parser)]
#[command(name = "whatsapp-operator", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at startup; boxing buys nothing
pub enum Command {
    /// Run the operator against the cluster in KUBECONFIG (or the in-cluster config).
    Run(RunArgs),
    /// Print the CustomResourceDefinitions (YAML) generated from the API types.
    ///
    /// `crds/` holds this output; CI fails when they differ. Apply with
    /// `whatsapp-operator crd | kubectl apply --server-side -f -`.
    Crd,
    /// Validate WhatsAppChannel manifests offline and find numbers claimed twice (GitOps pre-flight).
    ///
    /// Reads files and directories (recursively: *.yaml, *.yml, *.json; hidden entries skipped)
    /// or `-` for standard input, with multi-document YAML and `kind: List`. Every
    /// whatsapp-operator.io object is validated against the CRD schema the API server enforces
    /// (after its pruning and defaulting); unknown fields are warnings, since the API server drops
    /// them silently. Two channels whose numbers normalize to the same E.164 number conflict (in
    /// Sandbox mode only within one Twilio account), as they would in the cluster. A referenced
    /// Secret present in the input is checked for authToken, or apiKeySid and apiKeySecret. Other
    /// kinds are skipped. No cluster is contacted.
    ///
    /// Prints `file:line: severity: message` lines and a summary. Exit status: 0 clean (warnings
    /// allowed), 1 errors found, 2 usage or read errors. Example: `whatsapp-operator check deploy/`.
    Check(CheckArgs),
    /// Show one channel on one screen: conditions, routing at Twilio, owner, plan, confirmation, Events.
    ///
    /// `whatsapp-operator status NAMESPACE/NAME` (or `NAME -n NAMESPACE`; default: the kubeconfig
    /// context's namespace) prints the channel's summary (number, policies, phase, last
    /// verification, a pending `whatsapp-operator.io/verify-now`), its conditions, the routing of
    /// its inbound messages at Twilio (expected and actual object, SID, method and URL, and the
    /// webhook this channel set and would restore), the WhatsAppNumberBinding that holds its number,
    /// the changes `managementPolicy: Observe` plans, the last confirmation message, and its
    /// last 10 Events. Read-only, from Kubernetes alone (what the operator last verified at
    /// Twilio; no Twilio credentials needed), with the kubeconfig (or in-cluster config) and
    /// permissions of the caller: get whatsappchannels and whatsappnumberbindings, list events.
    /// URLs are shown with any userinfo redacted. Exit status: 0 shown, 1 not
    /// found or unreadable, 2 usage errors. To verify at Twilio now, annotate the channel:
    /// `kubectl annotate wac/NAME whatsapp-operator.io/verify-now=$(date +%s) --overwrite`.
    Status(crate::status::StatusArgs),
}

/// Settings of `whatsapp-operator run`. Every flag can also be set by its environment variable.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WAO_NAMESPACE")]
    pub namespace: Option<String>,

    /// Base URL of Twilio's REST API (2010 API). Use a regional edge such as
    /// https://api.dublin.ie1.twilio.com, or a simulator for tests.
    #[arg(long, env = "WAO_TWILIO_API_URL", default_value = DEFAULT_API_BASE_URL)]
    pub twilio_api_url: String,

    /// Base URL of Twilio's Messaging API (WhatsApp senders, Messaging Services).
    #[arg(long, env = "WAO_TWILIO_MESSAGING_URL", default_value = DEFAULT_MESSAGING_BASE_URL)]
    pub twilio_messaging_url: String,

    /// Base URL of Twilio's Conversations API (address configurations, read only). Default:
    /// the Messaging URL with `messaging.` replaced by `conversations.` (any other Messaging URL,
    /// e.g. a simulator, serves both).
    #[arg(long, env = "WAO_TWILIO_CONVERSATIONS_URL")]
    pub twilio_conversations_url: Option<String>,

    /// Base URL of Twilio's Content API (the confirmation template's approval, read only).
    /// Default: the Messaging URL with `messaging.` replaced by `content.` (any other Messaging
    /// URL, e.g. a simulator, serves both).
    #[arg(long, env = "WAO_TWILIO_CONTENT_URL")]
    pub twilio_content_url: Option<String>,
    /// Base URL of Twilio's Monitor API (the Debugger's alerts, read only). Default: the
    /// Messaging URL with `messaging.` replaced by `monitor.` (any other Messaging URL, e.g. a
    /// simulator, serves both).
    #[arg(long, env = "WAO_TWILIO_MONITOR_URL")]
    pub twilio_monitor_url: Option<String>,

    /// Timeout of one Twilio request.
    #[arg(long, env = "WAO_TWILIO_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub twilio_timeout: Duration,

    /// Allow plain-http Twilio base URLs on hosts other than loopback (an in-cluster simulator).
    #[arg(long, env = "WAO_ALLOW_INSECURE_HTTP")]
    pub allow_insecure_http: bool,

    /// Where the operator may send requests to URLs taken from channel specs (the identity
    /// server): host names (`id.example.com`), `*.domain` wildcards, IP addresses or CIDRs
    /// (`10.0.0.0/8`); repeat the flag or separate entries with commas. When set, only these
    /// are contacted (a name not listed is allowed when all its addresses are in a listed
    /// CIDR). Always refused unless a listed CIDR holds them: link-local (169.254.0.0/16, cloud
    /// metadata; fe80::/10), fd00:ec2::254, 100.100.100.200, unspecified, multicast. Plain
    /// http only to loopback. See docs/security.md.
    #[arg(long, env = "WAO_OUTBOUND_ALLOW", value_delimiter = ',', value_parser = parse_allow_rule)]
    pub outbound_allow: Vec<AllowRule>,

    /// Watch each receiver's TLS certificate (`spec.webhook.url`): a TLS handshake only, no
    /// HTTP request, checking chain, host name and expiry; reported as the ReceiverTLS
    /// condition (not part of Ready). The outbound rules (--outbound-allow, no link-local or
    /// metadata addresses) apply.
    #[arg(long, env = "WAO_RECEIVER_TLS_CHECK")]
    pub receiver_tls_check: bool,

    /// With --receiver-tls-check: warn (ReceiverTLS=False, CertificateExpiring) this many days
    /// before the receiver's certificate expires.
    #[arg(long, env = "WAO_RECEIVER_TLS_WARN_DAYS", default_value_t = 14)]
    pub receiver_tls_warn_days: u32,

    /// With --receiver-tls-check: how long one handshake's result stands; one handshake per
    /// receiver host:port and interval, shared by the channels with that receiver.
    #[arg(long, env = "WAO_RECEIVER_TLS_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub receiver_tls_interval: Duration,

    /// With --receiver-tls-check: a PEM file of CA certificates trusted for receivers in
    /// addition to the platform's roots (a private CA).
    #[arg(long, env = "WAO_RECEIVER_TLS_CA")]
    pub receiver_tls_ca: Option<String>,

    /// How often each channel's credentials, number and webhook are verified at Twilio (drift
    /// detection). Verification of one account's credentials is shared by its channels.
    #[arg(long, env = "WAO_VERIFY_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub verify_interval: Duration,

    /// How often each Twilio account's Debugger alerts (Monitor API) are listed for the
    /// ReceiverHealthy condition: one listing per account, shared by all its channels, at most
    /// --alerts-max-pages pages. Needs credentials that may read Monitor alerts. 0 turns
    /// receiver health off (no listing, no ReceiverHealthy condition).
    #[arg(long, env = "WAO_ALERTS_INTERVAL", default_value = "1m", value_parser = humantime::parse_duration)]
    pub alerts_interval: Duration,

    /// How long after its last failed webhook request (a Twilio alert about the channel's
    /// webhook URL) a receiver counts as healthy again; also how far back the first listing
    /// looks.
    #[arg(long, env = "WAO_RECEIVER_QUIET_WINDOW", default_value = "15m", value_parser = humantime::parse_duration)]
    pub receiver_quiet_window: Duration,

    /// Pages of 200 alerts one alerts listing reads at most (a bound on Twilio calls: a
    /// condition built from a truncated listing says "at least").
    #[arg(long, env = "WAO_ALERTS_MAX_PAGES", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub alerts_max_pages: u64,

    /// How often a WhatsApp sender that is not online yet is checked again.
    #[arg(long, env = "WAO_SENDER_POLL_INTERVAL", default_value = "15m", value_parser = humantime::parse_duration)]
    pub sender_poll_interval: Duration,

    /// How often a channel with a problem only a change can fix (bad credentials, unknown number)
    /// is retried anyway. Secret and spec changes are acted on at once.
    #[arg(long, env = "WAO_PERMANENT_RETRY_INTERVAL", default_value = "30m", value_parser = humantime::parse_duration)]
    pub permanent_retry_interval: Duration,

    /// First delay after a transient failure (Twilio 5xx, 429, timeouts); doubles per failure,
    /// with jitter, up to --backoff-max. A Retry-After header is honoured.
    #[arg(long, env = "WAO_BACKOFF_BASE", default_value = "1s", value_parser = humantime::parse_duration)]
    pub backoff_base: Duration,

    /// Longest delay after transient failures.
    #[arg(long, env = "WAO_BACKOFF_MAX", default_value = "5m", value_parser = humantime::parse_duration)]
    pub backoff_max: Duration,

    /// How many channels are reconciled at once. Passes mostly wait on Twilio (a fleet of
    /// 10,000 channels reaches Ready at about the API server's pace with 64; see README
    /// "Benchmarks"); Twilio's per-account limits are respected through 429 holds either way.
    #[arg(long, env = "WAO_CONCURRENCY", default_value_t = 64)]
    pub concurrency: u16,

    /// The longest one reconcile pass may take, Twilio paging included. A pass that takes
    /// longer is abandoned and retried with backoff, so a stuck Twilio or identity server
    /// cannot hold the workers; shutdown (SIGTERM) waits at most this long for running passes.
    #[arg(long, env = "WAO_PASS_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub pass_timeout: Duration,

    /// This cluster's identity in the ownership markers the operator keeps at Twilio
    /// (`#wao-owner=<cluster-id>/<namespace>/<name>/<instance>` on each webhook URL it sets):
    /// letters, digits, `.`, `_`, `-`, at most 63. Default: the UID of the kube-system
    /// namespace (needs `get` on it). Keep it stable: a changed identity sees its own numbers
    /// as another cluster's (see docs/api.md, ownership).
    #[arg(long, env = "WAO_CLUSTER_ID", value_parser = parse_cluster_id)]
    pub cluster_id: Option<String>,

    /// This process's name in Events (e.g. the pod name).
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,

    /// Serve `/metrics` (Prometheus text format), `/healthz` and `/readyz` (ready once the
    /// caches have listed the cluster) on this address.
    #[arg(long, env = "WAO_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,

    /// Elect a leader among the replicas on a coordination.k8s.io Lease: only the leader
    /// reconciles (every replica keeps its caches warm and serves the admission webhook). Off:
    /// this process always reconciles (one replica).
    #[arg(long, env = "WAO_LEADER_ELECT")]
    pub leader_elect: bool,

    /// The namespace of the leader-election Lease. Default: $POD_NAMESPACE, else `default`.
    #[arg(long, env = "WAO_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// The name of the leader-election Lease.
    #[arg(long, env = "WAO_LEADER_ELECTION_ID", default_value = "whatsapp-operator")]
    pub leader_election_id: String,

    /// How long the Lease stands without renewal before another replica may take it over.
    #[arg(long, env = "WAO_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,

    /// How long the leader keeps trying to renew before it stops reconciling; shorter than
    /// --lease-duration, so it has stopped before another replica can take over.
    #[arg(long, env = "WAO_RENEW_DEADLINE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub renew_deadline: Duration,

    /// How often the leader renews the Lease and the others try to acquire it.
    #[arg(long, env = "WAO_RETRY_PERIOD", default_value = "2s", value_parser = humantime::parse_duration)]
    pub retry_period: Duration,

    /// Log format.
    #[arg(long, env = "WAO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,

    /// Serve the validating admission webhook (rejects a channel whose number another channel
    /// holds) over HTTPS on this address, e.g. 127.0.0.1:9443. Off when absent.
    #[arg(long, env = "WAO_ADMISSION_ADDR")]
    pub admission_addr: Option<std::net::SocketAddr>,

    /// The URL the API server calls, e.g. https://127.0.0.1:9443 (path defaults to
    /// /validate-whatsappchannel). Default: derived from --admission-addr. Its host is added to a
    /// generated certificate.
    #[arg(long, env = "WAO_ADMISSION_URL", requires = "admission_addr")]
    pub admission_url: Option<String>,

    /// Write the ValidatingWebhookConfiguration `whatsapp-operator` (URL, CA bundle) at startup
    /// and remove it at shutdown. For local use; in a cluster the chart installs it.
    #[arg(long, env = "WAO_ADMISSION_REGISTER", requires = "admission_addr")]
    pub admission_register: bool,

    /// The webhook's serving certificate chain (PEM), e.g. from a Secret; re-read when it changes.
    /// Without it a CA and a certificate for 127.0.0.1/localhost are generated at startup.
    #[arg(long, env = "WAO_ADMISSION_TLS_CERT", requires_all = ["admission_addr", "admission_tls_key"])]
    pub admission_tls_cert: Option<std::path::PathBuf>,

    /// The private key (PEM) of --admission-tls-cert.
    #[arg(long, env = "WAO_ADMISSION_TLS_KEY", requires = "admission_tls_cert")]
    pub admission_tls_key: Option<std::path::PathBuf>,
}

/// Parses one `--outbound-allow` entry (clap wants an owned-string error source).
fn parse_allow_rule(entry: &str) -> Result<AllowRule, String> {
    entry.parse().map_err(|e: crate::twilio::AllowRuleError| e.to_string())
}

/// Parses `--cluster-id`.
fn parse_cluster_id(id: &str) -> Result<String, String> {
    if crate::controller::owner::valid_cluster_id(id) {
        Ok(id.to_owned())
    } else {
        Err("letters, digits, '.', '_' and '-' only, 1-63 characters".to_owned())
    }
}

impl RunArgs {
    /// The leader-election settings, when leader election is on.
    pub fn lease_config(&self) -> Option<crate::leader::LeaseConfig> {
        if !self.leader_elect {
            return None;
        }
        let namespace = self
            .leader_election_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty()))
            .unwrap_or_else(|| "default".to_owned());
        let identity = self.instance.clone().unwrap_or_else(|| {
            use rand::Rng;
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "whatsapp-operator".into());
            format!("{host}-{:08x}", rand::rng().random::<u32>())
        });
        Some(crate::leader::LeaseConfig {
            namespace,
            name: self.leader_election_id.clone(),
            identity,
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        })
    }

    /// The operator settings these flags describe.
    pub fn config(&self) -> OperatorConfig {
        let twilio = TwilioConfig {
            api_base_url: self.twilio_api_url.clone(),
            messaging_base_url: self.twilio_messaging_url.clone(),
            conversations_base_url: self.twilio_conversations_url.clone(),
            content_base_url: self.twilio_content_url.clone(),
            monitor_base_url: self.twilio_monitor_url.clone(),
            timeout: self.twilio_timeout,
            allow_insecure_http: self.allow_insecure_http,
            ..TwilioConfig::default()
        };
        let mut config = OperatorConfig::new(twilio);
        config.namespace = self.namespace.clone();
        config.verify_interval = self.verify_interval;
        config.sender_poll_interval = self.sender_poll_interval;
        config.alerts_interval = if self.alerts_interval.is_zero() {
            self.alerts_interval
        } else {
            self.alerts_interval.max(std::time::Duration::from_millis(100))
        };
        config.receiver_quiet_window = self.receiver_quiet_window;
        config.alerts_max_pages = usize::try_from(self.alerts_max_pages).unwrap_or(5);
        config.permanent_retry_interval = self.permanent_retry_interval;
        config.backoff_base = self.backoff_base;
        config.backoff_max = self.backoff_max;
        config.concurrency = self.concurrency;
        config.instance = self.instance.clone();
        config.pass_timeout = self.pass_timeout;
        config.outbound = OutboundPolicy::new(self.outbound_allow.clone());
        config.cluster_id = self.cluster_id.clone();
        if self.receiver_tls_check {
            let mut tls = crate::controller::receiver_tls::ReceiverTlsConfig::new(Vec::new());
            tls.warn_before = Duration::from_secs(u64::from(self.receiver_tls_warn_days) * 86_400);
            tls.interval = self.receiver_tls_interval;
            tls.ca_file = self.receiver_tls_ca.clone();
            config.receiver_tls = Some(tls);
        }
        config
    }

    /// The admission webhook settings these flags describe; `None` when it is off.
    pub fn admission_config(&self) -> Option<AdmissionConfig> {
        let addr = self.admission_addr?;
        let mut config = AdmissionConfig::new(addr);
        config.url = self.admission_url.clone();
        if let (Some(cert), Some(key)) = (&self.admission_tls_cert, &self.admission_tls_key) {
            config.tls = TlsSource::Files { cert: cert.clone(), key: key.clone() };
        }
        config.registration = self.admission_register.then(Registration::new);
        Some(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed_and_defaults_are_documented() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["whatsapp-operator", "run"]).expect("parse");
        let Command::Run(args) = cli.command else { panic!("run") };
        let config = args.config();
        assert_eq!(config.verify_interval, Duration::from_secs(600));
        assert_eq!(config.twilio.api_base_url, DEFAULT_API_BASE_URL);
        assert_eq!(config.namespace, None);
        assert_eq!(config.cluster_id, None, "default: the kube-system namespace's UID, read at start");
        assert!(args.admission_config().is_none());
    }

    #[test]
    fn the_cluster_id_is_checked() {
        let cli = Cli::try_parse_from(["whatsapp-operator", "run", "--cluster-id", "eu-west-1"]).expect("parse");
        let Command::Run(args) = cli.command else { panic!("run") };
        assert_eq!(args.config().cluster_id.as_deref(), Some("eu-west-1"));
        assert!(Cli::try_parse_from(["whatsapp-operator", "run", "--cluster-id", "a/b"]).is_err());
    }

    #[test]
    fn admission_flags_make_the_webhook_config() {
        let cli = Cli::try_parse_from([
            "whatsapp-operator",
            "run",
            "--admission-addr=127.0.0.1:9443",
            "--admission-url=https://127.0.0.1:9443",
            "--admission-register",
        ])
        .expect("parse");
        let Command::Run(args) = cli.command else { panic!("run") };
        let config = args.admission_config().expect("on");
        assert_eq!(config.addr.port(), 9443);
        assert_eq!(config.tls, TlsSource::SelfSigned { hosts: Vec::new() });
        assert_eq!(config.registration.map(|r| r.name).as_deref(), Some("whatsapp-operator"));

        let files = Cli::try_parse_from([
            "whatsapp-operator",
            "run",
            "--admission-addr=0.0.0.0:9443",
            "--admission-tls-cert=/tls/tls.crt",
            "--admission-tls-key=/tls/tls.key",
        ])
        .expect("parse");
        let Command::Run(args) = files.command else { panic!("run") };
        let config = args.admission_config().expect("on");
        assert!(matches!(config.tls, TlsSource::Files { .. }));
        assert!(config.registration.is_none());

        for missing in
            [vec!["--admission-addr=127.0.0.1:9443", "--admission-tls-cert=/tls/tls.crt"], vec!["--admission-register"]]
        {
            let argv = ["whatsapp-operator", "run"].into_iter().chain(missing.iter().copied());
            assert!(Cli::try_parse_from(argv).is_err(), "{missing:?}");
        }
    }

    #[test]
    fn the_receiver_tls_watch_is_opt_in() {
        let off = Cli::try_parse_from(["whatsapp-operator", "run"]).expect("parse");
        let Command::Run(args) = off.command else { panic!("run") };
        assert!(args.config().receiver_tls.is_none());
        let on = Cli::try_parse_from([
            "whatsapp-operator",
            "run",
            "--receiver-tls-check",
            "--receiver-tls-warn-days=30",
            "--receiver-tls-interval=15m",
        ])
        .expect("parse");
        let Command::Run(args) = on.command else { panic!("run") };
        let tls = args.config().receiver_tls.expect("on");
        assert_eq!(tls.warn_before, Duration::from_secs(30 * 86_400));
        assert_eq!(tls.interval, Duration::from_secs(900));
        assert_eq!(tls.ca_file, None);
    }

    #[test]
    fn outbound_allow_is_repeatable_and_comma_separated() {
        let cli = Cli::try_parse_from([
            "whatsapp-operator",
            "run",
            "--outbound-allow=id.example.com,*.corp.example",
            "--outbound-allow",
            "10.0.0.0/8",
        ])
        .expect("parse");
        let Command::Run(args) = cli.command else { panic!("run") };
        let policy = args.config().outbound;
        let want: Vec<AllowRule> =
            ["id.example.com", "*.corp.example", "10.0.0.0/8"].iter().map(|e| e.parse().expect("rule")).collect();
        assert_eq!(policy.allow_list(), want.as_slice());
        let default = Cli::try_parse_from(["whatsapp-operator", "run"]).expect("parse");
        let Command::Run(args) = default.command else { panic!("run") };
        assert!(args.config().outbound.allow_list().is_empty());
        let err = Cli::try_parse_from(["whatsapp-operator", "run", "--outbound-allow=https://id.example.com"])
            .expect_err("a URL is not an entry");
        assert!(err.to_string().contains("is not a host name, *.domain, IP address or CIDR"), "{err}");
    }
}
