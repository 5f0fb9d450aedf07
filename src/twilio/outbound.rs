//! Where the operator may send a request whose URL comes from a channel's spec: the identity
//! server (`spec.identityServer.url`). Anyone who may write a `WhatsAppChannel` chooses that URL
//! and the operator fetches it from inside the cluster, so without a policy a channel could make
//! the operator call the cloud's metadata service or any internal address (server-side request
//! forgery). See `docs/security.md`.
//!
//! The rules, decided by the pure [`OutboundPolicy::check_url`] and
//! [`OutboundPolicy::check_addresses`]:
//! - `https` only; plain `http` only to loopback (`127.0.0.0/8`, `::1`, `localhost`).
//! - Refused by default, however the address is reached (a literal in the URL or what a name
//!   resolves to): link-local (`169.254.0.0/16`, which holds the metadata service of AWS, GCP,
//!   Azure, OpenStack and others, and `fe80::/10`), metadata addresses outside it
//!   (`fd00:ec2::254`, AWS over IPv6; `100.100.100.200`, Alibaba Cloud), unspecified (`0.0.0.0/8`,
//!   `::`), multicast and broadcast. IPv4-mapped (`::ffff:a.b.c.d`) and NAT64 (`64:ff9b::/96`)
//!   addresses are judged by the IPv4 address they carry. Only an allow-list CIDR that holds
//!   the address lifts this (a host-name entry does not: a name can resolve anywhere).
//! - With an allow-list ([`AllowRule`]s: host names, `*.domain` wildcards, addresses or CIDRs),
//!   only what it names: the URL's host matches a name rule, or every address the host resolves
//!   to lies in a CIDR rule.
//! - Every address a name resolves to must pass, and the connection is made to exactly the
//!   addresses checked (see [`PolicyResolver`]), so a name that resolves to an allowed address
//!   when checked and a forbidden one when connecting (DNS rebinding) cannot slip through.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::Url;

/// One entry of the allow-list (`--outbound-allow`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowRule {
    /// This host name exactly (lowercase, without a trailing dot).
    Host(String),
    /// Any host name under this domain (`*.example.com`: `id.example.com`, `a.b.example.com`,
    /// not `example.com` itself). Holds the domain without `*.`.
    Subdomains(String),
    /// Addresses in this network (`10.0.0.0/8`, `fd00::/8`; a bare address is a /32 or /128).
    Net(IpNet),
}

/// An allow-list entry that is not a host name, `*.domain`, address or CIDR.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("--outbound-allow entry {entry:?} is not a host name, *.domain, IP address or CIDR ({why})")]
pub struct AllowRuleError {
    /// The entry as given.
    pub entry: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl std::str::FromStr for AllowRule {
    type Err = AllowRuleError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let entry = raw.trim();
        let err = |why| AllowRuleError { entry: raw.to_owned(), why };
        if entry.is_empty() {
            return Err(err("empty"));
        }
        let bare = entry.strip_prefix('[').and_then(|e| e.strip_suffix(']')).unwrap_or(entry);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Self::Net(IpNet::from(canonical(ip))));
        }
        if entry.contains('/') {
            let net = entry.parse::<IpNet>().map_err(|_| err("a CIDR is an address, '/' and a prefix length"))?;
            return Ok(Self::Net(net.trunc()));
        }
        let (wildcard, name) = match entry.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, entry),
        };
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        if !is_host_name(&name) {
            return Err(err(
                "a host name has dot-separated labels of letters, digits and '-', no scheme, port or path",
            ));
        }
        Ok(if wildcard { Self::Subdomains(name) } else { Self::Host(name) })
    }
}

