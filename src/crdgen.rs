//! Renders the CustomResourceDefinitions from the Rust types: the single source of `crds/` and
//! of the Helm chart's CRDs.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSON,
};
use kube::CustomResourceExt;

use crate::api::{ChannelMode, WhatsAppChannel, WhatsAppNumberBinding, SANDBOX_NUMBER};

/// Every CRD this operator serves, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![channel_crd(), WhatsAppNumberBinding::crd()]
}

/// The `WhatsAppChannel` CRD, plus the cross-field rules that schemars cannot express.
/// Kubernetes 1.20 has no CEL, so they are structural junctors (value validation only; defaults
/// are applied before validation runs, so `active` is already true and `mode` already `Business`
/// when omitted):
///
/// - `anyOf`: `queue` is required while `active` is true;
/// - `allOf: [anyOf]`: in `Sandbox` mode the number is Twilio's sandbox number,
///   [`crate::api::SANDBOX_NUMBER`].
fn channel_crd() -> CustomResourceDefinition {
    let mut crd = WhatsAppChannel::crd();
    let pinned = |field: &str, value: serde_json::Value| JSONSchemaProps {
        properties: Some(BTreeMap::from([(
            field.to_owned(),
            JSONSchemaProps { enum_: Some(vec![JSON(value)]), ..Default::default() },
        )])),
        ..Default::default()
    };
    let inactive = JSONSchemaProps { required: Some(vec!["active".into()]), ..pinned("active", false.into()) };
    let with_queue = JSONSchemaProps { required: Some(vec!["queue".into()]), ..Default::default() };
    let sandbox_number = JSONSchemaProps {
        // The number first: the API server reports the first branch's failure
        // (`spec.phoneNumber: Unsupported value: "+1…": supported values: "+14155238886"`).
        any_of: Some(vec![
            pinned("phoneNumber", SANDBOX_NUMBER.into()),
            pinned("mode", ChannelMode::Business.as_str().into()),
        ]),
        ..Default::default()
    };
    for version in &mut crd.spec.versions {
        let spec = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .and_then(|root| root.properties.as_mut())
            .and_then(|props| props.get_mut("spec"));
        if let Some(spec) = spec {
            spec.any_of = Some(vec![with_queue.clone(), inactive.clone()]);
            spec.all_of = Some(vec![sandbox_number.clone()]);
        }
    }
    crd
}

/// The CRDs as one multi-document YAML stream, exactly as committed under `crds/`.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `crds/` must be exactly what the types generate: regenerate with `make crds`.
    #[test]
    fn committed_crds_match_the_types() {
        let generated = crds_yaml().expect("render CRDs");
        let committed =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/whatsapp-operator.io_crds.yaml"))
                .expect("crds/whatsapp-operator.io_crds.yaml exists (run `make crds`)");
        assert!(generated == committed, "crds/ drifted from the Rust types: run `make crds` and commit the result");
    }

    #[test]
    fn every_spec_and_status_field_has_a_description() {
        fn walk(path: &str, schema: &serde_json::Value, missing: &mut Vec<String>) {
            if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
                for (name, sub) in props {
                    let p = format!("{path}.{name}");
                    if sub.get("description").is_none() {
                        missing.push(p.clone());
                    }
                    walk(&p, sub, missing);
                }
            }
            if let Some(items) = schema.get("items") {
                walk(&format!("{path}[]"), items, missing);
            }
        }
        let mut missing = Vec::new();
        for crd in crds() {
            let v = serde_json::to_value(&crd.spec.versions[0].schema).expect("schema");
            let root = &v["openAPIV3Schema"];
            for part in ["spec", "status"] {
                if !root["properties"][part].is_null() {
                    walk(&format!("{}.{part}", crd.spec.names.kind), &root["properties"][part], &mut missing);
                }
            }
        }
        assert!(missing.is_empty(), "fields without a description: {missing:?}");
    }
}
