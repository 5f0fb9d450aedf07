//! Transient Twilio failures back off per channel (honouring Retry-After); ambiguous failures
//! never lead to a second confirmation message.

mod common;

use std::time::Duration;

use common::operator::*;
use serde_json::json;
use twilio_sim::{FaultAction, FaultRule};

const RECEIVER: &str = "https://receiver.example.com/api/webhook/LeadGen/whatsapp";
const TOKEN: &str = "tok-0123456789abcdef0123456789ab";

async fn fixture(prefix: &str) -> (common::TestEnv, StrictSim, String, serde_json::Value) {
    let env = common::setup(prefix).await;
    let sim = start_sim().await;
    let account = random_account_sid();
    let number = random_number();
    sim.seed_yaml(&format!(
        "accounts:\n- sid: {account}\n  friendly_name: prod\n  auth_token: {TOKEN}\n  whatsapp_senders:\n  - sender_id: whatsapp:{number}\n"
    ))
    .expect("seed");
    create_secret(&env, "twilio", &[("authToken", TOKEN)]).await;
    let spec = json!({
        "phoneNumber": number,
        "instance": "crm-prod",
        "confirmationPhoneNumber": "+14155550123",
        "twilio": {"accountSid": account, "credentialsSecretRef": {"name": "twilio"}},
        "webhook": {"url": RECEIVER},
        "queue": "sales",
    });
    (env, sim, account, spec)
}

fn account_fetches(sim: &StrictSim, account: &str) -> Vec<twilio_sim::RequestRecord> {
    sim.requests().into_iter().filter(|r| r.path == format!("/2010-04-01/Accounts/{account}.json")).collect()
}

#[tokio::test]
async fn a_5xx_storm_backs_off_and_recovers() {
    let (env, sim, account, spec) = fixture("fault-5xx").await;
    let rule = FaultRule::new(FaultAction::Error { status: 503, code: None, message: None })
        .path(&format!("/Accounts/{account}.json$"))
        .times(4);
    sim.add_fault(rule).expect("fault");
    let _op = start_operator(&env.client, config(&env, &sim));
    create_channel(&env, "ch", spec).await;
    let ch = wait_condition(&env, "ch", "Ready", "True", None).await;
    assert_eq!(condition(&ch, "CredentialsValid").status, "True");
    let fetches = account_fetches(&sim, &account);
    assert_eq!(fetches.len(), 5, "four 503s, then success");
    assert_eq!(fetches.iter().filter(|r| r.status == Some(503)).count(), 4);
    // Exponential backoff: each gap at least half the previous cap (jitter), never a tight loop.
    let gaps: Vec<i64> = fetches.windows(2).map(|w| (w[1].time - w[0].time).num_milliseconds()).collect();
    assert!(gaps.iter().all(|g| *g >= 40), "backoff between attempts: {gaps:?}");
    assert!(gaps[3] > gaps[0], "the delay grows: {gaps:?}");
    let (type_, _, _) = wait_event(&env, "ch", "TwilioUnavailable").await;
    assert_eq!(type_, "Warning");
    assert_conforming(&sim);
}

#[tokio::test]
async fn a_429_is_retried_only_after_retry_after() {
    let (env, sim, account, spec) = fixture("fault-429").await;
    let rule = FaultRule::new(FaultAction::RateLimit { retry_after: Some(2) })
        .path(&format!("/Accounts/{account}.json$"))
        .times(1);
    sim.add_fault(rule).expect("fault");
    let _op = start_operator(&env.client, config(&env, &sim));
    create_channel(&env, "ch", spec).await;
    wait_condition(&env, "ch", "Ready", "True", None).await;
    let fetches = account_fetches(&sim, &account);
    assert_eq!(fetches.len(), 2);
    assert_eq!(fetches[0].status, Some(429));
    let gap = (fetches[1].time - fetches[0].time).num_milliseconds();
    assert!(
        gap >= 2000,
        "Retry-After: 2 honoured (waited {gap} ms; the backoff alone is at most 2 s after one failure)"
    );
    let events = events_for(&env, "ch").await;
    assert!(events.iter().any(|e| e.1 == "RateLimited"), "{events:#?}");
    assert_conforming(&sim);
}

#[tokio::test]
async fn an_ambiguous_send_is_looked_up_not_repeated() {
    let (env, sim, account, spec) = fixture("fault-ambiguous").await;
    // Twilio creates the message but the connection drops before the 201 arrives.
    let rule = FaultRule::new(FaultAction::DropAfterApply).method("POST").path("/Messages.json$").times(1);
    sim.add_fault(rule).expect("fault");
    let _op = start_operator(&env.client, config(&env, &sim));
    create_channel(&env, "ch", spec).await;
    let ch = wait_condition(&env, "ch", "ConfirmationSent", "True", None).await;
    let posts: Vec<_> =
        sim.requests().into_iter().filter(|r| r.is_write() && r.path.ends_with("/Messages.json")).collect();
    assert_eq!(posts.len(), 1, "one POST, no second message");
    assert!(posts[0].dropped, "the only POST was the dropped one");
    let lookups = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == format!("/2010-04-01/Accounts/{account}/Messages.json"))
        .count();
    assert!(lookups >= 1, "the operator looked the message up");
    let sent = sim.state().account(&account).map(|a| a.messages.len()).unwrap_or_default();
    assert_eq!(sent, 1, "exactly one message exists at Twilio");
    let sid = ch.status.and_then(|s| s.confirmation).and_then(|c| c.message_sid);
    assert!(sid.is_some_and(|s| s.starts_with("SM")), "the found message is recorded");
    assert_conforming(&sim);
}

