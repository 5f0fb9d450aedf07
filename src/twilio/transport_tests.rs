//! What both HTTP clients (Twilio's and the identity server's) promise about the transport,
//! each against a local server: TLS is verified, redirects are never followed (so credentials
//! never reach another host), bodies are size-capped, every request times out, and the
//! identity client obeys the outbound URL policy before and while connecting.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::body::{MAX_IDENTITY_BODY_BYTES, MAX_TWILIO_BODY_BYTES};
use super::messages::{MessageContent, NewMessage};
use super::outbound::{Lookup, OutboundPolicy, OutboundRefusal};
use super::testutil::{big_body_server, silent_server, MockServer, Reply, AC, SK};
use super::{Credentials, IdentityClient, IdentityError, Secret, TwilioClient, TwilioConfig, TwilioError};

const TOKEN: &str = "SEKRIT-AUTH-TOKEN-0123456789";
const CLIENT_SECRET: &str = "SEKRIT-CLIENT-SECRET-42";

fn creds() -> Credentials {
    Credentials::api_key(AC, SK, Secret::new(TOKEN))
}

fn message() -> NewMessage {
    NewMessage {
        from: "whatsapp:+14155238886".into(),
        to: "whatsapp:+15005550006".into(),
        content: MessageContent::Body("hello".into()),
        status_callback: None,
    }
}

fn identity(timeout: Duration) -> IdentityClient {
    IdentityClient::new(timeout, "whatsapp-operator/test").expect("identity client")
}

async fn token(client: &IdentityClient, base: &str) -> Result<super::TokenResponse, IdentityError> {
    client.request_client_credentials_token(base, "crm", &Secret::new(CLIENT_SECRET), None).await
}

// --- Redirects ------------------------------------------------------------------------------

#[tokio::test]
async fn a_redirect_to_another_host_is_never_followed_with_credentials() {
    // The second host: another loopback address, so a client following the redirect would
    // connect to a different host and port.
    let elsewhere = MockServer::start_on("127.0.0.2:0", vec![Reply::json(200, "{}"); 20]).await;
    for status in [301, 302, 303, 307, 308] {
        let location = format!("{}/2010-04-01/Accounts/{AC}.json", elsewhere.base);
        let redirect = || Reply::json(status, "").header("location", location.clone());
        let first = MockServer::start(vec![redirect(), redirect()]).await;
        let client = first.client();
        let err = client.fetch_account(&creds()).await.expect_err("GET redirected");
        assert_eq!(err, TwilioError::Redirected { op: "fetch_account", status }, "{status}");
        assert!(!err.is_transient() && !err.may_have_been_applied());
        assert_eq!(err.reason(), "TwilioRedirected");
        let err = client.create_message(&creds(), &message()).await.expect_err("POST redirected");
        assert!(matches!(err, TwilioError::Redirected { op: "create_message", .. }), "{err:?}");
        // The first host saw the credentials (it is the configured base URL), once per call.
        let seen = first.requests();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].basic_auth(), Some((SK.to_owned(), TOKEN.to_owned())));
        assert!(!err.to_string().contains(TOKEN) && !err.to_string().contains(&elsewhere.base));
    }
    assert!(elsewhere.requests().is_empty(), "the redirect target saw {:?}", elsewhere.requests());

    // The identity client: the client secret is in the POST body, which a 307/308 would repeat.
    for status in [302, 307, 308] {
        let location = format!("{}/connect/token", elsewhere.base);
        let first = MockServer::start(vec![Reply::json(status, "").header("location", location)]).await;
        let err = token(&identity(Duration::from_secs(5)), &first.base).await.expect_err("redirected");
        assert_eq!(err, IdentityError::Redirected { status });
        assert_eq!(err.reason(), "IdentityRedirected");
        assert!(!err.is_transient());
        assert_eq!(first.requests().len(), 1);
    }
    assert!(elsewhere.requests().is_empty(), "the redirect target saw {:?}", elsewhere.requests());
}

// --- Body size ------------------------------------------------------------------------------

#[tokio::test]
async fn an_announced_huge_body_is_refused_before_it_is_read() {
    // 64 GiB announced: refused from the header alone, long before the timeout.
    let (base, written) = big_body_server(200, 64 << 30, true).await;
    let client = TwilioClient::new(TwilioConfig {
        timeout: Duration::from_secs(20),
        ..TwilioConfig::with_single_base_url(&base)
    })
    .expect("client");
    let started = Instant::now();
    let err = client.fetch_account(&creds()).await.expect_err("too large");
    assert_eq!(
        err,
        TwilioError::TooLarge { op: "fetch_account", status: 200, limit: MAX_TWILIO_BODY_BYTES, ambiguous: false }
    );
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(err.reason(), "TwilioResponseTooLarge");
    assert_eq!(
        err.to_string(),
        "Twilio's response (fetch_account, HTTP 200) is longer than the 8 MiB the client reads"
    );
    assert!(written.load(Ordering::SeqCst) < (64 << 30));
}

