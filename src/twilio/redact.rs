//! Redaction of text that comes from a channel's spec or from a server before it reaches a
//! status, an Event or a log line.
//!
//! - [`redact_url`]: the userinfo of a URL (`https://user:pass@host/x`) becomes `***`
//!   (`https://***@host/x`). The CRD schema refuses userinfo in `webhook.url` and
//!   `identityServer.url`, but a URL read back from Twilio (a webhook someone set in the
//!   Console) or given on the command line may still carry it.
//! - [`redact_urls_in_text`]: the same for every URL inside free text (a Twilio error
//!   message may quote a URL it was sent).
//! - [`strip_urls`]: every URL inside free text becomes `<url>` (transport errors).
//! - [`clean_text`]: one line of printable text, at most a given number of characters.

/// What replaces the userinfo of a URL.
pub const REDACTED: &str = "***";

/// What replaces a whole URL in [`strip_urls`].
const URL_PLACEHOLDER: &str = "<url>";

/// `url` with its userinfo (anything before the last `@` of the authority) replaced by
/// `***`: `https://user:pass@host/x` → `https://***@host/x`. A URL without userinfo, an `@`
/// in the path, query or fragment only, and text that is not a URL come back unchanged.
///
/// The authority is what follows `scheme://` (or a leading `//`) up to the first `/`, `?` or
/// `#`; a `\` does not end it, so whatever a parser might take for userinfo is redacted.
pub fn redact_url(url: &str) -> String {
    match authority_start(url) {
        Some(start) => redact_token(url, start),
        None => url.to_owned(),
    }
}

/// Where the authority of a URL starts: after `scheme://`, or after a leading `//`.
fn authority_start(url: &str) -> Option<usize> {
    if url.starts_with("//") {
        return Some(2);
    }
    let colon = url.find("://")?;
    let scheme = &url[..colon];
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && chars.all(is_scheme_char);
    valid.then_some(colon + 3)
}

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

/// The length of the authority at the start of `rest`: up to the first `/`, `?` or `#`.
fn authority_len(rest: &str) -> usize {
    rest.find(['/', '?', '#']).unwrap_or(rest.len())
}

/// `token` with anything before the last `@` of the authority starting at `start` redacted.
fn redact_token(token: &str, start: usize) -> String {
    let rest = &token[start..];
    match rest[..authority_len(rest)].rfind('@') {
        Some(at) => format!("{}{REDACTED}{}", &token[..start], &rest[at..]),
        None => token.to_owned(),
    }
}

/// `text` with the userinfo of every `scheme://…` URL in it redacted as [`redact_url`] does.
/// The authority of a URL in text ends at whitespace at the latest (not at a quote or a
/// bracket, which userinfo may contain).
pub fn redact_urls_in_text(text: &str) -> String {
    rewrite_urls(text, redact_token)
}

/// `text` with every `scheme://…` URL in it replaced by `<url>`. A URL ends at whitespace;
/// after its authority also at a quote, an angle bracket or a closing parenthesis.
pub fn strip_urls(text: &str) -> String {
    rewrite_urls(text, |token, start| {
        let authority_end = start + authority_len(&token[start..]);
        let end =
            token[authority_end..].find(['"', '\'', '`', '<', '>', ')']).map_or(token.len(), |i| authority_end + i);
        format!("{URL_PLACEHOLDER}{}", &token[end..])
    })
}

/// Calls `f(token, authority_start)` for every URL-like token of `text`: the scheme
/// characters before a `://` (possibly none) up to the next whitespace.
fn rewrite_urls(text: &str, f: impl Fn(&str, usize) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(sep) = rest.find("://") {
        let scheme_start =
            rest[..sep].char_indices().rev().take_while(|&(_, c)| is_scheme_char(c)).last().map_or(sep, |(i, _)| i);
        let end = rest[sep..].find(char::is_whitespace).map_or(rest.len(), |i| sep + i);
        out.push_str(&rest[..scheme_start]);
        out.push_str(&f(&rest[scheme_start..end], sep + 3 - scheme_start));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// `text` on one line (control characters become spaces), trimmed, and cut to `max_chars`
/// characters (an ellipsis marks a cut).
pub fn clean_text(text: &str, max_chars: usize) -> String {
    let one_line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let trimmed = one_line.trim();
    if trimmed.chars().count() <= max_chars {
        return trimmed.to_owned();
    }
    let mut cut: String = trimmed.chars().take(max_chars).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(redact_url("https://user:pass@host/x"), "https://***@host/x");
        assert_eq!(redact_url("https://user@host"), "https://***@host");
        assert_eq!(redact_url("https://:pass@host:8443?q=1"), "https://***@host:8443?q=1");
        assert_eq!(redact_url("https://a@b@host#f"), "https://***@host#f");
        assert_eq!(redact_url("http://u:p@127.0.0.1:5000/connect/token"), "http://***@127.0.0.1:5000/connect/token");
        assert_eq!(redact_url("//user:pass@host/x"), "//***@host/x");
        // A backslash does not end the authority: whatever a parser may take for userinfo goes.
        assert_eq!(redact_url(r"https://evil\user:pass@host/x"), "https://***@host/x");
        assert_eq!(redact_url("HTTPS://u:p@Host/"), "HTTPS://***@Host/");
    }

    #[test]
    fn urls_without_userinfo_are_unchanged() {
        for url in [
            "https://host/x",
            "https://host:8443",
            "https://host/api/@me",
            "https://host/x?mail=a@b.example",
            "https://host#user@frag",
            "https://host?a=b@c",
            "",
            "not a url",
            "user:pass@host",
            "someone@example.com",
            "1://x@y",
        ] {
            assert_eq!(redact_url(url), url, "{url}");
        }
    }

    #[test]
    fn urls_in_text() {
        assert_eq!(
            redact_urls_in_text(
                "The URL https://u:SEKRIT@host/x is invalid; see https://www.twilio.com/docs/errors/21609"
            ),
            "The URL https://***@host/x is invalid; see https://www.twilio.com/docs/errors/21609"
        );
        assert_eq!(
            redact_urls_in_text("Url 'https://a:b@h/' (was \"http://c:d@h\")"),
            "Url 'https://***@h/' (was \"http://***@h\")"
        );
        assert_eq!(redact_urls_in_text("no url, mail me@host.example"), "no url, mail me@host.example");
        assert_eq!(redact_urls_in_text("odd ://user:pw@host/x"), "odd ://***@host/x");
        assert_eq!(redact_urls_in_text("ends with https://u:p@h"), "ends with https://***@h");
        assert_eq!(
            strip_urls("error sending request for url (https://u:p@h/x?y): connect"),
            "error sending request for url (<url>): connect"
        );
        assert_eq!(strip_urls("url 'https://u:p'q@h/x' refused"), "url '<url>' refused");
        assert_eq!(redact_urls_in_text("url 'https://u:p'q@h/x' refused"), "url 'https://***@h/x' refused");
        assert_eq!(strip_urls("dns error: https://h/x failed"), "dns error: <url> failed");
        assert_eq!(strip_urls("no url here"), "no url here");
    }

    #[test]
    fn text_is_cleaned_and_cut() {
        assert_eq!(clean_text("  a\nb\tc  ", 10), "a b c");
        assert_eq!(clean_text("abcdef", 3), "abc…");
        assert_eq!(clean_text("ééé", 3), "ééé");
    }
}