/// Whether `name` is a DNS host name: labels of 1 to 63 letters, digits and `-` (not at either
/// end), at most 253 characters.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Why a URL or address is refused. Names only the host and the addresses (never a path,
/// query or userinfo), and what to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OutboundRefusal {
    /// `http` to a host that is not loopback, or a scheme other than http(s).
    #[error("{scheme}:// to {host} is refused: only https is allowed, plain http only to loopback")]
    Scheme {
        /// The URL's scheme.
        scheme: String,
        /// The URL's host.
        host: String,
    },
    /// The URL has no host.
    #[error("the URL has no host")]
    NoHost,
    /// The address is in a range refused by default and no allow-list CIDR holds it.
    #[error("{} is {range}, refused unless an --outbound-allow CIDR holds it", shown(host, Some(*addr)))]
    Forbidden {
        /// The URL's host.
        host: String,
        /// The refused address.
        addr: IpAddr,
        /// The refused range it lies in, e.g. `link-local (169.254.0.0/16, cloud metadata services)`.
        range: &'static str,
    },
    /// An allow-list is set and names neither the host nor a network holding this address.
    #[error("{} is not in --outbound-allow", shown(host, *addr))]
    NotAllowed {
        /// The URL's host.
        host: String,
        /// The address outside every allowed network (`None`: decided on the name alone).
        addr: Option<IpAddr>,
    },
    /// `localhost` resolved to an address that is not loopback.
    #[error("localhost resolves to {addr}, which is not a loopback address")]
    LocalhostNotLoopback {
        /// The address.
        addr: IpAddr,
    },
    /// The name resolved to no address at all.
    #[error("{host} resolves to no address")]
    NoAddress {
        /// The host.
        host: String,
    },
}

/// How a refusal names the host: `169.254.169.254`, or `id.example.com (resolves to
/// 10.0.0.1)` when the address came from a lookup.
fn shown(host: &str, addr: Option<IpAddr>) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match addr {
        Some(a) if bare.parse::<IpAddr>().map(canonical).ok() != Some(a) => format!("{host} (resolves to {a})"),
        _ => host.to_owned(),
    }
}

/// The ranges refused by default, with how messages name them.
const REFUSED: &[(&str, &str)] = &[
    ("169.254.0.0/16", "link-local (169.254.0.0/16, cloud metadata services)"),
    ("fe80::/10", "link-local (fe80::/10)"),
    ("fd00:ec2::254/128", "the AWS metadata service (fd00:ec2::254)"),
    ("100.100.100.200/32", "the Alibaba Cloud metadata service (100.100.100.200)"),
    ("0.0.0.0/8", "unspecified (0.0.0.0/8, this host)"),
    ("::/128", "the unspecified address (::)"),
    ("224.0.0.0/4", "multicast (224.0.0.0/4)"),
    ("ff00::/8", "multicast (ff00::/8)"),
    ("255.255.255.255/32", "the broadcast address"),
];

/// The range refused by default that holds `addr` (already canonical), if any.
fn refused_range(addr: IpAddr) -> Option<&'static str> {
    REFUSED.iter().find(|(net, _)| net.parse::<IpNet>().is_ok_and(|n| n.contains(&addr))).map(|(_, name)| *name)
}

/// The address a policy judges: IPv4-mapped (`::ffff:a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`)
/// IPv6 addresses as the IPv4 address they reach.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// The host of a URL as a lowercase name without a trailing dot, or an address.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Host {
    Name(String),
    Addr(IpAddr),
}

fn url_host(url: &Url) -> Result<Host, OutboundRefusal> {
    // The URL parser has already normalized IPv4 spellings (`0xa9.0xfe.0xa9.0xfe`,
    // `2852039166`) to dotted decimal and put IPv6 literals in brackets.
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or(OutboundRefusal::NoHost)?;
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    Ok(match bare.parse::<IpAddr>() {
        Ok(addr) => Host::Addr(addr),
        Err(_) => Host::Name(bare.strip_suffix('.').unwrap_or(bare).to_ascii_lowercase()),
    })
}

/// The outbound URL policy: default refusals and an optional allow-list. The default (no
/// allow-list) allows every https host whose addresses are outside the refused ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    allow: Vec<AllowRule>,
}

impl OutboundPolicy {
    /// A policy allowing only what `allow` names (everything outside the refused ranges when
    /// it is empty).
    pub fn new(allow: Vec<AllowRule>) -> Self {
        Self { allow }
    }

