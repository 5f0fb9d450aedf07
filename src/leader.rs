//! Leader election on a `coordination.k8s.io/v1` Lease, the way client-go does it: the holder
//! renews the Lease every `retry_period`; a candidate takes it over only once the record it
//! observed has not changed for `lease_duration` (measured on its own clock, so clock skew
//! between replicas does not matter); every write is a compare-and-swap on the Lease's
//! `resourceVersion`. A leader that has not renewed for `renew_deadline` (shorter than
//! `lease_duration`) steps down at once, so it stops acting before another replica can take
//! over.
//!
//! The outcome is a [`tokio::sync::watch`] of "this process leads now" that the controllers
//! read before and during every pass.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::sync::watch;
use tokio::time::Instant;

/// Leader-election settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This process's identity (the Pod name, or host name and a random suffix).
    pub identity: String,
    /// How long a Lease stands without renewal before another replica may take it.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it steps down (< `lease_duration`).
    pub renew_deadline: Duration,
    /// How often the leader renews and a candidate tries.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// Checks the timing rules client-go enforces: `lease_duration > renew_deadline >
    /// retry_period > 0`.
    pub fn validate(&self) -> Result<(), String> {
        if self.retry_period.is_zero() {
            return Err("the leader-election retry period must be positive".into());
        }
        if self.renew_deadline <= self.retry_period {
            return Err("the leader-election renew deadline must be longer than the retry period".into());
        }
        if self.lease_duration <= self.renew_deadline {
            return Err("the leader-election lease duration must be longer than the renew deadline".into());
        }
        Ok(())
    }
}

/// Whether this process leads, as the elector last decided. (The second field only keeps the
/// channel of [`Leadership::always`] open.)
#[derive(Clone, Debug)]
pub struct Leadership(watch::Receiver<Term>, #[allow(dead_code)] Option<std::sync::Arc<watch::Sender<Term>>>);

/// Whether this process leads, and how many times it has become the leader (so that no
/// acquisition is missed, however quickly leadership flips).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Term {
    /// Leads now.
    pub leads: bool,
    /// Acquisitions so far.
    pub acquisitions: u64,
}

impl Term {
    fn gained(self) -> Self {
        if self.leads {
            self
        } else {
            Self { leads: true, acquisitions: self.acquisitions + 1 }
        }
    }

    fn lost(self) -> Self {
        Self { leads: false, ..self }
    }
}

impl Leadership {
    /// A leadership that always leads (leader election off: one replica).
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(Term { leads: true, acquisitions: 1 });
        // Keeps the channel open: the value never changes.
        Self(rx, Some(std::sync::Arc::new(tx)))
    }

    /// Whether this process leads now.
    pub fn is_leader(&self) -> bool {
        self.0.borrow().leads
    }

    /// Resolves once this process does not lead (at once if it does not lead now).
    pub async fn lost(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|t| !t.leads).await;
    }

    /// Resolves once this process leads.
    pub async fn gained(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|t| t.leads).await;
    }

    /// A stream that yields each time this process becomes the leader.
    pub fn acquisitions(&self) -> impl futures::Stream<Item = ()> + Send + 'static {
        let rx = self.0.clone();
        futures::stream::unfold((rx, 0u64), |(mut rx, mut seen)| async move {
            loop {
                let now = *rx.borrow_and_update();
                if now.acquisitions > seen {
                    seen = now.acquisitions;
                    return Some(((), (rx, seen)));
                }
                rx.changed().await.ok()?;
            }
        })
    }
}

/// What the elector knows of the Lease record it last observed.
struct Observed {
    /// The holder, the renew time and the transitions of the record.
    record: (Option<String>, Option<MicroTime>, Option<i32>),
    /// When this process first saw that record (its own clock).
    since: Instant,
}

