//! `whatsapp-operator check`: the GitOps pre-flight. Validates manifests offline, before
//! anything is applied, and finds WhatsApp numbers claimed by more than one channel.
//!
//! Every `whatsapp-operator.io` object is validated against the `openAPIV3Schema` of
//! [`crate::crdgen::crds`], the schema the API server enforces, with the API server's pruning
//! and defaulting ([`schema`]). Numbers are normalized with [`crate::twilio::E164::parse`] and
//! compared by [`crate::binding::binding_name`], the name of the cluster-wide claim the operator
//! would create, so two channels conflict here exactly when they would conflict in the cluster.
//! Other kinds are skipped, except that a Secret a channel references is cross-checked when it
//! is in the input too.

pub mod load;
pub mod report;
pub mod schema;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use kube::Resource;
use regex::Regex;
use serde_json::{json, Map, Value};

use crate::api::{WhatsAppChannel, WhatsAppNumberBinding, GROUP};
use crate::twilio::E164;

pub use load::{Format, LoadError, Source};
pub use report::{Diagnostic, OutputFormat, Report, Severity};
pub use schema::{FieldPath, Schema, SchemaError, Seg};

/// A label's name, or a non-empty label value.
const LABEL_TEXT_PATTERN: &str = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$";
/// The most that all of an object's annotations may hold, keys and values (the API server's
/// limit, 256 KiB).
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// Why `check` could not do its job (as opposed to what it found): exit status 2.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Input could not be read.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The CRDs' schemas do not compile, or use rules the checker cannot enforce.
    #[error("cannot build the checker from the CRDs: {0}")]
    Schema(#[from] SchemaError),
}

/// Settings of a check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// The namespace of objects without `metadata.namespace`.
    pub namespace: String,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self { namespace: "default".to_owned() }
    }
}

/// Settings of `whatsapp-operator check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Manifest files or directories (recursively: *.yaml, *.yml, *.json); `-` reads standard input.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,

    /// The namespace of objects without metadata.namespace (what `kubectl apply -n` would use).
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,

    /// Output format: `file:line: severity: message` lines and a summary, or one JSON object.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// `whatsapp-operator check`: prints the report on standard output, read failures on standard
/// error, and returns the exit status (0 clean, 1 errors found, 2 input not readable).
pub fn execute(args: &CheckArgs) -> u8 {
    use std::io::Write;
    let options = CheckOptions { namespace: args.namespace.clone() };
    let report = run(&args.paths, &options);
    for failure in &report.failures {
        eprintln!("error: {failure}");
    }
    let out = match args.output {
        OutputFormat::Text => report.text(),
        OutputFormat::Json => format!("{:#}\n", report.json()),
    };
    // A closed pipe (`| head`) is no reason to panic; the exit status still tells.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    report.exit_code()
}

/// Checks the manifests at `paths` (files, directories, `-` for standard input).
pub fn run(paths: &[PathBuf], options: &CheckOptions) -> Report {
    let (sources, failures) = load::collect(paths);
    let mut report = check_sources(&sources, options);
    report.failures.extend(failures.into_iter().map(CheckError::from));
    report
}

/// Checks manifests already in memory, as one input set.
pub fn check_sources(sources: &[Source], options: &CheckOptions) -> Report {
    let mut checker = match Checker::new(options) {
        Ok(c) => c,
        Err(e) => return Report { files: sources.len(), failures: vec![e], ..Report::default() },
    };
    for (file, source) in sources.iter().enumerate() {
        checker.source(file, source);
    }
    checker.finish(sources)
}

/// A `WhatsAppChannel` found in the input.
struct Channel {
    file: usize,
    line: usize,
    namespace: String,
    name: Option<String>,
    /// As the API server would store it (pruned, defaulted).
    value: Value,
    claim: Option<Claim>,
    credentials: Option<SecretRef>,
    identity: Option<SecretRef>,
}

/// The cluster-wide claim a channel would make.
struct Claim {
    binding: String,
    number: E164,
    sandbox_account: Option<String>,
    line: usize,
}

