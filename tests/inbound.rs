//! Inbound health against the strict simulator and a real API server: inbound WhatsApp messages
//! injected at the simulator go to HTTPS test receivers (which check `X-Twilio-Signature`);
//! Twilio's alerts for the failed ones (502, timeout, untrusted certificate, connection refused)
//! become `ReceiverHealthy` with each its reason and code, without flipping `Ready`; it recovers
//! after the quiet window; the alerts are listed once per account and interval however many
//! channels share the account; credentials that may not read alerts give `Unknown`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use twilio_sim::receiver::{Receiver, TokenLookup};
use twilio_sim::webhook::{InboundMessage, WebhookSettings};
use twilio_sim::{FaultAction, FaultRule};
use whatsapp_operator::api::WhatsAppChannel;

use common::operator::*;

const INTERVAL: Duration = Duration::from_millis(300);
const QUIET: Duration = Duration::from_secs(4);

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

struct World {
    f: Fixture,
    trusted: Receiver,
    untrusted: Receiver,
    numbers: Vec<String>,
}

/// `n` senders on one account, receivers that know its token, the simulator trusting only the
/// first receiver's CA, with short webhook timeouts.
async fn world(prefix: &str, n: usize) -> World {
    let numbers: Vec<String> = (0..n).map(|_| random_number()).collect();
    let seeded = numbers.clone();
    let f = Fixture::new(prefix, move |_, _| {
        let mut s = "  whatsapp_senders:\n".to_owned();
        for n in &seeded {
            s.push_str(&format!("  - sender_id: whatsapp:{n}\n    status: ONLINE\n"));
        }
        s
    })
    .await;
    let account = f.account.clone();
    let tokens: TokenLookup = Arc::new(move |sid: &str| (sid == account).then(|| FIXTURE_TOKEN.to_owned()));
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let trusted = Receiver::start_tls(any, tokens.clone()).await.expect("receiver");
    let untrusted = Receiver::start_tls(any, tokens).await.expect("receiver");
    f.sim.set_webhook_settings(WebhookSettings {
        timeout_ms: 500,
        connect_timeout_ms: 300,
        connect_retries: 1,
        extra_roots_pem: vec![trusted.ca_pem().expect("ca").to_owned()],
    });
    World { f, trusted, untrusted, numbers }
}

fn cfg(w: &World) -> whatsapp_operator::controller::OperatorConfig {
    let mut c = config(&w.f.env, &w.f.sim);
    c.alerts_interval = INTERVAL;
    c.receiver_quiet_window = QUIET;
    c
}

async fn inject(w: &World, number: &str, body: &str) -> twilio_sim::webhook::Delivery {
    let msg = InboundMessage { from: "+14155550123".into(), body: body.into(), profile_name: Some("Ada".into()) };
    w.f.sim.inject_inbound(&w.f.account, number, &msg).await.expect("inject")
}

fn receiver_is(ch: &WhatsAppChannel, status: &str, reason: &str) -> bool {
    has(ch, "ReceiverHealthy", status, reason)
}