/// Runs the election until `shutdown` resolves, publishing leadership through the returned
/// [`Leadership`]; a leader releases the Lease on shutdown so that another replica takes over at
/// once.
pub fn start(
    client: Client,
    config: LeaseConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> (Leadership, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(Term::default());
    let task = tokio::spawn(async move {
        let api: Api<Lease> = Api::namespaced(client, &config.namespace);
        tokio::pin!(shutdown);
        let mut observed: Option<Observed> = None;
        let mut last_renew: Option<Instant> = None;
        loop {
            // Each attempt is bounded: a leader must be able to step down by its renew deadline
            // even when the API server accepts connections but never answers (a renewal that
            // hangs would otherwise keep it "leading" long after the Lease has passed on).
            let budget = match last_renew {
                Some(t) => config.renew_deadline.saturating_sub(Instant::now().duration_since(t)),
                None => config.renew_deadline,
            };
            let outcome = match tokio::time::timeout(budget, try_acquire_or_renew(&api, &config, &mut observed)).await {
                Ok(Ok(leads)) => Ok(leads),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer from the API server within {budget:?}")),
            };
            let now = Instant::now();
            match outcome {
                Ok(true) => {
                    last_renew = Some(now);
                    if !tx.borrow().leads {
                        tracing::info!(lease = %config.name, identity = %config.identity, "became the leader");
                    }
                    tx.send_modify(|t| *t = t.gained());
                }
                Ok(false) => {
                    if tx.borrow().leads {
                        tracing::warn!(lease = %config.name, "another replica holds the lease: stepping down");
                    }
                    last_renew = None;
                    tx.send_modify(|t| *t = t.lost());
                }
                Err(e) => {
                    tracing::warn!(lease = %config.name, error = %e, "cannot read or write the lease");
                    if last_renew.is_some_and(|t| now.duration_since(t) >= config.renew_deadline) {
                        tracing::warn!(lease = %config.name, "no renewal within the renew deadline: stepping down");
                        last_renew = None;
                    }
                    if last_renew.is_none() {
                        tx.send_modify(|t| *t = t.lost());
                    }
                }
            }
            // A leader that cannot renew steps down no later than the renew deadline.
            let wait = match last_renew {
                Some(t) => config.retry_period.min(config.renew_deadline.saturating_sub(now.duration_since(t))),
                None => config.retry_period,
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        if tx.borrow().leads {
            tx.send_modify(|t| *t = t.lost());
            release(&api, &config).await;
        }
    });
    (Leadership(rx, None), task)
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// One round: `Ok(true)` when this process holds the Lease after it.
async fn try_acquire_or_renew(
    api: &Api<Lease>,
    config: &LeaseConfig,
    observed: &mut Option<Observed>,
) -> Result<bool, kube::Error> {
    let seconds = i32::try_from(config.lease_duration.as_secs()).unwrap_or(i32::MAX).max(1);
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: kube::api::ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(seconds),
                acquire_time: Some(now_micro()),
                renew_time: Some(now_micro()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let record = (spec.holder_identity.clone(), spec.renew_time.clone(), spec.lease_transitions);
    let now = Instant::now();
    if observed.as_ref().is_none_or(|o| o.record != record) {
        *observed = Some(Observed { record: record.clone(), since: now });
    }
    let mine = spec.holder_identity.as_deref() == Some(config.identity.as_str());
    let free = spec.holder_identity.as_deref().is_none_or(str::is_empty);
    let stood = observed.as_ref().map_or(Duration::ZERO, |o| now.duration_since(o.since));
    let their_duration =
        spec.lease_duration_seconds.map_or(config.lease_duration, |s| Duration::from_secs(s.max(0) as u64));
    if !mine && !free && stood < their_duration {
        return Ok(false);
    }
    let mut next = spec.clone();
    if !mine {
        next.acquire_time = Some(now_micro());
        next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    next.holder_identity = Some(config.identity.clone());
    next.lease_duration_seconds = Some(seconds);
    next.renew_time = Some(now_micro());
    lease.spec = Some(next);
    // Compare-and-swap: the replace carries the resourceVersion read.
    match api.replace(&config.name, &PostParams::default(), &lease).await {
        Ok(written) => {
            let s = written.spec.unwrap_or_default();
            *observed = Some(Observed { record: (s.holder_identity, s.renew_time, s.lease_transitions), since: now });
            Ok(true)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the Lease up (holder cleared), so that another replica need not wait for it to expire.
async fn release(api: &Api<Lease>, config: &LeaseConfig) {
    let Ok(Some(mut lease)) = api.get_opt(&config.name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(now_micro());
    match api.replace(&config.name, &PostParams::default(), &lease).await {
        Ok(_) => tracing::info!(lease = %config.name, "released the lease"),
        Err(e) => tracing::warn!(lease = %config.name, error = %e, "cannot release the lease"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(lease: u64, renew: u64, retry: u64) -> LeaseConfig {
        LeaseConfig {
            namespace: "ns".into(),
            name: "l".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(lease),
            renew_deadline: Duration::from_secs(renew),
            retry_period: Duration::from_secs(retry),
        }
    }

    #[test]
    fn timings_must_nest() {
        assert!(cfg(15, 10, 2).validate().is_ok());
        assert!(cfg(10, 10, 2).validate().is_err());
        assert!(cfg(15, 2, 2).validate().is_err());
        assert!(cfg(15, 10, 0).validate().is_err());
    }

    #[tokio::test]
    async fn leadership_reports_gains_and_losses() {
        use futures::StreamExt;
        let (tx, rx) = watch::channel(Term::default());
        let l = Leadership(rx, None);
        let mut gains = Box::pin(l.acquisitions());
        assert!(!l.is_leader());
        tx.send_modify(|t| *t = t.gained());
        assert_eq!(gains.next().await, Some(()));
        assert!(l.is_leader());
        // Lost and regained before anyone looked: the second acquisition is still reported.
        tx.send_modify(|t| *t = t.lost());
        l.lost().await;
        tx.send_modify(|t| *t = t.gained());
        let next = tokio::time::timeout(Duration::from_secs(5), gains.next()).await;
        assert_eq!(next.ok().flatten(), Some(()), "a second acquisition is reported too");
        let always = Leadership::always();
        assert!(always.is_leader());
        let first = tokio::time::timeout(Duration::from_secs(5), Box::pin(always.acquisitions()).next()).await;
        assert_eq!(first.ok().flatten(), Some(()), "leading from the start counts as an acquisition");
    }
}