#[tokio::test]
async fn an_endless_chunked_body_is_abandoned_at_the_cap() {
    // 1 GiB, chunked, no length: the client must stop reading at 8 MiB; the server then
    // cannot write much more than the cap plus the sockets' buffers.
    const TOTAL: u64 = 1 << 30;
    for (status, post, transient, ambiguous) in
        [(200, false, false, false), (200, true, false, true), (503, false, true, false), (429, true, true, false)]
    {
        let (base, written) = big_body_server(status, TOTAL, false).await;
        let client = TwilioClient::new(TwilioConfig::with_single_base_url(&base)).expect("client");
        let err = if post {
            client.create_message(&creds(), &message()).await.expect_err("too large")
        } else {
            client.fetch_account(&creds()).await.expect_err("too large")
        };
        assert!(
            matches!(err, TwilioError::TooLarge { status: s, limit: MAX_TWILIO_BODY_BYTES, .. } if s == status),
            "{err:?}"
        );
        assert_eq!(err.is_transient(), transient, "{status}");
        assert_eq!(err.may_have_been_applied(), ambiguous, "{status} post={post}");
        // Give the server a moment to notice the closed connection.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sent = written.load(Ordering::SeqCst);
        assert!(sent < 64 << 20, "the server wrote {sent} bytes: the client kept reading past the cap");
    }

    let (base, written) = big_body_server(200, TOTAL, false).await;
    let err = token(&identity(Duration::from_secs(20)), &base).await.expect_err("too large");
    assert_eq!(err, IdentityError::TooLarge { status: 200, limit: MAX_IDENTITY_BODY_BYTES });
    assert_eq!(err.reason(), "IdentityResponseTooLarge");
    assert_eq!(
        err.to_string(),
        "the identity server's response (HTTP 200) is longer than the 1024 KiB the client reads"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(written.load(Ordering::SeqCst) < 64 << 20);
}

#[tokio::test]
async fn a_body_at_the_cap_is_read() {
    // Exactly the identity cap, announced: read whole (it is not JSON, so a Decode error).
    let (base, _) = big_body_server(200, MAX_IDENTITY_BODY_BYTES as u64, true).await;
    let err = token(&identity(Duration::from_secs(20)), &base).await.expect_err("not a token");
    assert!(
        matches!(err, IdentityError::Decode { status: 200, ref message } if message.contains("1048576 bytes")),
        "{err:?}"
    );
}

// --- Timeouts -------------------------------------------------------------------------------

#[tokio::test]
async fn a_server_that_never_answers_hits_the_timeout() {
    let base = silent_server().await;
    let timeout = Duration::from_millis(300);
    let twilio =
        TwilioClient::new(TwilioConfig { timeout, ..TwilioConfig::with_single_base_url(&base) }).expect("client");
    let started = Instant::now();
    let err = twilio.fetch_account(&creds()).await.expect_err("timeout");
    assert!(matches!(err, TwilioError::Transport { timeout: true, ambiguous: false, .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());

    let started = Instant::now();
    let err = token(&identity(timeout), &base).await.expect_err("timeout");
    assert!(matches!(err, IdentityError::Transport { timeout: true, .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(IdentityClient::new(Duration::ZERO, "x").is_err(), "a zero timeout is refused");
}

#[tokio::test]
async fn a_body_that_stalls_hits_the_timeout_too() {
    // Headers at once, then a body that never comes: the timeout covers the whole request,
    // and a timed-out read is transient like any other timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{").await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    let timeout = Duration::from_millis(300);
    let twilio =
        TwilioClient::new(TwilioConfig { timeout, ..TwilioConfig::with_single_base_url(&base) }).expect("client");
    let started = Instant::now();
    let err = twilio.fetch_account(&creds()).await.expect_err("timeout");
    assert!(matches!(err, TwilioError::Transport { timeout: true, .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let err = twilio.create_message(&creds(), &message()).await.expect_err("timeout");
    assert!(err.is_transient() && err.may_have_been_applied(), "a 2xx POST whose body timed out was applied: {err:?}");
    let err = token(&identity(timeout), &base).await.expect_err("timeout");
    assert!(matches!(err, IdentityError::Transport { timeout: true, .. }), "{err:?}");
}

// --- TLS ------------------------------------------------------------------------------------

/// An HTTPS server on 127.0.0.1 with a certificate from a CA nobody trusts; counts requests.
async fn untrusted_https_server() -> (String, Vec<u8>, Arc<AtomicUsize>) {
    let generated = crate::admission::tls::SelfSigned::generate(&[]).expect("certificate");
    let config = crate::admission::tls::self_signed_config(&generated).expect("tls config");
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let base = format!("https://{}", listener.local_addr().expect("addr"));
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { r#"{"access_token":"t","token_type":"Bearer"}"# }
    });
    let server = axum_server::tls_rustls::from_tcp_rustls(listener, tls).expect("server");
    tokio::spawn(server.serve(app.into_make_service()));
    (base, generated.ca_pem.into_bytes(), hits)
}

#[tokio::test]
async fn tls_certificates_are_verified() {
    let (base, ca, hits) = untrusted_https_server().await;
    let twilio = TwilioClient::new(TwilioConfig::with_single_base_url(&base)).expect("client");
    let err = twilio.fetch_account(&creds()).await.expect_err("untrusted certificate");
    assert!(matches!(err, TwilioError::Transport { timeout: false, .. }), "{err:?}");
    assert!(err.to_string().to_ascii_lowercase().contains("certificate"), "{err}");
    let err = token(&identity(Duration::from_secs(5)), &base).await.expect_err("untrusted certificate");
    assert!(matches!(err, IdentityError::Transport { timeout: false, .. }), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a request went over an unverified connection");
    // The control: the same server works for a client that trusts its CA, so the refusal
    // above is the certificate check and nothing else.
    let trusting = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).expect("CA")])
        .build()
        .expect("client");
    let answer = trusting.post(format!("{base}/connect/token")).send().await.expect("trusted");
    assert!(answer.status().is_success());
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn no_code_turns_certificate_verification_off() {
    // A guard against a future "temporary" workaround: the crate's sources never call
    // reqwest's danger_* switches (tests that need a private CA add it as a root instead).
    let needles = [concat!("danger", "_accept_invalid"), concat!("tls_", "danger")];
    let mut stack = vec![std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))];
    let mut files = 0;
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files += 1;
                let text = std::fs::read_to_string(&path).expect("read");
                for needle in needles {
                    assert!(!text.contains(needle), "{} contains {needle}", path.display());
                }
            }
        }
    }
    assert!(files > 20, "scanned {files} files");
}

// --- Outbound URL policy --------------------------------------------------------------------

/// A lookup that answers every name with `addrs` and counts its calls.
fn fixed_lookup(addrs: Vec<IpAddr>) -> (Lookup, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let lookup: Lookup = Arc::new(move |_host: String| {
        counter.fetch_add(1, Ordering::SeqCst);
        let addrs = addrs.clone();
        Box::pin(async move { Ok(addrs) })
    });
    (lookup, calls)
}

#[tokio::test]
async fn a_refused_literal_url_sends_nothing() {
    let server = MockServer::start(vec![Reply::json(200, r#"{"access_token":"t"}"#)]).await;
    let (lookup, lookups) = fixed_lookup(vec![]);
    let client = IdentityClient::with_lookup(
        Duration::from_secs(5),
        OutboundPolicy::parse(&["10.255.0.0/16"]).expect("policy"),
        lookup,
    );
    let err = token(&client, &server.base).await.expect_err("refused");
    assert!(matches!(err, IdentityError::Refused(OutboundRefusal::NotAllowed { addr: Some(_), .. })), "{err:?}");
    assert_eq!(err.reason(), "IdentityURLRefused");
    assert!(!err.is_transient());
    assert_eq!(
        err.to_string(),
        "the outbound URL policy refuses the identity server: 127.0.0.1 is not in --outbound-allow; no request was sent"
    );
    assert!(server.requests().is_empty());
    assert_eq!(lookups.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn resolved_addresses_are_checked_and_only_checked_ones_are_connected_to() {
    // One port on two loopback hosts: `good` (127.0.0.1, allowed) and `bad` (127.0.0.2, not).
    let good = MockServer::start(vec![Reply::json(200, r#"{"access_token":"t","token_type":"Bearer"}"#)]).await;
    let port = good.base.rsplit(':').next().expect("port").to_owned();
    let bad =
        MockServer::start_on(&format!("127.0.0.2:{port}"), vec![Reply::json(200, r#"{"access_token":"t"}"#)]).await;
    let policy = OutboundPolicy::parse(&["127.0.0.1/32"]).expect("policy");
    let url = format!("http://localhost:{port}");

    // `localhost` resolves to the refused address: the resolver refuses, nothing connects.
    let (lookup, lookups) = fixed_lookup(vec!["127.0.0.2".parse().expect("ip")]);
    let client = IdentityClient::with_lookup(Duration::from_secs(5), policy.clone(), lookup);
    let err = token(&client, &url).await.expect_err("refused");
    assert_eq!(
        err,
        IdentityError::Refused(OutboundRefusal::NotAllowed {
            host: "localhost".into(),
            addr: Some("127.0.0.2".parse().expect("ip"))
        })
    );
    assert_eq!(lookups.load(Ordering::SeqCst), 1);
    assert!(bad.requests().is_empty(), "the refused address was connected to");

    // An allowed and a refused address together: refused as a whole.
    let (lookup, _) = fixed_lookup(vec!["127.0.0.1".parse().expect("ip"), "127.0.0.2".parse().expect("ip")]);
    let client = IdentityClient::with_lookup(Duration::from_secs(5), policy.clone(), lookup);
    assert!(matches!(token(&client, &url).await, Err(IdentityError::Refused(_))));
    assert!(good.requests().is_empty() && bad.requests().is_empty());

    // The allowed address: the request goes there, and only there.
    let (lookup, _) = fixed_lookup(vec!["127.0.0.1".parse().expect("ip")]);
    let client = IdentityClient::with_lookup(Duration::from_secs(5), policy, lookup);
    let answer = token(&client, &url).await.expect("allowed");
    assert_eq!(answer.token_type, "Bearer");
    assert_eq!(good.requests().len(), 1);
    assert!(bad.requests().is_empty());
}