fn list_alerts(sim: &twilio_sim::SimHandle) -> Vec<twilio_sim::RequestRecord> {
    sim.requests().into_iter().filter(|r| r.route.as_deref() == Some("ListAlert")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_has_its_reason_ready_stays_and_it_recovers_after_the_quiet_window() {
    let w = world("inbound", 5).await;
    let (env, sim) = (&w.f.env, &w.f.sim);
    let trusted = w.trusted.base_url();
    let urls = [
        ("healthy", format!("{trusted}/hook")),
        ("bad-gateway", format!("{trusted}/status/502")),
        ("slow", format!("{trusted}/slow/3000")),
        ("bad-cert", format!("{}/hook", w.untrusted.base_url())),
        ("refused", format!("https://127.0.0.1:{}/hook", closed_port())),
    ];
    let metrics = Arc::new(whatsapp_operator::telemetry::Metrics::new());
    let _op = start_operator_with(&env.client, cfg(&w), metrics.clone(), None);
    for ((name, url), number) in urls.iter().zip(&w.numbers) {
        create_channel(env, name, channel_spec(&w.f.account, number, url)).await;
    }
    for (name, _) in &urls {
        wait_for(env, name, "Ready with a healthy receiver", |ch| {
            has(ch, "Ready", "True", "ChannelReady") && receiver_is(ch, "True", "ReceiverHealthy")
        })
        .await;
    }

    // One inbound message to each number.
    let started = Instant::now();
    sim.clear_requests();
    let mut deliveries = Vec::new();
    for number in &w.numbers {
        deliveries.push(inject(&w, number, "hello").await);
    }
    assert!(deliveries[0].delivered, "{:?}", deliveries[0]);
    let got = w.trusted.received();
    let hello = got.iter().find(|r| r.path == "/hook").expect("the healthy receiver got the message");
    assert!(hello.signature_valid, "signed with the account's token over the URL Twilio requested: {hello:?}");
    assert_eq!(hello.param("Body"), Some("hello"));
    assert_eq!(hello.param("To"), Some(format!("whatsapp:{}", w.numbers[0]).as_str()));
    let codes: Vec<Option<u32>> = deliveries.iter().map(|d| d.attempts.first().and_then(|a| a.error_code)).collect();
    assert_eq!(codes, [None, Some(11200), Some(11205), Some(11237), Some(11205)], "{deliveries:#?}");

    let expect = [
        ("bad-gateway", "WebhookFailing", "11200"),
        ("slow", "ReceiverUnreachable", "11205"),
        ("bad-cert", "ReceiverTLSInvalid", "11237"),
        ("refused", "ReceiverUnreachable", "11205"),
    ];
    for (name, reason, code) in expect {
        let ch = wait_for(env, name, reason, move |ch| receiver_is(ch, "False", reason)).await;
        let c = current(&ch, "ReceiverHealthy").expect("condition");
        assert!(c.message.contains("1 failed") && c.message.contains(&format!("error {code}")), "{}", c.message);
        assert!(has(&ch, "Ready", "True", "ChannelReady"), "Ready is not flipped by default: {:#?}", ch.status);
        let (type_, _, note) = wait_event(env, name, reason).await;
        assert_eq!(type_, "Warning", "{note}");
    }
    let ch = get_channel(env, "healthy").await;
    assert!(receiver_is(&ch, "True", "ReceiverHealthy"), "{:#?}", ch.status);
    let shown = metrics.encode();
    let series = |name: &str, code: &str| {
        shown.lines().any(|l| {
            l.starts_with("whatsapp_operator_receiver_alerts_total{")
                && l.contains(&format!("name=\"{name}\""))
                && l.contains(&format!("code=\"{code}\""))
                && l.ends_with(" 1")
        })
    };
    assert!(series("bad-gateway", "11200") && series("bad-cert", "11237") && series("refused", "11205"), "{shown}");

    // Quiet: healthy again after the window, woken by the poller (no spec change, no new alert).
    for (name, _, _) in expect {
        wait_for(env, name, "healthy after the quiet window", |ch| receiver_is(ch, "True", "ReceiverHealthy")).await;
    }
    let elapsed = started.elapsed();
    // Alert times have whole seconds: up to a second earlier than the injection.
    assert!(elapsed >= QUIET - Duration::from_secs(1), "recovered only after the quiet window: {elapsed:?}");
    eprintln!("inbound: {} alert listings in {elapsed:?} for 5 channels of one account", list_alerts(sim).len());

    // One listing per account and interval for the five channels, every one held to the spec.
    let listings = list_alerts(sim);
    let bound = (elapsed.as_millis() / INTERVAL.as_millis()) as usize + 2;
    assert!(
        !listings.is_empty() && listings.len() <= bound,
        "{} listings in {elapsed:?} (bound {bound})",
        listings.len()
    );
    for pair in listings.windows(2) {
        let gap = (pair[1].time - pair[0].time).num_milliseconds();
        assert!(gap >= INTERVAL.as_millis() as i64 - 50, "listings of one account are an interval apart: {gap} ms");
        let start = pair[1].query_value("StartDate").expect("StartDate");
        assert!(chrono::DateTime::parse_from_rfc3339(start).is_ok(), "{start}");
    }
    assert!(listings.iter().all(|r| r.query_value("PageSize") == Some("200")));

    // A deleted channel takes its metric series with it.
    let api: kube::Api<WhatsAppChannel> = kube::Api::namespaced(env.client.clone(), &env.ns);
    api.delete("bad-gateway", &Default::default()).await.expect("delete");
    common::within(common::TIMEOUT, async {
        while api.get_opt("bad-gateway").await.expect("get").is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let shown = metrics.encode();
    assert!(!shown.contains("name=\"bad-gateway\""), "{shown}");
    assert!(shown.contains("name=\"bad-cert\""), "the others stay: {shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_that_may_not_read_alerts_give_unknown_and_affects_ready_flips_ready() {
    let w = world("inbound-403", 2).await;
    let (env, sim) = (&w.f.env, &w.f.sim);
    let rule = FaultRule::new(FaultAction::Error { status: 403, code: Some(20003), message: Some("Forbidden".into()) })
        .path("^/v1/Alerts");
    let fault = sim.add_fault(rule).expect("fault");
    let _op = start_operator(&env.client, cfg(&w));
    let url = format!("{}/status/502", w.trusted.base_url());
    let hook = format!("{}/hook", w.trusted.base_url());
    create_channel(env, "blind", channel_spec(&w.f.account, &w.numbers[0], &hook)).await;
    let ch = wait_for(env, "blind", "alerts unreadable", |ch| receiver_is(ch, "Unknown", "AlertsUnreadable")).await;
    assert!(has(&ch, "Ready", "True", "ChannelReady"), "{:#?}", ch.status);

    // Readable again; a channel that asks for it is not Ready while its receiver fails.
    sim.remove_fault(fault);
    let mut strict = channel_spec(&w.f.account, &w.numbers[1], &url);
    strict["receiverHealth"] = json!({"affectsReady": true});
    create_channel(env, "strict", strict).await;
    wait_for(env, "strict", "Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
    inject(&w, &w.numbers[1], "to a failing receiver").await;
    let ch = wait_for(env, "strict", "not Ready", |ch| has(ch, "Ready", "False", "WebhookFailing")).await;
    assert_eq!(ch.status.as_ref().and_then(|s| s.phase), Some(whatsapp_operator::api::Phase::Degraded));
    assert!(has(&ch, "Reconciling", "True", "WebhookFailing"), "{:#?}", ch.status);
    wait_for(env, "strict", "Ready again", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
    wait_for(env, "blind", "readable again", |ch| receiver_is(ch, "True", "ReceiverHealthy")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_with_a_wrong_secret_does_not_blind_the_accounts_other_channels() {
    let w = world("inbound-wrong", 2).await;
    let (env, sim) = (&w.f.env, &w.f.sim);
    create_secret(env, "twilio-wrong", &[("authToken", "not-the-token")]).await;
    let _op = start_operator(&env.client, cfg(&w));
    let url = format!("{}/status/502", w.trusted.base_url());
    let mut wrong = channel_spec(&w.f.account, &w.numbers[1], &url);
    wrong["twilio"]["credentialsSecretRef"]["name"] = json!("twilio-wrong");
    create_channel(env, "wrong", wrong).await;
    create_channel(env, "good", channel_spec(&w.f.account, &w.numbers[0], &url)).await;
    wait_for(env, "wrong", "refused", |ch| has(ch, "CredentialsValid", "False", "InvalidCredentials")).await;
    wait_for(env, "good", "Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
    inject(&w, &w.numbers[0], "hello").await;
    wait_for(env, "good", "failing receiver", |ch| receiver_is(ch, "False", "WebhookFailing")).await;
    let ch = get_channel(env, "wrong").await;
    assert!(current(&ch, "ReceiverHealthy").is_none(), "no receiver health without accepted credentials");
    let refused = list_alerts(sim).iter().filter(|r| r.status == Some(401)).count();
    assert_eq!(refused, 0, "the refused credentials never list alerts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_listing_pages_through_the_quiet_window_within_its_bound() {
    let w = world("inbound-pages", 1).await;
    let (env, sim) = (&w.f.env, &w.f.sim);
    let url = format!("{}/status/502", w.trusted.base_url());
    // Failures from before the operator starts: its first listing goes back one quiet window.
    let patch = json!({"webhook": {"callback_url": url, "callback_method": "POST"}});
    sim.update_sender(&w.f.account, &w.numbers[0], &serde_json::from_value(patch).expect("patch")).expect("webhook");
    const FAILURES: usize = 210;
    for i in 0..FAILURES {
        inject(&w, &w.numbers[0], &format!("m{i}")).await;
    }
    let mut c = cfg(&w);
    c.receiver_quiet_window = Duration::from_secs(600);
    c.alerts_max_pages = 2;
    let _op = start_operator(&env.client, c);
    create_channel(env, "busy", channel_spec(&w.f.account, &w.numbers[0], &url)).await;
    let ch = wait_for(env, "busy", "failing", |ch| receiver_is(ch, "False", "WebhookFailing")).await;
    let message = &current(&ch, "ReceiverHealthy").expect("condition").message;
    assert!(message.starts_with(&format!("{FAILURES} failed")), "every alert of the window counted: {message}");
    let listings = list_alerts(sim);
    let paged: Vec<_> = listings.iter().filter(|r| r.query_value("PageToken").is_some()).collect();
    assert_eq!(paged.len(), 1, "the first listing read a second page of 200, no more");
    assert!(listings.iter().all(|r| r.status == Some(200)));
}

/// Waits until `done`, at most [`common::TIMEOUT`].
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + common::TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_channel_makes_no_status_write_on_its_later_verifications_nor_after_a_restart() {
    // ReceiverHealthy comes in the second write (after the first listing), which server-side
    // apply stores after Ready: the passes that follow must compare the conditions as stored.
    let w = world("inbound-quiet", 1).await;
    let (env, sim) = (&w.f.env, &w.f.sim);
    let metrics = Arc::new(whatsapp_operator::telemetry::Metrics::new());
    let client = common::counted_client(&metrics).await;
    let mut c = cfg(&w);
    c.verify_interval = Duration::from_secs(1);
    let op = start_operator_with(&client, c.clone(), metrics.clone(), None);
    let url = format!("{}/hook", w.trusted.base_url());
    create_channel(env, "quiet", channel_spec(&w.f.account, &w.numbers[0], &url)).await;
    wait_for(env, "quiet", "Ready with a healthy receiver", |ch| {
        has(ch, "Ready", "True", "ChannelReady") && receiver_is(ch, "True", "ReceiverHealthy")
    })
    .await;
    let written = common::kube_requests(&metrics, "patch", "whatsappchannels/status");
    let verification = format!("/2010-04-01/Accounts/{}.json", w.f.account);
    let count = |path: &str| sim.requests().iter().filter(|r| r.path == path).count();
    let listings = || list_alerts(sim).len();
    let before = count(&verification);
    wait_until("three verifications", || count(&verification) >= before + 3).await;
    let conditions = |ch: &WhatsAppChannel| -> Vec<String> {
        ch.status.iter().flat_map(|s| &s.conditions).map(|c| c.type_.clone()).collect()
    };
    let stored = conditions(&get_channel(env, "quiet").await);
    assert_eq!(
        common::kube_requests(&metrics, "patch", "whatsappchannels/status"),
        written,
        "three verifications that found nothing new wrote no status (conditions stored as {stored:?})"
    );

    // A new process: its first pass comes before its first listing, and verifies.
    drop(op);
    let (verified, listed) = (count(&verification), listings());
    let _op = start_operator_with(&client, c, metrics.clone(), None);
    wait_until("two listings and three verifications by the new process", || {
        listings() >= listed + 2 && count(&verification) >= verified + 3
    })
    .await;
    let ch = get_channel(env, "quiet").await;
    assert!(receiver_is(&ch, "True", "ReceiverHealthy"), "{:?}", ch.status);
    assert_eq!(
        common::kube_requests(&metrics, "patch", "whatsappchannels/status"),
        written,
        "the restarted operator wrote no status (conditions stored as {:?})",
        conditions(&ch)
    );
}
