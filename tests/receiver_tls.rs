//! The receiver certificate watch (`--receiver-tls-check`) against a real API server, the strict
//! simulator and local TLS receivers with certificates from a test CA: a valid certificate, one
//! expiring within the warning window (a Warning Event, Ready unaffected), one for another host
//! name, an expired one, a port nobody listens on, and a receiver the outbound rules refuse. Each receiver counts its handshakes (one per
//! host:port for all the channels that share it) and the bytes it received after the handshake
//! (none: no HTTP request is ever sent).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{Datelike, Utc};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio::io::AsyncReadExt;
use whatsapp_operator::controller::receiver_tls::ReceiverTlsConfig;

use common::operator::*;

/// A test CA.
struct Ca {
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

fn ca() -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("CA");
    Ca { der: cert.der().clone(), issuer: Issuer::new(params, key) }
}

/// A receiver: a TLS server on 127.0.0.1 with a leaf for `names` expiring in `days` days.
struct Receiver {
    port: u16,
    handshakes: Arc<AtomicUsize>,
    received: Arc<AtomicUsize>,
    expires: String,
}

async fn receiver(ca: &Ca, names: &[&str], days: i64) -> Receiver {
    let expiry = Utc::now().date_naive() + chrono::TimeDelta::days(days);
    let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).expect("params");
    params.not_after = rcgen::date_time_ymd(expiry.year(), expiry.month() as u8, expiry.day() as u8);
    let key = KeyPair::generate().expect("key");
    let leaf = params.signed_by(&key, &ca.issuer).expect("leaf");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca.der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (handshakes, received) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (h, r) = (handshakes.clone(), received.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, h, r) = (acceptor.clone(), h.clone(), r.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                h.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                while let Ok(n) = tls.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    r.fetch_add(n, Ordering::SeqCst);
                }
            });
        }
    });
    Receiver { port, handshakes, received, expires: expiry.format("%Y-%m-%d").to_string() }
}

async fn receiver_tls(env: &common::TestEnv, name: &str, status: &str, reason: &str) -> String {
    let (status, reason) = (status.to_owned(), reason.to_owned());
    let ch = wait_for(env, name, &format!("ReceiverTLS {status} {reason}"), move |ch| {
        has(ch, "ReceiverTLS", &status, &reason)
    })
    .await;
    condition(&ch, "ReceiverTLS").message.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_certificates_are_checked_by_handshake_only_once_per_receiver() {
    let numbers: Vec<String> = (0..7).map(|_| random_number()).collect();
    let seed = {
        let numbers = numbers.clone();
        move |_: &str, _: &str| -> String {
            let mut yaml = String::from("  whatsapp_senders:\n");
            for n in &numbers {
                yaml.push_str(&format!("  - sender_id: whatsapp:{n}\n    status: ONLINE\n"));
            }
            yaml
        }
    };
    let f = Fixture::new("receivertls", seed).await;
    let (env, sim) = (&f.env, &f.sim);
    let ca = ca();
    let valid = receiver(&ca, &["localhost"], 90).await;
    let expiring = receiver(&ca, &["localhost"], 5).await;
    let wrong_host = receiver(&ca, &["other.example.com"], 90).await;
    let expired = receiver(&ca, &["localhost"], -3).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut cfg = config(env, sim);
    cfg.receiver_tls = Some(ReceiverTlsConfig::new(vec![ca.der.clone()]));
    let _op = start_operator(&env.client, cfg);

    let url = |port: u16| format!("https://localhost:{port}/api/webhook/LeadGen/whatsapp");
    create_channel(env, "valid-a", channel_spec(&f.account, &numbers[0], &url(valid.port))).await;
    create_channel(env, "valid-b", channel_spec(&f.account, &numbers[1], &url(valid.port))).await;
    create_channel(env, "expiring", channel_spec(&f.account, &numbers[2], &url(expiring.port))).await;
    create_channel(env, "wrong-host", channel_spec(&f.account, &numbers[3], &url(wrong_host.port))).await;
    create_channel(env, "metadata", channel_spec(&f.account, &numbers[4], "https://169.254.169.254/latest/hook")).await;
    create_channel(env, "expired", channel_spec(&f.account, &numbers[5], &url(expired.port))).await;
    create_channel(env, "closed", channel_spec(&f.account, &numbers[6], &format!("https://127.0.0.1:{closed}/hook")))
        .await;

    for name in ["valid-a", "valid-b"] {
        let message = receiver_tls(env, name, "True", "CertificateValid").await;
        assert!(message.contains(&valid.expires), "{message}");
    }
    let message = receiver_tls(env, "expiring", "False", "CertificateExpiring").await;
    assert!(message.contains(&expiring.expires) && message.contains("14-day"), "{message}");
    let message = receiver_tls(env, "wrong-host", "False", "CertificateInvalid").await;
    assert!(message.contains("host name"), "{message}");
    let message = receiver_tls(env, "metadata", "False", "ReceiverNotAllowed").await;
    assert!(message.contains("169.254.169.254") && message.contains("link-local"), "{message}");
    let message = receiver_tls(env, "expired", "False", "CertificateInvalid").await;
    assert!(message.contains("expired") && message.contains(&expired.expires), "{message}");
    let message = receiver_tls(env, "closed", "Unknown", "ReceiverUnreachable").await;
    assert!(message.contains(&format!("port {closed}")), "{message}");

    // Informational: every channel is Ready, whatever its receiver's certificate.
    for name in ["valid-a", "valid-b", "expiring", "wrong-host", "metadata", "expired", "closed"] {
        wait_for(env, name, "Ready", |ch| has(ch, "Ready", "True", "ChannelReady")).await;
    }
    // One Warning Event when it turned False; none for the valid ones.
    let (kind, _, note) = wait_event(env, "expiring", "CertificateExpiring").await;
    assert_eq!(kind, "Warning");
    assert!(note.contains(&expiring.expires), "{note}");
    wait_event(env, "wrong-host", "CertificateInvalid").await;
    let valid_events = events_for(env, "valid-a").await;
    assert!(valid_events.iter().all(|e| e.1 != "CertificateValid"), "{valid_events:?}");

    // A full verification later: the shared result stands (one handshake per receiver and
    // interval), and still no byte of application data reached any receiver.
    let api: kube::Api<whatsapp_operator::api::WhatsAppChannel> = kube::Api::namespaced(env.client.clone(), &env.ns);
    let annotate = json!({"metadata": {"annotations": {"whatsapp-operator.io/verify-now": "1"}}});
    api.patch("valid-b", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&annotate))
        .await
        .expect("annotate");
    wait_for(env, "valid-b", "verify-now answered", |ch| {
        ch.status.as_ref().and_then(|s| s.verify_now.as_deref()) == Some("1")
    })
    .await;
    assert_eq!(valid.handshakes.load(Ordering::SeqCst), 1, "two channels, one receiver: one handshake");
    assert_eq!(expiring.handshakes.load(Ordering::SeqCst), 1);
    assert_eq!(wrong_host.handshakes.load(Ordering::SeqCst), 0, "the client refused the certificate");
    assert_eq!(expired.handshakes.load(Ordering::SeqCst), 0, "the client refused the expired certificate");
    for r in [&valid, &expiring, &wrong_host, &expired] {
        assert_eq!(r.received.load(Ordering::SeqCst), 0, "no HTTP request was sent to port {}", r.port);
    }
    let events = events_for(env, "expiring").await;
    assert_eq!(events.iter().filter(|e| e.1 == "CertificateExpiring").count(), 1, "{events:?}");
}
