//! The `twilio-sim` binary: first stdout line, seeding, strictness flags, clean signal shutdown.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;

const BIN: &str = env!("CARGO_BIN_EXE_twilio-sim");

#[tokio::test]
async fn prints_base_url_serves_the_seed_and_stops_on_sigterm() {
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed.yaml");
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--seed", seed, "--log-format", "json"])
        .env_remove("TWILIO_SIM_LISTEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn twilio-sim");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let base = first.trim().to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let c = client();
    let resp = c
        .get(format!("{base}/2010-04-01/Accounts/{PROD}.json"))
        .basic_auth(PROD, Some(PROD_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "twilio-sim did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit:?}");
    let logs = tokio::task::spawn_blocking(move || std::io::read_to_string(stderr).unwrap_or_default()).await.unwrap();
    assert!(logs.contains("\"message\":\"request\""), "{logs}");
    assert!(!logs.contains(PROD_TOKEN), "secrets must never be logged");
}

#[test]
fn help_describes_the_flags() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in ["--listen", "--seed", "--strict", "--spec-dir", "--log-format"] {
        assert!(text.contains(flag), "{flag} missing from --help:\n{text}");
    }
}

#[test]
fn bad_seed_file_fails_fast() {
    let out = Command::new(BIN).args(["--seed", "/nonexistent/seed.yaml"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("seed"));
}
