//! `/metrics`, `/healthz` and `/readyz` of the real binary, checked against what happened: the
//! reconciles, the Twilio requests the simulator saw, the channels by phase, the leader gauge.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::operator::*;
use common::within;
use serde_json::json;

const TOKEN: &str = "tok-0123456789abcdef0123456789ab";

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// The value of the sample `name` (with its label set written as in the text format).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn get(url: &str) -> (u16, String) {
    let client = reqwest::Client::new();
    match client.get(url).timeout(Duration::from_secs(2)).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(_) => (0, String::new()),
    }
}

#[tokio::test]
async fn metrics_report_what_happened() {
    common::init_crypto();
    let env = common::setup("metrics").await;
    let sim = start_sim().await;
    let account = random_account_sid();
    let number = random_number();
    sim.seed_yaml(&format!(
        "accounts:\n- sid: {account}\n  friendly_name: prod\n  auth_token: {TOKEN}\n  whatsapp_senders:\n  - sender_id: whatsapp:{number}\n"
    ))
    .expect("seed");
    create_secret(&env, "twilio", &[("authToken", TOKEN)]).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _op = Process(
        Command::new(env!("CARGO_BIN_EXE_whatsapp-operator"))
            .args(["run", "--namespace", &env.ns, "--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(["--twilio-api-url", sim.base_url(), "--twilio-messaging-url", sim.base_url()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("start the operator binary"),
    );
    within(common::TIMEOUT, async {
        while get(&format!("{base}/readyz")).await.0 != 200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(get(&format!("{base}/healthz")).await, (200, "ok".to_owned()));

    create_channel(
        &env,
        "ch",
        json!({
            "phoneNumber": number,
            "instance": "crm-prod",
            "twilio": {"accountSid": account, "credentialsSecretRef": {"name": "twilio"}},
            "webhook": {"url": "https://receiver.example.com/hook"},
            "queue": "sales",
        }),
    )
    .await;
    wait_condition(&env, "ch", "Ready", "True", None).await;

    // The figures settle once the pass that made the channel Ready has been counted.
    let text = within(common::TIMEOUT, async {
        loop {
            let (_, text) = get(&format!("{base}/metrics")).await;
            if sample(&text, "whatsapp_operator_channels{phase=\"Ready\"}") == Some(1.0)
                && sample(&text, "whatsapp_operator_reconciles_in_flight") == Some(0.0)
            {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let reqs = sim.requests();
    let count = |path_ends: &str, method: &str| {
        reqs.iter().filter(|r| r.method == method && r.path.ends_with(path_ends) && r.status == Some(200)).count()
            as f64
    };
    let account_path = format!("/Accounts/{account}.json");
    assert_eq!(
        sample(&text, "whatsapp_operator_twilio_requests_total{operation=\"fetch_account\",status=\"200\"}"),
        Some(count(&account_path, "GET")),
        "one counted request per request Twilio saw:\n{text}"
    );
    assert_eq!(
        sample(&text, "whatsapp_operator_twilio_requests_total{operation=\"list_whatsapp_senders\",status=\"200\"}"),
        Some(count("/v2/Channels/Senders", "GET")),
    );
    let writes: Vec<_> =
        reqs.iter().filter(|r| r.is_write() && r.path.starts_with("/v2/Channels/Senders/XE")).collect();
    assert_eq!(writes.len(), 1, "one webhook write");
    let status = writes[0].status.map(|s| s.to_string()).unwrap_or_default();
    assert_eq!(
        sample(
            &text,
            &format!(
                "whatsapp_operator_twilio_requests_total{{operation=\"update_sender_webhook\",status=\"{status}\"}}"
            )
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(&text, "whatsapp_operator_reconciles_total{result=\"settled\",error=\"\"}").is_some_and(|n| n >= 1.0)
    );
    assert!(sample(&text, "whatsapp_operator_reconcile_duration_seconds_count").is_some_and(|n| n >= 1.0));
    assert_eq!(sample(&text, "whatsapp_operator_channels{phase=\"Failed\"}"), Some(0.0));
    assert_eq!(sample(&text, "whatsapp_operator_leader"), Some(1.0), "leader election off: this process leads");
    assert_eq!(sample(&text, "whatsapp_operator_binding_conflicts_total"), Some(0.0));
    assert!(!text.contains(TOKEN), "no secret in the metrics");
    assert!(!text.contains(&number), "no channel data in the labels");
    assert_conforming(&sim);
}
