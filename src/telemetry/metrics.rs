//! The operator's Prometheus metrics (`whatsapp_operator_*`). Labels are closed sets (results,
//! operations, status codes, phases, reasons): never a URL or secret, and a channel's name only
//! in `receiver_alerts`, whose series exist only for channels whose receiver failed (one per
//! channel and error code, removed with the channel's watch).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::twilio::RequestObserver;

use super::kube_requests::{CountKubeRequests, KubeRequestLabels};

/// `result` of a reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `settled`, `retry`, `finalized`, `skipped` (not the leader), or `error`.
    pub result: String,
    /// For errors: the error's stable label (`kube`, `twilio_5xx`, `deadline`, …); else empty.
    pub error: String,
}

/// A Twilio request's operation and HTTP status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TwilioLabels {
    /// The client operation, e.g. `fetch_account`, `list_whatsapp_senders`.
    pub operation: String,
    /// The HTTP status code, or `none` when no answer came (transport failure, timeout).
    pub status: String,
}

/// A Twilio request's operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// The client operation.
    pub operation: String,
}

/// A channel and a Twilio webhook error code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiverAlertLabels {
    /// The channel's namespace.
    pub namespace: String,
    /// The channel's name.
    pub name: String,
    /// The Twilio error code, e.g. `11200`.
    pub code: String,
}

/// A channel phase.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// The phase (`Ready`, `Failed`, …; `None` before the first reconcile).
    pub phase: String,
}