/// A channel's reference to a Secret (and key).
struct SecretRef {
    name: String,
    key: Option<String>,
    line: usize,
}

/// A Secret found in the input: only its key names are kept.
struct SecretDoc {
    file: usize,
    line: usize,
    keys: BTreeSet<String>,
}

struct Checker<'o> {
    options: &'o CheckOptions,
    /// Schemas of our group's served kinds, by (version, kind).
    schemas: HashMap<(String, String), Schema>,
    subdomain: Regex,
    label: Regex,
    /// A label's name or non-empty value.
    label_text: Regex,
    diagnostics: Vec<(usize, usize, Severity, String)>,
    channels: Vec<Channel>,
    secrets: HashMap<(String, String), SecretDoc>,
}

impl<'o> Checker<'o> {
    fn new(options: &'o CheckOptions) -> Result<Self, CheckError> {
        let mut schemas = HashMap::new();
        for crd in crate::crdgen::crds() {
            for version in crd.spec.versions.iter().filter(|v| v.served) {
                let root = version.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref());
                let root = serde_json::to_value(root).unwrap_or(Value::Null);
                let root = if root.is_null() { json!({}) } else { root };
                schemas.insert((version.name.clone(), crd.spec.names.kind.clone()), Schema::new(root)?);
            }
        }
        let regex = |pattern: &str, path: &str| {
            Regex::new(pattern).map_err(|source| SchemaError::Pattern {
                path: path.to_owned(),
                pattern: pattern.to_owned(),
                source,
            })
        };
        Ok(Self {
            options,
            schemas,
            subdomain: regex(crate::api::DNS_SUBDOMAIN_PATTERN, "metadata.name")?,
            label: regex(crate::api::DNS_LABEL_PATTERN, "metadata.namespace")?,
            label_text: regex(LABEL_TEXT_PATTERN, "metadata.labels")?,
            diagnostics: Vec::new(),
            channels: Vec::new(),
            secrets: HashMap::new(),
        })
    }

    fn report(&mut self, file: usize, line: usize, severity: Severity, message: String) {
        self.diagnostics.push((file, line, severity, message));
    }

    fn source(&mut self, file: usize, source: &Source) {
        for doc in load::documents(source) {
            match doc.value {
                Err(e) => self.report(file, e.line, Severity::Error, e.message),
                Ok(None) => {}
                Ok(Some(value)) => self.object(file, &doc.locator, &FieldPath::default(), value),
            }
        }
    }

    /// One object (a document, or an item of a `List`) at path `at` of its document.
    fn object(&mut self, file: usize, loc: &load::Locator, at: &FieldPath, value: Value) {
        let line = loc.line_of(&at.0);
        let Value::Object(mut map) = value else {
            let message = "a manifest must be an object with apiVersion and kind".to_owned();
            return self.report(file, line, Severity::Error, message);
        };
        let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
        let (api_version, kind) = (text("apiVersion"), text("kind"));
        if kind.as_deref().is_some_and(|k| k.ends_with("List")) {
            if let Some(Value::Array(items)) = map.remove("items") {
                for (i, item) in items.into_iter().enumerate() {
                    self.object(file, loc, &at.key("items").index(i), item);
                }
                return;
            }
        }
        let ours = |k: &str| self.schemas.keys().any(|(_, kind)| kind == k);
        match (api_version.as_deref(), kind.as_deref()) {
            (None, None) => self.report(file, line, Severity::Error, "missing apiVersion and kind".into()),
            (None, Some(k)) => {
                let versions: BTreeSet<&str> =
                    (self.schemas.keys()).filter(|(_, kind)| kind == k).map(|(v, _)| v.as_str()).collect();
                let versions: Vec<String> = versions.iter().map(|v| format!("{GROUP}/{v}")).collect();
                let hint =
                    if versions.is_empty() { String::new() } else { format!(" (expected {})", versions.join(" or ")) };
                self.report(file, line, Severity::Error, format!("missing apiVersion{hint}"));
            }
            (Some(_), None) => self.report(file, line, Severity::Error, "missing kind".into()),
            (Some(api_version), Some(kind)) => {
                let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
                if group == GROUP {
                    self.ours(file, loc, at, version, kind, map);
                } else if group.is_empty() && version == "v1" && kind == "Secret" {
                    self.secret(file, line, &map);
                } else if ours(kind) {
                    let message = format!("{kind} with apiVersion {api_version} is not {GROUP}'s: not checked");
                    self.report(file, loc.line_of(&at.key("apiVersion").0), Severity::Warning, message);
                }
            }
        }
    }

    /// An object of our API group.
    fn ours(
        &mut self,
        file: usize,
        loc: &load::Locator,
        at: &FieldPath,
        version: &str,
        kind: &str,
        map: Map<String, Value>,
    ) {
        let line = loc.line_of(&at.0);
        let binding_kind = WhatsAppNumberBinding::kind(&());
        let channel_kind = WhatsAppChannel::kind(&());
        if kind == binding_kind && self.schemas.contains_key(&(version.to_owned(), kind.to_owned())) {
            let message = format!(
                "{kind} objects are created by the operator only: remove it (applied by hand, it would block \
                 the channel that claims the number)"
            );
            return self.report(file, line, Severity::Error, message);
        }
        if !self.schemas.contains_key(&(version.to_owned(), kind.to_owned())) {
            let versions: BTreeSet<String> =
                (self.schemas.keys()).filter(|(_, k)| k == kind).map(|(v, _)| format!("{GROUP}/{v}")).collect();
            let message = if versions.is_empty() {
                let kinds: BTreeSet<String> =
                    (self.schemas.keys()).map(|(_, k)| k.clone()).filter(|k| *k != binding_kind).collect();
                let hint = schema::closest(kind, &kinds).map(|k| format!(" (did you mean {k}?)")).unwrap_or_default();
                let kinds: Vec<&str> = kinds.iter().map(String::as_str).collect();
                format!("unknown kind {kind} in {GROUP}/{version}{hint}: this operator serves {}", kinds.join(", "))
            } else {
                let versions: Vec<&str> = versions.iter().map(String::as_str).collect();
                format!("unknown version {GROUP}/{version} of {kind}: this operator serves {}", versions.join(", "))
            };
            let at_line = loc.line_of(&at.key("apiVersion").0);
            return self.report(file, at_line, Severity::Error, message);
        }
        let field_line = |path: &[&str]| {
            let mut p = at.key("spec");
            for seg in path {
                p = p.key(seg);
            }
            loc.line_of(&p.0)
        };
        if kind == channel_kind {
            // Before pruning drops it: a reference to another namespace's Secret.
            for reference in [["twilio", "credentialsSecretRef"], ["identityServer", "clientSecretRef"]] {
                let pointer = format!("/{}/namespace", reference.join("/"));
                if let Some(other) = map.get("spec").and_then(|spec| spec.pointer(&pointer)) {
                    let message = format!(
                        "spec.{}.namespace {other}: a Secret reference cannot name another namespace; the API server \
                         drops the field and the operator reads the Secret from the channel's own namespace",
                        reference.join(".")
                    );
                    let line = field_line(&[reference[0], reference[1], "namespace"]);
                    self.report(file, line, Severity::Error, message);
                }
            }
        }
        let (namespace, name, value) = self.validate(file, loc, at, version, kind, map);
        if kind != channel_kind {
            return;
        }
        let spec = value.get("spec");
        // The rules the schema cannot express, as the operator applies them.
        if let Some(spec) = spec.and_then(|s| serde_json::from_value::<crate::api::WhatsAppChannelSpec>(s.clone()).ok())
        {
            for problem in crate::api::rules::spec_problems(&spec).into_iter().filter(|p| !p.in_schema) {
                let message = format!(
                    "{} (the operator would report {}=False, reason InvalidSpec, and call no Twilio API)",
                    problem.message, problem.condition
                );
                self.report(file, field_line(&[problem.field]), Severity::Error, message);
            }
        }
        let claim =
            match (spec, &name) {
                (Some(spec), Some(name)) => claim(spec, &namespace, name).map(|(binding, number, sandbox_account)| {
                    Claim { binding, number, sandbox_account, line: field_line(&["phoneNumber"]) }
                }),
                _ => None,
            };
        let secret_ref = |path: &[&str], with_key: bool| {
            let r = spec?.pointer(&format!("/{}", path.join("/")))?;
            Some(SecretRef {
                name: r.get("name")?.as_str()?.to_owned(),
                key: if with_key { Some(r.get("key")?.as_str()?.to_owned()) } else { None },
                line: field_line(&[path, &["name"]].concat()),
            })
        };
        let credentials = secret_ref(&["twilio", "credentialsSecretRef"], false);
        let identity = secret_ref(&["identityServer", "clientSecretRef"], true);
        self.channels.push(Channel { file, line, namespace, name, value, claim, credentials, identity });
    }

    /// Checks metadata and validates against the schema; returns the namespace, the name and
    /// the object as the API server would store it.
    fn validate(
        &mut self,
        file: usize,
        loc: &load::Locator,
        at: &FieldPath,
        version: &str,
        kind: &str,
        mut map: Map<String, Value>,
    ) -> (String, Option<String>, Value) {
        let meta_at = at.key("metadata");
        let mut namespace = self.options.namespace.clone();
        let mut name = None;
        match map.get("metadata") {
            None => {
                let message = "missing required field metadata.name".to_owned();
                self.report(file, loc.line_of(&at.0), Severity::Error, message);
            }
            Some(Value::Object(meta)) => {
                let line = |key: &str| loc.line_of(&meta_at.key(key).0);
                match meta.get("name") {
                    None => {
                        let message = "missing required field metadata.name".to_owned();
                        self.report(file, loc.line_of(&meta_at.0), Severity::Error, message);
                    }
                    Some(Value::String(n)) if n.len() <= 253 && self.subdomain.is_match(n) => name = Some(n.clone()),
                    Some(other) => {
                        let message = format!(
                            "metadata.name {other} is not a valid name: at most 253 lower case letters, digits, '-' \
                             and '.', starting and ending with a letter or digit (a DNS-1123 subdomain)"
                        );
                        self.report(file, line("name"), Severity::Error, message);
                    }
                }
                if let Some(Value::Object(labels)) = meta.get("labels") {
                    for (key, value) in labels {
                        if let Some(problem) = self.label_problem(key, value) {
                            let message = format!("metadata.labels {}: {problem}", Value::from(key.as_str()));
                            self.report(file, line("labels"), Severity::Error, message);
                        }
                    }
                }
                if let Some(Value::Object(annotations)) = meta.get("annotations") {
                    let size: usize = annotations
                        .iter()
                        .map(|(k, v)| k.len() + v.as_str().map_or_else(|| v.to_string().len(), str::len))
                        .sum();
                    if size > ANNOTATIONS_MAX_BYTES {
                        let message = format!(
                            "metadata.annotations hold {size} bytes: the API server refuses more than \
                             {ANNOTATIONS_MAX_BYTES} (keys and values together)"
                        );
                        self.report(file, line("annotations"), Severity::Error, message);
                    }
                }
                match meta.get("namespace") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(ns)) if ns.len() <= 63 && self.label.is_match(ns) => namespace = ns.clone(),
                    Some(other) => {
                        let message = format!(
                            "metadata.namespace {other} is not a valid namespace: at most 63 lower case letters, \
                             digits and '-', starting and ending with a letter or digit (a DNS-1123 label)"
                        );
                        self.report(file, line("namespace"), Severity::Error, message);
                    }
                }
            }
            Some(_) => {
                let message = "metadata must be an object".to_owned();
                self.report(file, loc.line_of(&meta_at.0), Severity::Error, message);
            }
        }
        // The status subresource: the API server ignores status on create and update.
        map.remove("status");
        let mut value = Value::Object(map);
        if let Some(schema) = self.schemas.get(&(version.to_owned(), kind.to_owned())) {
            for finding in schema.check(&mut value) {
                let mut path = at.clone();
                path.0.extend(finding.at.0);
                self.diagnostics.push((file, loc.line_of(&path.0), finding.severity, finding.message));
            }
        }
        (namespace, name, value)
    }

    /// Why the API server would refuse a label, if it would: a key is `[prefix/]name` (a DNS-1123
    /// subdomain prefix, a name of at most 63 characters), a value at most 63 characters; names
    /// and values are letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit.
    fn label_problem(&self, key: &str, value: &Value) -> Option<String> {
        let (prefix, name) = key.rsplit_once('/').map_or((None, key), |(p, n)| (Some(p), n));
        if prefix.is_some_and(|p| p.len() > 253 || !self.subdomain.is_match(p)) {
            return Some("the key's prefix is not a DNS-1123 subdomain".to_owned());
        }
        if name.is_empty() || name.len() > 63 || !self.label_text.is_match(name) {
            return Some(
                "the key's name is not 1 to 63 letters, digits, '-', '_' and '.', starting and ending with a letter \
                 or digit"
                    .to_owned(),
            );
        }
        match value.as_str() {
            None => Some(format!("the value must be a string, got {value}")),
            Some(v) if v.len() > 63 || !(v.is_empty() || self.label_text.is_match(v)) => Some(format!(
                "the value {} is not at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter \
                 or digit",
                Value::from(v)
            )),
            Some(_) => None,
        }
    }

    fn secret(&mut self, file: usize, line: usize, map: &Map<String, Value>) {
        let meta = map.get("metadata");
        let Some(name) = meta.and_then(|m| m.get("name")).and_then(Value::as_str) else {
            return;
        };
        let namespace =
            meta.and_then(|m| m.get("namespace")).and_then(Value::as_str).unwrap_or(&self.options.namespace);
        // The keys with a value the operator would use: it trims values, and an empty one counts
        // as missing (`data` is base64; one that does not decode is left to the API server).
        let usable = |field: &str, value: &Value| match field {
            "data" => serde_json::from_value::<k8s_openapi::ByteString>(value.clone())
                .map(|b| !String::from_utf8_lossy(&b.0).trim().is_empty())
                .unwrap_or(true),
            _ => value.as_str().is_none_or(|v| !v.trim().is_empty()),
        };
        let keys = ["data", "stringData"]
            .iter()
            .filter_map(|k| Some((*k, map.get(*k).and_then(Value::as_object)?)))
            .flat_map(|(field, m)| m.iter().filter(move |(_, v)| usable(field, v)).map(|(k, _)| k.clone()))
            .collect();
        self.secrets.entry((namespace.to_owned(), name.to_owned())).or_insert(SecretDoc { file, line, keys });
    }

    fn finish(mut self, sources: &[Source]) -> Report {
        let at = |file: usize, line: usize| format!("{}:{line}", sources[file].name);
        let name_of = |ch: &Channel| format!("{}/{}", ch.namespace, ch.name.as_deref().unwrap_or("<unnamed>"));
        let mut found = Vec::new();

        // The same object twice.
        let mut first: HashMap<(&str, &str), usize> = HashMap::new();
        for (i, ch) in self.channels.iter().enumerate() {
            let Some(name) = ch.name.as_deref() else { continue };
            let Some(&j) = first.get(&(ch.namespace.as_str(), name)) else {
                first.insert((ch.namespace.as_str(), name), i);
                continue;
            };
            let other = &self.channels[j];
            let (severity, message) = if ch.value == other.value {
                let m = format!(
                    "duplicate object: WhatsAppChannel {} is also defined at {}",
                    name_of(ch),
                    at(other.file, other.line)
                );
                (Severity::Warning, m)
            } else {
                let m = format!(
                    "WhatsAppChannel {} is defined twice with different content (also at {}): only one can be applied",
                    name_of(ch),
                    at(other.file, other.line)
                );
                (Severity::Error, m)
            };
            found.push((ch.file, ch.line, severity, message));
        }

        // One number, two channels: the same claim (binding name) as in the cluster.
        let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, ch) in self.channels.iter().enumerate() {
            let Some(claim) = &ch.claim else { continue };
            match groups.iter_mut().find(|(b, _)| *b == claim.binding) {
                Some((_, members)) => members.push(i),
                None => groups.push((&claim.binding, vec![i])),
            }
        }
        for (_, members) in &groups {
            let holder = &self.channels[members[0]];
            let Some(held) = &holder.claim else { continue };
            let mut reported = HashSet::from([name_of(holder)]);
            for &i in &members[1..] {
                let ch = &self.channels[i];
                let Some(claim) = ch.claim.as_ref().filter(|_| reported.insert(name_of(ch))) else {
                    continue;
                };
                let number = match &claim.sandbox_account {
                    Some(account) => format!("{} (the sandbox of account {account})", claim.number),
                    None => claim.number.to_string(),
                };
                let message = format!(
                    "{number} is claimed by WhatsAppChannel {} ({}) and {}",
                    name_of(holder),
                    at(holder.file, held.line),
                    name_of(ch)
                );
                found.push((ch.file, claim.line, Severity::Error, message));
            }
        }

        // Referenced Secrets that are in the input set.
        for ch in &self.channels {
            let secret = |r: &SecretRef| self.secrets.get(&(ch.namespace.clone(), r.name.clone()));
            if let Some((r, s)) = ch.credentials.as_ref().and_then(|r| Some((r, secret(r)?))) {
                let has = |k: &str| s.keys.contains(k);
                let api_key = has("apiKeySid") && has("apiKeySecret");
                if !has("authToken") && !api_key {
                    let message = format!(
                        "Secret {}/{} ({}) has neither authToken nor apiKeySid and apiKeySecret (with non-blank \
                         values): the channel would report CredentialsValid=False, reason SecretKeyMissing",
                        ch.namespace,
                        r.name,
                        at(s.file, s.line)
                    );
                    found.push((ch.file, r.line, Severity::Error, message));
                }
            }
            if let Some((r, s)) = ch.identity.as_ref().and_then(|r| Some((r, secret(r)?))) {
                if let Some(key) = r.key.as_deref().filter(|k| !s.keys.contains(*k)) {
                    let message = format!(
                        "Secret {}/{} ({}) has no key {key} (with a non-blank value) for \
                         spec.identityServer.clientSecretRef: the channel would report IdentityVerified=False, \
                         reason IdentitySecretMissing",
                        ch.namespace,
                        r.name,
                        at(s.file, s.line)
                    );
                    found.push((ch.file, r.line, Severity::Error, message));
                }
            }
        }

        self.diagnostics.extend(found);
        self.diagnostics.sort_by_key(|(file, line, _, _)| (*file, *line));
        Report {
            diagnostics: self
                .diagnostics
                .into_iter()
                .map(|(file, line, severity, message)| Diagnostic {
                    file: sources[file].name.clone(),
                    line,
                    severity,
                    message,
                })
                .collect(),
            files: sources.len(),
            channels: self.channels.len(),
            failures: Vec::new(),
        }
    }
}

