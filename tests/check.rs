//! `whatsapp-operator check`, the GitOps pre-flight: the real binary on fixture directories
//! (`tests/fixtures/check/`) and on the repository's examples. No cluster is needed.

use std::io::Write;
use std::process::{Command, Stdio};

const FIXTURES: &str = "tests/fixtures/check";

/// Runs `whatsapp-operator check ARGS...` from the crate's directory: (exit code, stdout, stderr).
fn check(args: &[&str]) -> (i32, String, String) {
    check_with_stdin(args, None)
}

fn check_with_stdin(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_whatsapp-operator"))
        .arg("check")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start whatsapp-operator");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("run whatsapp-operator");
    (
        out.status.code().expect("exited"),
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
    )
}

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

/// `expected` lines, each prefixed with the fixture directory.
fn lines(dir: &str, expected: &[&str]) -> String {
    expected
        .iter()
        .map(|l| if l.starts_with("checked ") { format!("{l}\n") } else { format!("{FIXTURES}/{dir}/{l}\n") })
        .collect()
}

#[test]
fn a_clean_set_passes() {
    let (code, out, err) = check(&[&fixture("clean")]);
    assert_eq!(out, "checked 3 channels in 3 files: 0 errors, 0 warnings\n", "{err}");
    assert_eq!((code, err.as_str()), (0, ""));
}

