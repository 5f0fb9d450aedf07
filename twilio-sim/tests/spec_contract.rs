//! The simulator's router against Twilio's OpenAPI specs (run `make twilio-specs` first), and the
//! coverage log hook.

use twilio_sim::spec::{coverage, Contract, RequestParts};

fn contract() -> Contract {
    Contract::load_default().unwrap_or_else(|e| panic!("{e}"))
}

/// Every route of the simulator is the spec's operation of that id, at that method and
/// template, and the checker resolves a concrete path of the template back to it.
#[test]
fn every_implemented_route_is_a_spec_operation() {
    let contract = contract();
    let routes = twilio_sim::implemented_operations();
    assert!(!routes.is_empty());
    for route in routes {
        let op = contract
            .operation(route.spec, route.operation_id)
            .unwrap_or_else(|| panic!("{} {} is not in the spec", route.spec, route.operation_id));
        assert_eq!(
            (op.method.as_str(), op.path_template.as_str()),
            (route.method, route.path_template),
            "{}",
            route.operation_id
        );
        let sid = |prefix: &str| format!("{prefix}0123456789abcdef0123456789abcdef");
        let path = route
            .path_template
            .replace("{AccountSid}", &sid("AC"))
            .replace("{ServiceSid}", &sid("MG"))
            .replace("{MessagingServiceSid}", &sid("MG"))
            .replace("{ContentSid}", &sid("HX"));
        let own_sid = match route.path_template {
            "/2010-04-01/Accounts/{Sid}.json" => sid("AC"),
            t if t.contains("/IncomingPhoneNumbers/") => sid("PN"),
            t if t.contains("/Messages/") => sid("SM"),
            t if t.contains("/PhoneNumbers/") => sid("PN"),
            t if t.contains("Senders/") => sid("XE"),
            t if t.starts_with("/v1/Content/") => sid("HX"),
            t if t.contains("/Alerts/") => sid("NO"),
            _ => sid("MG"),
        };
        let path = path.replace("{Sid}", &own_sid);
        let report = contract.inspect_request(&RequestParts {
            method: route.method,
            path: &path,
            query: None,
            content_type: None,
            body: b"",
        });
        assert_eq!(
            report.operation.map(|o| o.operation_id).as_deref(),
            Some(route.operation_id),
            "{path}: {:?}",
            report.violations
        );
    }
}

/// `coverage::record` appends one JSON line per call when `TWILIO_SIM_COVERAGE_FILE` is set.
#[test]
fn coverage_record_appends_json_lines() {
    let contract = contract();
    let dir = std::env::temp_dir().join(format!("spec-contract-coverage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("coverage.jsonl");
    let op = contract.operation("twilio_messaging_v2", "ListChannelsSender").expect("op");
    std::env::set_var(coverage::COVERAGE_FILE_ENV, &file);
    coverage::record(&op, 200, Some("whatsapp-operator/0.1.0"));
    coverage::record(&op, 400, None);
    std::env::remove_var(coverage::COVERAGE_FILE_ENV);
    coverage::record(&op, 500, None); // not recorded: the variable is unset
    let records = coverage::parse_records(&std::fs::read_to_string(&file).expect("read")).expect("parse");
    let statuses: Vec<u16> = records.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 400]);
    assert!(records[0].from_operator() && !records[1].from_operator());
    assert_eq!(records[0].path_template, "/v2/Channels/Senders");
    let _ = std::fs::remove_dir_all(&dir);
}