/// The claim a channel's spec makes: the binding name (via [`crate::binding::binding_name`] and
/// [`crate::binding::scope`], as in the cluster), the normalized number, and the sandbox account.
fn claim(spec: &Value, namespace: &str, name: &str) -> Option<(String, E164, Option<String>)> {
    let number = E164::parse(spec.get("phoneNumber")?.as_str()?).ok()?;
    let account = spec.pointer("/twilio/accountSid").and_then(Value::as_str).unwrap_or_default();
    let mut view = json!({
        "apiVersion": format!("{GROUP}/{}", crate::api::VERSION),
        "kind": WhatsAppChannel::kind(&()),
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "phoneNumber": number.as_str(),
            "instance": "",
            "twilio": {"accountSid": account, "credentialsSecretRef": {"name": ""}},
            "webhook": {"url": ""},
        },
    });
    if let Some(mode) = spec.get("mode") {
        view["spec"]["mode"] = mode.clone();
    }
    let channel: WhatsAppChannel = serde_json::from_value(view).ok()?;
    let scope = crate::binding::scope(&channel).map(str::to_owned);
    Some((crate::binding::binding_name(&number, scope.as_deref()), number, scope))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(files: &[(&str, &str)]) -> Vec<String> {
        let sources: Vec<Source> = files.iter().map(|(n, t)| Source::new(*n, *t, Format::Yaml)).collect();
        let report = check_sources(&sources, &CheckOptions::default());
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        report.diagnostics.iter().map(ToString::to_string).collect()
    }

    fn channel(name: &str, number: &str, extra: &str) -> String {
        format!(
            "apiVersion: whatsapp-operator.io/v1alpha1
kind: WhatsAppChannel
metadata:
  name: {name}
spec:
  phoneNumber: \"{number}\"
  instance: crm
  twilio:
    accountSid: AC5eed5eed5eed5eed5eed5eed5eed5eed
    credentialsSecretRef:
      name: twilio
  webhook:
    url: https://receiver.example.com/hook
  queue: q
{extra}"
        )
    }

    #[test]
    fn the_same_number_in_another_spelling_is_a_conflict() {
        let a = channel("sales", "+14155550100", "");
        let b = channel("support", "whatsapp:+1 (415) 555-0100", "");
        let got = check(&[("a.yaml", &a), ("b.yaml", &b)]);
        assert_eq!(
            got,
            vec![
                r#"b.yaml:6: error: spec.phoneNumber "whatsapp:+1 (415) 555-0100" does not match ^\+[1-9][0-9]{1,14}$"#,
                "b.yaml:6: error: +14155550100 is claimed by WhatsAppChannel default/sales (a.yaml:6) and default/support",
            ]
        );
    }

    #[test]
    fn sandbox_numbers_are_scoped_per_account_like_the_cluster_binding() {
        let other = "  mode: Sandbox\n".to_owned();
        let a = channel("a", "+14155238886", &other);
        let b = channel("b", "+14155238886", &other).replace("AC5eed", "AC7e57");
        assert_eq!(check(&[("a.yaml", &a), ("b.yaml", &b)]), Vec::<String>::new());
        let same_account_other_case = channel("c", "+14155238886", &other).replace("AC5eed5eed", "AC5EED5EED");
        assert_eq!(
            check(&[("a.yaml", &a), ("c.yaml", &same_account_other_case)]),
            vec![
                "c.yaml:6: error: +14155238886 (the sandbox of account AC5EED5EED5eed5eed5eed5eed5eed5eed) is claimed \
                 by WhatsAppChannel default/a (a.yaml:6) and default/c"
            ]
        );
        // A business channel and a sandbox channel never share a binding.
        let business = channel("d", "+14155238886", "");
        assert_eq!(check(&[("a.yaml", &a), ("d.yaml", &business)]), Vec::<String>::new());
    }

    #[test]
    fn the_same_object_twice_is_a_duplicate_object_not_a_claim() {
        let a = channel("sales", "+14155550100", "");
        let twice = format!("{a}---\n{a}");
        assert_eq!(
            check(&[("a.yaml", &twice)]),
            vec!["a.yaml:16: warning: duplicate object: WhatsAppChannel default/sales is also defined at a.yaml:1"]
        );
        let other_ns = a.replace("  name: sales\n", "  name: sales\n  namespace: crm\n");
        assert_eq!(
            check(&[("a.yaml", &a), ("b.yaml", &other_ns)]),
            vec!["b.yaml:7: error: +14155550100 is claimed by WhatsAppChannel default/sales (a.yaml:6) and crm/sales"]
        );
        let changed = a.replace("queue: q", "queue: other");
        assert_eq!(
            check(&[("a.yaml", &a), ("b.yaml", &changed)]),
            vec![
                "b.yaml:1: error: WhatsAppChannel default/sales is defined twice with different content (also at \
                 a.yaml:1): only one can be applied"
            ]
        );
    }

    #[test]
    fn lists_metadata_and_foreign_kinds() {
        let item = channel("x", "+14155550100", "").replace('\n', "\n    ");
        let list = format!("apiVersion: v1\nkind: List\nitems:\n  - {item}\n  - apiVersion: v1\n    kind: ConfigMap\n");
        let got = check(&[
            ("list.yaml", &list),
            ("meta.yaml", &channel("Bad_Name", "+14155550101", "")),
            ("kinds.yaml", "apiVersion: whatsapp-operator.io/v1beta1\nkind: WhatsAppChannel\n---\napiVersion: whatsapp-operator.io/v1alpha1\nkind: WhatsappChannel\n---\nkind: Foo\n---\n- a\n---\napiVersion: example.com/v1\nkind: WhatsAppChannel\n---\nkind: WhatsAppChannel\n"),
        ]);
        assert_eq!(
            got,
            vec![
                "meta.yaml:4: error: metadata.name \"Bad_Name\" is not a valid name: at most 253 lower case letters, \
                 digits, '-' and '.', starting and ending with a letter or digit (a DNS-1123 subdomain)",
                "kinds.yaml:1: error: unknown version whatsapp-operator.io/v1beta1 of WhatsAppChannel: this operator \
                 serves whatsapp-operator.io/v1alpha1",
                "kinds.yaml:4: error: unknown kind WhatsappChannel in whatsapp-operator.io/v1alpha1 (did you mean \
                 WhatsAppChannel?): this operator serves WhatsAppChannel",
                "kinds.yaml:7: error: missing apiVersion",
                "kinds.yaml:9: error: a manifest must be an object with apiVersion and kind",
                "kinds.yaml:11: warning: WhatsAppChannel with apiVersion example.com/v1 is not whatsapp-operator.io's: \
                 not checked",
                "kinds.yaml:14: error: missing apiVersion (expected whatsapp-operator.io/v1alpha1)",
            ]
        );
        let report = check_sources(&[Source::new("list.yaml", list, Format::Yaml)], &CheckOptions::default());
        assert_eq!(report.channels, 1);
    }

    #[test]
    fn referenced_secrets_in_the_set_are_cross_checked() {
        let secret = |name: &str, keys: &str| {
            format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n{keys}")
        };
        let identity = "  identityServer:\n    url: https://id.example.com\n    clientId: crm\n    clientSecretRef:\n      name: id\n";
        let ch = channel("sales", "+14155550100", identity);
        let good = [secret("twilio", "  authToken: t\n"), secret("id", "  clientSecret: s\n")].join("---\n");
        assert_eq!(check(&[("c.yaml", &ch), ("s.yaml", &good)]), Vec::<String>::new());
        let api_key = secret("twilio", "  apiKeySid: SK1\n  apiKeySecret: s\n");
        assert_eq!(check(&[("c.yaml", &ch), ("s.yaml", &api_key)]), Vec::<String>::new());
        let bad = [secret("twilio", "  apiKeySid: SK1\n"), secret("id", "  other: s\n")].join("---\n");
        let expected = vec![
            "c.yaml:11: error: Secret default/twilio (s.yaml:1) has neither authToken nor apiKeySid and apiKeySecret \
             (with non-blank values): the channel would report CredentialsValid=False, reason SecretKeyMissing",
            "c.yaml:19: error: Secret default/id (s.yaml:8) has no key clientSecret (with a non-blank value) for \
             spec.identityServer.clientSecretRef: the channel would report IdentityVerified=False, reason \
             IdentitySecretMissing",
        ];
        assert_eq!(check(&[("c.yaml", &ch), ("s.yaml", &bad)]), expected);
        // Blank values count as missing, as the operator trims them: in stringData, and in data
        // (base64 of "  \n").
        let blank = [
            secret("twilio", "  authToken: \"  \"\n"),
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: id\ndata:\n  clientSecret: ICAK\n".to_owned(),
        ]
        .join("---\n");
        assert_eq!(check(&[("c.yaml", &ch), ("s.yaml", &blank)]), expected);
    }

    #[test]
    fn bindings_are_refused_and_yaml_errors_reported() {
        let binding = "apiVersion: whatsapp-operator.io/v1alpha1\nkind: WhatsAppNumberBinding\nmetadata:\n  name: x\n";
        let got = check(&[("b.yaml", binding), ("e.yaml", "a: [\n")]);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("b.yaml:1: error: WhatsAppNumberBinding objects are created by the operator only"));
        assert!(got[1].starts_with("e.yaml:") && got[1].contains(": error: invalid YAML: "), "{got:?}");
    }
}
