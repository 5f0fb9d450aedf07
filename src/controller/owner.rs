//! The ownership marker the operator keeps at Twilio, in the spirit of external-dns' TXT
//! registry: which cluster, channel and instance own a number, written as a URL fragment key on
//! the webhook URL it configures (`…#wao-owner=<cluster>/<namespace>/<name>/<instance>`).
//!
//! Twilio never sends a fragment in its HTTP request (a fragment is not part of an HTTP request
//! target, RFC 9110 §7.1), and Twilio itself reads fragments on webhook URLs for its connection
//! overrides (`#ct=…&rt=…`), so the marker changes neither routing nor what the receiver gets.
//! Other fragment keys (a connection override in `spec.webhook.url`) are kept. Pure: no I/O.

use std::fmt;

/// The fragment key of the marker.
pub const MARKER_KEY: &str = "wao-owner";

/// A cluster identity (`--cluster-id`): letters, digits, `.`, `_`, `-`, 1-63 characters, so
/// that it needs no escaping in a URL fragment and holds no `/`.
pub fn valid_cluster_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 63 && id.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Who owns a number: a channel of a cluster, and the instance it serves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The cluster (`--cluster-id`).
    pub cluster: String,
    /// The channel's namespace.
    pub namespace: String,
    /// The channel's name.
    pub name: String,
    /// The application instance (`spec.instance`).
    pub instance: String,
}

impl Owner {
    /// Parses `cluster/namespace/name/instance`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('/');
        let (cluster, namespace, name, instance) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let ok = |p: &str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c));
        if parts.next().is_some() || ![cluster, namespace, name, instance].into_iter().all(ok) {
            return None;
        }
        Some(Self {
            cluster: cluster.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            instance: instance.to_owned(),
        })
    }

    /// The same channel (cluster, namespace and name), whatever the instance: a channel that
    /// changed `spec.instance` still owns what it marked.
    pub fn same_channel(&self, other: &Owner) -> bool {
        self.cluster == other.cluster && self.namespace == other.namespace && self.name == other.name
    }

    /// `namespace/name`.
    pub fn channel(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.cluster, self.namespace, self.name, self.instance)
    }
}

/// A webhook URL split into the URL without the marker and the owner the marker names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marked {
    /// The URL without the marker key (other fragment keys kept).
    pub url: String,
    /// The owner, when the URL carries a well-formed marker.
    pub owner: Option<Owner>,
}

/// Splits `url` into the URL without its marker and the owner the marker names. A malformed
/// marker is dropped from the URL and names nobody.
pub fn read(url: &str) -> Marked {
    let Some((base, fragment)) = url.split_once('#') else {
        return Marked { url: url.to_owned(), owner: None };
    };
    let mut owner = None;
    let mut kept = Vec::new();
    for pair in fragment.split('&') {
        match pair.strip_prefix(MARKER_KEY).and_then(|r| r.strip_prefix('=')) {
            Some(v) => owner = owner.or_else(|| Owner::parse(v)),
            None if pair.is_empty() => {}
            None => kept.push(pair),
        }
    }
    let url = if kept.is_empty() { base.to_owned() } else { format!("{base}#{}", kept.join("&")) };
    Marked { url, owner }
}

/// `url` (any marker it has replaced) carrying the marker of `owner`.
pub fn mark(url: &str, owner: &Owner) -> String {
    let base = read(url).url;
    let sep = if base.contains('#') { '&' } else { '#' };
    format!("{base}{sep}{MARKER_KEY}={owner}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Owner {
        Owner::parse("c1/sales/support/crm-prod").unwrap()
    }

    #[test]
    fn marks_and_reads_back() {
        let url = mark("https://crm.example.com/hook?x=1", &me());
        assert_eq!(url, "https://crm.example.com/hook?x=1#wao-owner=c1/sales/support/crm-prod");
        assert_eq!(read(&url), Marked { url: "https://crm.example.com/hook?x=1".into(), owner: Some(me()) });
    }

    #[test]
    fn keeps_other_fragment_keys_and_replaces_an_old_marker() {
        let url = mark("https://h.example.com/hook#ct=1000&wao-owner=c0/a/b/c&rt=2000", &me());
        assert_eq!(url, "https://h.example.com/hook#ct=1000&rt=2000&wao-owner=c1/sales/support/crm-prod");
        assert_eq!(read(&url).url, "https://h.example.com/hook#ct=1000&rt=2000");
    }

    #[test]
    fn unmarked_and_malformed_markers_name_nobody() {
        assert_eq!(read("https://h.example.com/").owner, None);
        assert_eq!(read("https://h.example.com/#ct=5").owner, None);
        let bad = read("https://h.example.com/#wao-owner=only/three/parts");
        assert_eq!(bad, Marked { url: "https://h.example.com/".into(), owner: None });
        assert_eq!(Owner::parse("a/b/c/d/e"), None);
        assert_eq!(Owner::parse("a/b//d"), None);
    }

    #[test]
    fn same_channel_ignores_the_instance() {
        let other_instance = Owner { instance: "crm-test".into(), ..me() };
        assert!(me().same_channel(&other_instance));
        assert!(!me().same_channel(&Owner { cluster: "c2".into(), ..me() }));
    }

    #[test]
    fn cluster_ids() {
        assert!(valid_cluster_id("3f9c2a4e-1b7d-4c55-9a0e-7b1d2c3e4f50"));
        assert!(valid_cluster_id("eu-west.prod_1"));
        for bad in ["", "a/b", "a b", "a#b", &"x".repeat(64)] {
            assert!(!valid_cluster_id(bad), "{bad}");
        }
    }
}
