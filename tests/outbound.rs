//! The outbound URL policy end to end: a channel whose identity-server URL the operator's
//! `--outbound-allow` does not admit gets `IdentityVerified=False, IdentityURLRefused` with a
//! clear message, and no token request is sent.

mod common;

use common::operator::*;
use serde_json::json;
use whatsapp_operator::twilio::OutboundPolicy;

#[tokio::test]
async fn an_identity_url_outside_the_allow_list_is_refused_without_a_request() {
    let f = Fixture::new("outbound", |_, n| sender_seed(n, "ONLINE")).await;
    f.sim
        .seed_yaml("identity_clients:\n- client_id: crm-prod\n  client_secret: s3cret-identity\n")
        .expect("seed identity");
    create_secret(&f.env, "identity", &[("clientSecret", "s3cret-identity")]).await;
    let mut cfg = config(&f.env, &f.sim);
    // Admits nothing this test runs: the simulator's loopback address is outside it.
    cfg.outbound = OutboundPolicy::parse(&["id.example.com", "10.255.0.0/16"]).expect("policy");
    let _op = start_operator(&f.env.client, cfg);
    create_channel(
        &f.env,
        "ssrf",
        json!({
            "phoneNumber": f.number,
            "instance": "crm-prod",
            "twilio": {"accountSid": f.account, "credentialsSecretRef": {"name": "twilio"}},
            "webhook": {"url": "https://receiver.example.com/hook"},
            "queue": "sales",
            "identityServer": {"url": f.sim.base_url(), "clientId": "crm-prod", "clientSecretRef": {"name": "identity"}},
        }),
    )
    .await;
    let ch = wait_condition(&f.env, "ssrf", "IdentityVerified", "False", Some("IdentityURLRefused")).await;
    let message = &condition(&ch, "IdentityVerified").message;
    assert!(
        message
            .starts_with("the outbound URL policy refuses the identity server: 127.0.0.1 is not in --outbound-allow"),
        "{message}"
    );
    assert!(message.ends_with("no request was sent"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    let ready = condition(&ch, "Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "IdentityURLRefused"));
    assert_eq!(condition(&ch, "CredentialsValid").status, "True", "the rest of the channel is checked as usual");
    let token_requests = f.sim.requests().into_iter().filter(|r| r.path == "/connect/token").count();
    assert_eq!(token_requests, 0, "a refused URL must not be requested");
    assert_conforming(&f.sim);
}