#[tokio::test]
async fn a_429_holds_every_channel_of_the_account_until_retry_after() {
    let numbers: Vec<String> = (0..3).map(|_| random_number()).collect();
    let seed: String = numbers.iter().map(|n| format!("  - phone_number: \"{n}\"\n")).collect();
    let f = Fixture::new("fault-hold", move |_, _| format!("  incoming_phone_numbers:\n{seed}")).await;
    let rule = FaultRule::new(FaultAction::RateLimit { retry_after: Some(2) })
        .path(&format!("/Accounts/{}.json$", f.account))
        .times(1);
    f.sim.add_fault(rule).expect("fault");
    let _op = start_operator(&f.env.client, config(&f.env, &f.sim));
    for (i, n) in numbers.iter().enumerate() {
        create_channel(
            &f.env,
            &format!("ch{i}"),
            json!({
                "phoneNumber": n,
                "instance": "crm-prod",
                "twilio": {"accountSid": f.account, "credentialsSecretRef": {"name": "twilio"}},
                "webhook": {"url": RECEIVER},
                "queue": "sales",
            }),
        )
        .await;
    }
    for i in 0..numbers.len() {
        wait_condition(&f.env, &format!("ch{i}"), "Ready", "True", None).await;
    }
    let requests = f.sim.requests();
    let limited = requests.iter().find(|r| r.status == Some(429)).expect("the 429");
    let too_soon: Vec<_> = requests
        .iter()
        .filter(|r| r.seq > limited.seq && (r.time - limited.time).num_milliseconds() < 2000)
        .map(|r| format!("{} {} after {} ms", r.method, r.path, (r.time - limited.time).num_milliseconds()))
        .collect();
    assert!(too_soon.is_empty(), "no request for the account within Retry-After: {too_soon:?}");
    let fetches = account_fetches(&f.sim, &f.account);
    assert_eq!(fetches.len(), 2, "one 429, then one shared verification for the three channels");
}

/// A stuck Twilio cannot hold a shutdown: SIGTERM during a pass whose Twilio request hangs ends
/// the process within `--pass-timeout` (here 2 s; the request itself would take 30 s, and the
/// request timeout is longer still), with exit status 0.
#[tokio::test]
async fn sigterm_during_a_stuck_pass_ends_within_the_pass_timeout() {
    use std::process::{Command, Stdio};
    let (env, sim, account, spec) = fixture("fault-sigterm").await;
    let rule = FaultRule::new(FaultAction::Latency { ms: 30_000 }).path(&format!("/Accounts/{account}.json$"));
    sim.add_fault(rule).expect("fault");
    let mut child = Command::new(env!("CARGO_BIN_EXE_whatsapp-operator"))
        .args([
            "run",
            "--namespace",
            &env.ns,
            "--pass-timeout",
            "2s",
            "--twilio-timeout",
            "60s",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .args(["--twilio-api-url", sim.base_url(), "--twilio-messaging-url", sim.base_url()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the operator binary");
    create_channel(&env, "ch", spec).await;
    // Wait until the pass is stuck in the Twilio request.
    common::within(common::TIMEOUT, async {
        while sim.in_flight(&account) == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(killed.success());
    assert_clean_exit_within(&mut child, Duration::from_secs(10)).await;
    sim.clear_faults();
}

/// SIGTERM while the API server is unreachable (the caches never listed) ends the process at
/// once and cleanly: there is nothing to drain.
#[tokio::test]
async fn sigterm_with_the_api_server_unreachable_ends_at_once() {
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("wao-unreachable-{}", common::random_suffix()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster: {server: \"https://127.0.0.1:9\", insecure-skip-tls-verify: true}\n\
         users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: gone, user: u}\ncurrent-context: c\n",
    )
    .expect("write kubeconfig");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_whatsapp-operator"))
        .args(["run", "--metrics-addr", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the operator binary");
    // Serving /healthz means the signal handlers are installed.
    common::within(common::TIMEOUT, async {
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    assert_clean_exit_within(&mut child, Duration::from_secs(10)).await;
    std::fs::remove_dir_all(&dir).ok();
}

/// Fails the test unless `child` exits with status 0 within `limit`.
async fn assert_clean_exit_within(child: &mut std::process::Child, limit: Duration) {
    let status = common::within(limit, async {
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(status.success(), "a clean exit: {status:?}");
}