/// Every metric of the operator, registered once.
pub struct Metrics {
    registry: Registry,
    /// Reconciles by result.
    pub reconciles: Family<ResultLabels, Counter>,
    /// Reconcile duration.
    pub reconcile_duration: Histogram,
    /// Reconciles running now.
    pub reconciles_in_flight: Gauge,
    /// Twilio requests by operation and status.
    pub twilio_requests: Family<TwilioLabels, Counter>,
    /// Twilio request duration by operation.
    pub twilio_duration: Family<OperationLabels, Histogram>,
    /// Channels by phase (refreshed at each scrape from the channel store).
    pub channels: Family<PhaseLabels, Gauge>,
    /// Passes that reported the number held by another channel, receiver or owner (`NumberInUse`,
    /// `BoundElsewhere`, `TakeoverRefused`, `TakeoverContested`).
    pub binding_conflicts: Counter,
    /// Rate-limit holds put on accounts after a 429.
    pub rate_limit_holds: Counter,
    /// 1 while this process leads (or leader election is off), else 0.
    pub leader: Gauge,
    /// The operator's Kubernetes API requests by verb, resource and answer.
    pub kube_requests: Family<KubeRequestLabels, Counter>,
    /// Twilio Debugger alerts about a channel's receiver (failed webhook requests), by channel
    /// and error code.
    pub receiver_alerts: Family<ReceiverAlertLabels, Counter>,
    /// Alert listings made (Monitor API), one per account and interval.
    pub alert_listings: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn duration_histogram() -> Histogram {
    // 5 ms … ~82 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("whatsapp_operator");
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register("reconciles", "Reconcile passes by result", reconciles.clone());
        let reconcile_duration = duration_histogram();
        registry.register_with_unit(
            "reconcile_duration",
            "Duration of a reconcile pass",
            prometheus_client::registry::Unit::Seconds,
            reconcile_duration.clone(),
        );
        let reconciles_in_flight = Gauge::default();
        registry.register("reconciles_in_flight", "Reconcile passes running now", reconciles_in_flight.clone());
        let twilio_requests = Family::<TwilioLabels, Counter>::default();
        registry.register("twilio_requests", "Twilio requests by operation and HTTP status", twilio_requests.clone());
        let twilio_duration =
            Family::<OperationLabels, Histogram>::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "twilio_request_duration",
            "Duration of a Twilio request by operation",
            prometheus_client::registry::Unit::Seconds,
            twilio_duration.clone(),
        );
        let channels = Family::<PhaseLabels, Gauge>::default();
        registry.register("channels", "Channels by phase", channels.clone());
        let binding_conflicts = Counter::default();
        registry.register(
            "binding_conflicts",
            "Passes that reported the number held by another channel, receiver or owner",
            binding_conflicts.clone(),
        );
        let rate_limit_holds = Counter::default();
        registry.register("rate_limit_holds", "Accounts put on hold after a Twilio 429", rate_limit_holds.clone());
        let leader = Gauge::default();
        registry.register("leader", "1 while this process leads (or leader election is off)", leader.clone());
        let kube_requests = Family::<KubeRequestLabels, Counter>::default();
        registry.register(
            "kubernetes_requests",
            "Kubernetes API requests by verb, resource and HTTP status",
            kube_requests.clone(),
        );
        let receiver_alerts = Family::<ReceiverAlertLabels, Counter>::default();
        registry.register(
            "receiver_alerts",
            "Twilio Debugger alerts about a channel's receiver (failed webhook requests) by channel and error code",
            receiver_alerts.clone(),
        );
        let alert_listings = Counter::default();
        registry.register(
            "alert_listings",
            "Listings of a Twilio account's Debugger alerts (Monitor API), one per account and interval",
            alert_listings.clone(),
        );
        Self {
            registry,
            receiver_alerts,
            alert_listings,
            reconciles,
            reconcile_duration,
            reconciles_in_flight,
            twilio_requests,
            twilio_duration,
            channels,
            binding_conflicts,
            rate_limit_holds,
            leader,
            kube_requests,
        }
    }

    /// The tower layer that counts the Kubernetes client's requests into `kube_requests`.
    pub fn kube_layer(&self) -> CountKubeRequests {
        CountKubeRequests::new(self.kube_requests.clone())
    }

    /// Counts one reconcile: `result` and, for errors, the error's label.
    pub fn reconciled(&self, result: &str, error: &str, took: Duration) {
        self.reconciles.get_or_create(&ResultLabels { result: result.into(), error: error.into() }).inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// The observer to give the Twilio client.
    pub fn twilio_observer(self: &Arc<Self>) -> RequestObserver {
        let me = Arc::clone(self);
        Arc::new(move |operation, status, took| {
            let status = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
            me.twilio_requests.get_or_create(&TwilioLabels { operation: operation.into(), status }).inc();
            me.twilio_duration
                .get_or_create(&OperationLabels { operation: operation.into() })
                .observe(took.as_secs_f64());
        })
    }

    /// Sets the channels-by-phase gauge from `phases` (every phase present, zeros included).
    pub fn set_channels<'a>(&self, phases: impl IntoIterator<Item = &'a str>) {
        let mut counts: std::collections::BTreeMap<String, i64> = crate::api::Phase::NAMES
            .iter()
            .map(|p| ((*p).to_owned(), 0))
            .chain(std::iter::once(("None".to_owned(), 0)))
            .collect();
        for p in phases {
            *counts.entry(p.to_owned()).or_insert(0) += 1;
        }
        for (phase, n) in counts {
            self.channels.get_or_create(&PhaseLabels { phase }).set(n);
        }
    }

    /// The metrics in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_show_in_the_text_format() {
        let m = Arc::new(Metrics::new());
        m.reconciled("settled", "", Duration::from_millis(20));
        (m.twilio_observer())("fetch_account", Some(200), Duration::from_millis(5));
        (m.twilio_observer())("fetch_account", None, Duration::from_millis(5));
        m.set_channels(["Ready", "Ready", "Failed"]);
        m.leader.set(1);
        let text = m.encode();
        assert!(text.contains("whatsapp_operator_reconciles_total{result=\"settled\",error=\"\"} 1"), "{text}");
        assert!(text.contains("whatsapp_operator_twilio_requests_total{operation=\"fetch_account\",status=\"200\"} 1"));
        assert!(text.contains("whatsapp_operator_twilio_requests_total{operation=\"fetch_account\",status=\"none\"} 1"));
        assert!(text.contains("whatsapp_operator_channels{phase=\"Ready\"} 2"));
        assert!(text.contains("whatsapp_operator_channels{phase=\"Pending\"} 0"), "every phase is present");
        assert!(text.contains("whatsapp_operator_leader 1"));
        assert!(text.contains("whatsapp_operator_reconcile_duration_seconds_count 1"));
    }
}