#[test]
fn the_repository_examples_pass() {
    let (code, out, err) = check(&["examples/"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.ends_with(": 0 errors, 0 warnings\n"), "{out}");
    assert!(out.starts_with("checked 4 channels in 4 files"), "{out}");
}

#[test]
fn the_same_number_spelled_differently_is_claimed_twice() {
    let (code, out, err) = check(&[&fixture("spelled-twice")]);
    assert_eq!(
        out,
        lines(
            "spelled-twice",
            &[
                r#"b.yaml:7: error: spec.phoneNumber "+1 (415) 555-0100" does not match ^\+[1-9][0-9]{1,14}$"#,
                "b.yaml:7: error: +14155550100 is claimed by WhatsAppChannel crm/sales \
                 (tests/fixtures/check/spelled-twice/a.yaml:7) and crm/support",
                "checked 2 channels in 2 files: 2 errors, 0 warnings",
            ]
        ),
        "{err}"
    );
    assert_eq!(code, 1);
}

#[test]
fn invalid_channels_are_reported_at_the_offending_lines() {
    let (code, out, err) = check(&[&fixture("invalid")]);
    let http_webhook = format!(
        r#"channels.yaml:31: error: spec.webhook.url "http://receiver.example.com/api/webhook/LeadGen/whatsapp" does not match {}"#,
        whatsapp_operator::api::HTTPS_URL_PATTERN
    );
    assert_eq!(
        out,
        lines(
            "invalid",
            &[
                r#"channels.yaml:8: error: spec.phoneNumber "+1 415" does not match ^\+[1-9][0-9]{1,14}$"#,
                &http_webhook,
                r#"channels.yaml:43: error: spec.twilio.accountSid "AC123" does not match ^AC[0-9a-fA-F]{32}$"#,
                "channels.yaml:55: error: missing required field spec.instance",
                "channels.yaml:70: error: spec must satisfy one of: queue is set, or active is false \
                 (active is true, the default)",
                "channels.yaml:80: warning: unknown field spec.lenguage: the API server drops it silently; \
                 did you mean language?",
                "channels.yaml:82: error: unknown version whatsapp-operator.io/v1beta1 of WhatsAppChannel: \
                 this operator serves whatsapp-operator.io/v1alpha1",
                "checked 5 channels in 1 file: 6 errors, 1 warning",
            ]
        ),
        "{err}"
    );
    assert_eq!(code, 1);
}

#[test]
fn sandbox_channels_of_two_accounts_are_clean() {
    let (code, out, err) = check(&[&fixture("sandbox-two-accounts")]);
    assert_eq!(out, "checked 2 channels in 2 files: 0 errors, 0 warnings\n", "{err}");
    assert_eq!(code, 0);
}

#[test]
fn sandbox_channels_of_one_account_conflict() {
    let (code, out, err) = check(&[&fixture("sandbox-one-account")]);
    assert_eq!(
        out,
        lines(
            "sandbox-one-account",
            &[
                "channels.yaml:24: error: +14155238886 (the sandbox of account AC7E577E577E577E577E577E577E577E57) \
                 is claimed by WhatsAppChannel crm-test/test-a \
                 (tests/fixtures/check/sandbox-one-account/channels.yaml:7) and other-team/test-b",
                "checked 2 channels in 1 file: 1 error, 0 warnings",
            ]
        ),
        "{err}"
    );
    assert_eq!(code, 1);
}

#[test]
fn the_same_object_twice_is_a_warning_not_a_conflict() {
    let (code, out, err) = check(&[&fixture("duplicate-object")]);
    assert_eq!(
        out,
        lines(
            "duplicate-object",
            &[
                "sales.yaml:1: warning: duplicate object: WhatsAppChannel crm/sales is also defined at \
                 tests/fixtures/check/duplicate-object/sales-copy.yaml:1",
                "checked 2 channels in 2 files: 0 errors, 1 warning",
            ]
        ),
        "{err}"
    );
    assert_eq!(code, 0);
}

#[test]
fn a_referenced_secret_without_credentials_is_an_error() {
    let (code, out, err) = check(&[&fixture("secret-keys")]);
    assert_eq!(
        out,
        lines(
            "secret-keys",
            &[
                "channels.yaml:20: error: Secret crm/twilio (tests/fixtures/check/secret-keys/channels.yaml:1) \
                 has neither authToken nor apiKeySid and apiKeySecret (with non-blank values): the channel would \
                 report CredentialsValid=False, reason SecretKeyMissing",
                "checked 1 channel in 1 file: 1 error, 0 warnings",
            ]
        ),
        "{err}"
    );
    assert_eq!(code, 1);
}

#[test]
fn files_stdin_and_the_namespace_flag_form_one_input_set() {
    let a = fixture("spelled-twice/a.yaml");
    // The same channel from stdin, in another namespace by --namespace: a second claim.
    let stdin = std::fs::read_to_string(format!("{}/{a}", env!("CARGO_MANIFEST_DIR")))
        .expect("fixture")
        .replace("  namespace: crm\n", "");
    let (code, out, err) = check_with_stdin(&[&a, "-", "--namespace", "crm-2"], Some(&stdin));
    assert_eq!(
        out,
        format!(
            "<stdin>:6: error: +14155550100 is claimed by WhatsAppChannel crm/sales ({a}:7) and crm-2/sales\n\
             checked 2 channels in 2 files: 1 error, 0 warnings\n"
        ),
        "{err}"
    );
    assert_eq!(code, 1);
}

#[test]
fn json_output_for_machines() {
    let (code, out, _) = check(&[&fixture("spelled-twice"), "--output", "json"]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(report["errors"], 2);
    assert_eq!(report["warnings"], 0);
    assert_eq!(report["channels"], 2);
    assert_eq!(report["files"], 2);
    let first = &report["diagnostics"][0];
    assert_eq!(first["file"], format!("{FIXTURES}/spelled-twice/b.yaml"));
    assert_eq!(first["line"], 7);
    assert_eq!(first["severity"], "error");
}

#[test]
fn usage_and_read_errors_exit_2() {
    let (code, _, err) = check(&[]);
    assert_eq!(code, 2, "{err}");
    let (code, out, err) = check(&[&fixture("clean"), &fixture("no-such-dir")]);
    assert_eq!(code, 2);
    assert!(err.contains(&format!("error: cannot read {FIXTURES}/no-such-dir: ")), "{err}");
    assert_eq!(out, "checked 3 channels in 3 files: 0 errors, 0 warnings\n");
}