    /// Parses allow-list entries (see [`AllowRule`]).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, AllowRuleError> {
        entries.iter().map(|e| e.as_ref().parse()).collect::<Result<Vec<_>, _>>().map(Self::new)
    }

    /// The allow-list.
    pub fn allow_list(&self) -> &[AllowRule] {
        &self.allow
    }

    fn name_allowed(&self, name: &str) -> bool {
        self.allow.iter().any(|rule| match rule {
            AllowRule::Host(h) => h == name,
            AllowRule::Subdomains(d) => {
                name.len() > d.len() + 1 && name.ends_with(d.as_str()) && name[..name.len() - d.len()].ends_with('.')
            }
            AllowRule::Net(_) => false,
        })
    }

    fn net_allows(&self, addr: IpAddr) -> bool {
        self.allow.iter().any(|rule| matches!(rule, AllowRule::Net(n) if n.contains(&addr)))
    }

    fn has_nets(&self) -> bool {
        self.allow.iter().any(|rule| matches!(rule, AllowRule::Net(_)))
    }

    /// Checks what the URL alone decides: the scheme (https, or http to loopback), a literal
    /// address in full, and a host name against the allow-list when the list has no CIDR that
    /// could admit its addresses. A host name that passes still has its resolved addresses
    /// checked ([`OutboundPolicy::check_addresses`]) when connecting.
    pub fn check_url(&self, url: &Url) -> Result<(), OutboundRefusal> {
        let host = url_host(url)?;
        let shown = || url.host_str().unwrap_or_default().to_owned();
        let loopback = match &host {
            Host::Name(n) => n == "localhost",
            Host::Addr(a) => canonical(*a).is_loopback(),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            other => return Err(OutboundRefusal::Scheme { scheme: other.to_owned(), host: shown() }),
        }
        match host {
            Host::Addr(addr) => self.check_addresses(&shown(), &[addr]),
            Host::Name(name) if !self.allow.is_empty() && !self.has_nets() && !self.name_allowed(&name) => {
                Err(OutboundRefusal::NotAllowed { host: shown(), addr: None })
            }
            Host::Name(_) => Ok(()),
        }
    }

    /// Checks every address `host` resolved to (or its literal address): none in a refused
    /// range unless an allow-list CIDR holds it; with an allow-list, the host named by it or
    /// each address in one of its CIDRs; `localhost` only to loopback. One refused address
    /// refuses the host.
    pub fn check_addresses(&self, host: &str, addrs: &[IpAddr]) -> Result<(), OutboundRefusal> {
        let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if addrs.is_empty() {
            return Err(OutboundRefusal::NoAddress { host: host.to_owned() });
        }
        let name_allowed = self.name_allowed(&name);
        for &raw in addrs {
            let addr = canonical(raw);
            let in_net = self.net_allows(addr);
            if name == "localhost" && !addr.is_loopback() {
                return Err(OutboundRefusal::LocalhostNotLoopback { addr });
            }
            if let Some(range) = refused_range(addr).filter(|_| !in_net) {
                return Err(OutboundRefusal::Forbidden { host: host.to_owned(), addr, range });
            }
            if !self.allow.is_empty() && !in_net && !name_allowed {
                return Err(OutboundRefusal::NotAllowed { host: host.to_owned(), addr: Some(addr) });
            }
        }
        Ok(())
    }
}

/// Resolves host names for the identity client and returns only addresses the policy
/// allows, so the connection goes to an address that was checked. Resolution uses the
/// system resolver (`getaddrinfo`, like reqwest's default) unless a lookup is given (tests).
#[derive(Clone)]
pub(crate) struct PolicyResolver {
    policy: Arc<OutboundPolicy>,
    lookup: Lookup,
}

/// A name lookup: the addresses a host name resolves to.
pub(crate) type Lookup =
    Arc<dyn Fn(String) -> futures::future::BoxFuture<'static, std::io::Result<Vec<IpAddr>>> + Send + Sync>;

impl PolicyResolver {
    /// A resolver enforcing `policy`, with the system resolver or `lookup`.
    pub(crate) fn new(policy: Arc<OutboundPolicy>, lookup: Option<Lookup>) -> Self {
        Self { policy, lookup: lookup.unwrap_or_else(system_lookup) }
    }
}

