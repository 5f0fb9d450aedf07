//! Spec path templates (`/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json`) and matching
//! of concrete request paths against them.

/// One `/`-separated segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// A literal segment, compared byte for byte.
    Literal(String),
    /// A segment holding one parameter, with optional literal text around it (`{Sid}.json`).
    Param { prefix: String, name: String, suffix: String },
}

/// A parsed path template.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    segments: Vec<Segment>,
    literal_segments: usize,
}

impl Template {
    /// Parses a template. A segment with more than one `{param}` (none exist in the specs we
    /// serve) is kept as a literal, so it never matches.
    pub(crate) fn parse(template: &str) -> Template {
        let segments: Vec<Segment> = template
            .split('/')
            .map(|seg| match (seg.find('{'), seg.find('}')) {
                (Some(open), Some(close))
                    if open < close && seg.matches('{').count() == 1 && seg.matches('}').count() == 1 =>
                {
                    Segment::Param {
                        prefix: seg[..open].to_string(),
                        name: seg[open + 1..close].to_string(),
                        suffix: seg[close + 1..].to_string(),
                    }
                }
                _ => Segment::Literal(seg.to_string()),
            })
            .collect();
        let literal_segments = segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count();
        Template { segments, literal_segments }
    }

    /// How many segments are fully literal: the more, the more specific the template
    /// (`/v1/Services/Usecases` wins over `/v1/Services/{Sid}`).
    pub(crate) fn specificity(&self) -> usize {
        self.literal_segments
    }

    /// Matches a concrete path; returns the percent-decoded path parameters in template order.
    pub(crate) fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (seg, part) in self.segments.iter().zip(parts) {
            match seg {
                Segment::Literal(lit) => {
                    if lit != part {
                        return None;
                    }
                }
                Segment::Param { prefix, name, suffix } => {
                    let value = part.strip_prefix(prefix.as_str())?.strip_suffix(suffix.as_str())?;
                    if value.is_empty() {
                        return None;
                    }
                    params.push((name.clone(), percent_decode(value)));
                }
            }
        }
        Some(params)
    }
}

/// Decodes `%XX` escapes of a path segment (a `+` stays a `+` in paths). Invalid escapes and
/// invalid UTF-8 are kept as they are (lossily).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_suffix_params() {
        let t = Template::parse("/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/{Sid}.json");
        let got = t.matches("/2010-04-01/Accounts/AC1/IncomingPhoneNumbers/PN2.json");
        assert_eq!(got, Some(vec![("AccountSid".into(), "AC1".into()), ("Sid".into(), "PN2".into())]));
        assert_eq!(t.matches("/2010-04-01/Accounts/AC1/IncomingPhoneNumbers/PN2"), None);
        assert_eq!(t.matches("/2010-04-01/Accounts/AC1/IncomingPhoneNumbers/.json"), None);
        assert_eq!(t.specificity(), 4);
    }

    #[test]
    fn percent_decoding_of_paths() {
        assert_eq!(percent_decode("a%2Bb+c%zz%4"), "a+b+c%zz%4");
        assert_eq!(percent_decode("%41"), "A");
    }
}
