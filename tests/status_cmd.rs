//! `whatsapp-operator status NAMESPACE/NAME`: the real binary against the real API server, for
//! a channel the in-process operator made Ready with the strict simulator. Its sections and
//! values; a channel that does not exist; malformed arguments.

mod common;

use serde_json::json;

use common::operator::*;

const RECEIVER: &str = "https://crm-status.example.com/hook";
const CONFIRM_TO: &str = "+14155550123";

/// Runs the binary with the test's KUBECONFIG: (exit code, stdout, stderr).
async fn status(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_whatsapp-operator"))
            .arg("status")
            .args(&args)
            .output()
            .expect("run whatsapp-operator status")
    })
    .await
    .expect("task");
    (
        out.status.code().expect("exited"),
        String::from_utf8(out.stdout).expect("utf-8"),
        String::from_utf8(out.stderr).expect("utf-8"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_prints_conditions_routing_owner_confirmation_and_events() {
    let f = Fixture::new("statuscmd", |_, n| sender_seed(n, "ONLINE")).await;
    let (env, sim) = (&f.env, &f.sim);
    let _op = start_operator(&env.client, config(env, sim));
    create_channel(
        env,
        "sales",
        json!({
            "phoneNumber": f.number,
            "instance": "crm-prod",
            "confirmationPhoneNumber": CONFIRM_TO,
            "twilio": {"accountSid": f.account, "credentialsSecretRef": {"name": "twilio"}},
            "webhook": {"url": RECEIVER},
            "queue": "sales",
        }),
    )
    .await;
    let ch = wait_for(env, "sales", "Ready and confirmed", |ch| {
        has(ch, "Ready", "True", "ChannelReady") && has(ch, "ConfirmationSent", "True", "MessageSent")
    })
    .await;
    wait_event(env, "sales", "MessageSent").await;
    let st = ch.status.clone().expect("status");
    let sid = st.sender.as_ref().and_then(|s| s.sid.clone()).expect("sender SID");
    let message = st.confirmation.as_ref().and_then(|c| c.message_sid.clone()).expect("message SID");

    let (code, out, err) = status(&[&format!("{}/sales", env.ns)]).await;
    assert_eq!(code, 0, "{out}{err}");
    println!("{out}");
    let digits = f.number.trim_start_matches('+');
    for want in [
        format!("WhatsAppChannel {}/sales", env.ns),
        format!("  Number:    {} (Business), instance crm-prod", f.number),
        "  Policy:    managementPolicy Manage, deletionPolicy Delete".to_owned(),
        "  Phase:     Ready (generation 1, observed 1)".to_owned(),
        "\nConditions:\n".to_owned(),
        "  CredentialsValid   True    Verified".to_owned(),
        "  Ready              True    ChannelReady".to_owned(),
        "\nRouting at Twilio: Configured\n".to_owned(),
        format!("  expected: WhatsAppSender {sid} POST {RECEIVER}"),
        format!("  actual:   WhatsAppSender {sid} POST {RECEIVER}"),
        format!("  managed:  WhatsAppSender {sid} for {}", f.number),
        format!("    set by this channel: {RECEIVER}"),
        "    before this channel: (none), cleared on deletion".to_owned(),
        "\nOwner:\n".to_owned(),
        format!("  binding whatsapp-{digits}: held by {}/sales (this channel), instance crm-prod", env.ns),
        "\nConfirmation:\n".to_owned(),
        format!("  to {CONFIRM_TO} from {}: message {message}, ", f.number),
        "\nEvents (last ".to_owned(),
    ] {
        assert!(out.contains(&want), "missing {want:?} in:\n{out}");
    }
    let events = out.split("\nEvents (last ").nth(1).expect("events section");
    assert!(events.contains(" MessageSent ") && events.contains("Normal"), "{events}");
    assert!(!out.contains("Planned changes"), "no plan under Manage:\n{out}");

    // NAME with -n is the same screen, give or take the ages.
    let (code, again, _) = status(&["sales", "-n", &env.ns]).await;
    assert_eq!(code, 0);
    assert_eq!(again.lines().next(), out.lines().next());

    // Not found: 1; malformed: 2. Nothing on stdout either way.
    let (code, out, err) = status(&[&format!("{}/nope", env.ns)]).await;
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("not found"), "{err}");
    let (code, out, _) = status(&["a/b/c"]).await;
    assert_eq!((code, out.as_str()), (2, ""));
}