fn system_lookup() -> Lookup {
    Arc::new(|host: String| {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    })
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let policy = self.policy.clone();
        let lookup = self.lookup.clone();
        Box::pin(async move {
            let addrs = lookup(host.clone()).await?;
            policy.check_addresses(&host, &addrs)?;
            let checked: Vec<SocketAddr> = addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            Ok(Box::new(checked.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The refusal inside an error's source chain, if the resolver refused the connection.
pub(crate) fn refusal_in(err: &(dyn std::error::Error + 'static)) -> Option<OutboundRefusal> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(refusal) = e.downcast_ref::<OutboundRefusal>() {
            return Some(refusal.clone());
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> OutboundPolicy {
        OutboundPolicy::parse(entries).expect("valid entries")
    }

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn allow_rules_parse() {
        assert_eq!("ID.Example.com.".parse(), Ok(AllowRule::Host("id.example.com".into())));
        assert_eq!("*.example.com".parse(), Ok(AllowRule::Subdomains("example.com".into())));
        assert_eq!("10.1.2.3".parse(), Ok(AllowRule::Net("10.1.2.3/32".parse().expect("net"))));
        assert_eq!("10.1.2.3/8".parse(), Ok(AllowRule::Net("10.0.0.0/8".parse().expect("net"))));
        assert_eq!("[fd00::1]".parse(), Ok(AllowRule::Net("fd00::1/128".parse().expect("net"))));
        assert_eq!("::ffff:10.0.0.1".parse(), Ok(AllowRule::Net("10.0.0.1/32".parse().expect("net"))));
        for bad in [
            "",
            " ",
            "https://id.example.com",
            "id.example.com:443",
            "id.example.com/x",
            "10.0.0.0/33",
            "a..b",
            "-a.b",
            "*",
            "*.",
            "a_b.c",
            "user@host",
        ] {
            let err = bad.parse::<AllowRule>().expect_err(bad);
            assert!(err.to_string().contains("--outbound-allow entry"), "{err}");
        }
    }

    #[test]
    fn the_scheme_is_https_or_http_to_loopback() {
        let p = OutboundPolicy::default();
        for ok in [
            "https://id.example.com",
            "http://127.0.0.1:5000",
            "http://127.8.9.1",
            "http://[::1]:80",
            "http://localhost:1",
            "http://LOCALHOST./x",
        ] {
            assert_eq!(p.check_url(&url(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "http://id.example.com",
            "http://10.0.0.1",
            "http://localhost.example.com",
            "ftp://id.example.com",
            "http://[::ffff:10.0.0.1]",
        ] {
            assert!(matches!(p.check_url(&url(bad)), Err(OutboundRefusal::Scheme { .. })), "{bad}");
        }
        assert_eq!(
            p.check_url(&url("http://id.example.com/connect/token")).expect_err("http").to_string(),
            "http:// to id.example.com is refused: only https is allowed, plain http only to loopback"
        );
    }

    #[test]
    fn metadata_and_link_local_addresses_are_refused_by_default() {
        let p = OutboundPolicy::default();
        for bad in [
            "https://169.254.169.254/latest/meta-data",
            "https://169.254.0.1",
            "https://[fd00:ec2::254]",
            "https://[fe80::1]",
            "https://[febf::1]",
            "https://100.100.100.200",
            "https://0.0.0.0",
            "https://[::]",
            "https://224.0.0.1",
            "https://[ff02::1]",
            "https://255.255.255.255",
            // The same addresses in IPv6 clothing.
            "https://[::ffff:169.254.169.254]",
            "https://[64:ff9b::a9fe:a9fe]",
            // Decimal and hex spellings are IPv4 literals to the URL parser.
            "https://2852039166",
            "https://0xa9.0xfe.0xa9.0xfe",
        ] {
            let err = p.check_url(&url(bad)).expect_err(bad);
            assert!(matches!(err, OutboundRefusal::Forbidden { .. }), "{bad}: {err:?}");
        }
        let err = p.check_url(&url("https://169.254.169.254/latest")).expect_err("metadata");
        assert_eq!(
            err.to_string(),
            "169.254.169.254 is link-local (169.254.0.0/16, cloud metadata services), refused unless an --outbound-allow CIDR holds it"
        );
        for ok in [
            "https://10.0.0.1",
            "https://192.168.1.1",
            "https://[fd00::1]",
            "https://8.8.8.8",
            "https://169.253.255.255",
            "https://169.255.0.0",
            "https://[fec0::1]",
        ] {
            assert_eq!(p.check_url(&url(ok)), Ok(()), "{ok}");
        }
    }

    #[test]
    fn resolved_addresses_are_checked_like_literals() {
        let p = OutboundPolicy::default();
        assert_eq!(p.check_addresses("id.example.com", &[ip("10.0.0.5"), ip("fd00::5")]), Ok(()));
        // One bad address among good ones refuses the host (the connection could pick it).
        let err = p.check_addresses("id.example.com", &[ip("10.0.0.5"), ip("169.254.169.254")]).expect_err("mixed");
        assert!(matches!(err, OutboundRefusal::Forbidden { addr, .. } if addr == ip("169.254.169.254")));
        let err = p.check_addresses("rebind.example.com", &[ip("::ffff:169.254.169.254")]).expect_err("mapped");
        assert!(matches!(err, OutboundRefusal::Forbidden { addr, .. } if addr == ip("169.254.169.254")));
        assert_eq!(
            err.to_string(),
            "rebind.example.com (resolves to 169.254.169.254) is link-local (169.254.0.0/16, cloud metadata services), refused unless an --outbound-allow CIDR holds it"
        );
        let err = p.check_url(&url("https://[::ffff:169.254.169.254]")).expect_err("mapped literal");
        assert!(err.to_string().starts_with("[::ffff:a9fe:a9fe] is link-local"), "{err}");
        assert!(matches!(p.check_addresses("x.example.com", &[]), Err(OutboundRefusal::NoAddress { .. })));
        assert!(matches!(
            p.check_addresses("localhost", &[ip("10.0.0.1")]),
            Err(OutboundRefusal::LocalhostNotLoopback { .. })
        ));
        assert_eq!(p.check_addresses("localhost", &[ip("127.0.0.1"), ip("::1")]), Ok(()));
    }

    #[test]
    fn an_allow_list_admits_only_what_it_names() {
        let p = policy(&["id.example.com", "*.corp.example", "10.20.0.0/16"]);
        // Names: exact, and strictly under a wildcard domain.
        assert_eq!(p.check_url(&url("https://id.example.com")), Ok(()));
        assert_eq!(p.check_url(&url("https://a.b.corp.example")), Ok(()));
        assert_eq!(p.check_addresses("ID.example.com.", &[ip("192.168.0.9")]), Ok(()));
        assert_eq!(p.check_addresses("a.corp.example", &[ip("192.168.0.9")]), Ok(()));
        for refused in ["corp.example", "xcorp.example", "other.example.com", "id.example.com.evil.test"] {
            let err = p.check_addresses(refused, &[ip("192.168.0.9")]).expect_err(refused);
            assert!(matches!(err, OutboundRefusal::NotAllowed { addr: Some(_), .. }), "{refused}: {err:?}");
        }
        // A name outside the list passes when every address is in an allowed CIDR.
        assert_eq!(p.check_addresses("svc.cluster.local", &[ip("10.20.3.4")]), Ok(()));
        assert!(p.check_addresses("svc.cluster.local", &[ip("10.20.3.4"), ip("10.21.0.1")]).is_err());
        // Literals.
        assert_eq!(p.check_url(&url("https://10.20.0.1")), Ok(()));
        assert!(matches!(p.check_url(&url("https://10.21.0.1")), Err(OutboundRefusal::NotAllowed { .. })));
        // Loopback is no exception once a list is set.
        assert!(matches!(p.check_url(&url("http://127.0.0.1:5000")), Err(OutboundRefusal::NotAllowed { .. })));
        // A host name rule never admits a refused address.
        let err = p.check_addresses("id.example.com", &[ip("169.254.169.254")]).expect_err("metadata");
        assert!(matches!(err, OutboundRefusal::Forbidden { .. }), "{err:?}");
        // Without CIDRs in the list a name is decided before any lookup.
        let names_only = policy(&["id.example.com"]);
        assert_eq!(
            names_only.check_url(&url("https://other.example.com")),
            Err(OutboundRefusal::NotAllowed { host: "other.example.com".into(), addr: None })
        );
        assert_eq!(
            names_only.check_url(&url("https://other.example.com")).expect_err("refused").to_string(),
            "other.example.com is not in --outbound-allow"
        );
    }

    #[test]
    fn an_allow_list_cidr_can_lift_a_default_refusal() {
        let p = policy(&["169.254.10.0/24"]);
        assert_eq!(p.check_url(&url("https://169.254.10.7")), Ok(()));
        assert!(matches!(p.check_url(&url("https://169.254.169.254")), Err(OutboundRefusal::Forbidden { .. })));
    }
}
