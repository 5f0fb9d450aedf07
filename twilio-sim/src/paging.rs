//! Paging: the 2010 API envelope (relative `*_uri`) and the v1/v2 `meta` envelope (absolute URLs).
//!
//! Page tokens are `PA<sid>` (the page after that item) and `PB<sid>` (the page before it), the
//! form Twilio's own next/previous links take.

use serde_json::{json, Value};

use crate::errors::ApiError;
use crate::http::Params;

/// The largest page Twilio serves.
pub(crate) const MAX_PAGE_SIZE: usize = 1000;

/// Paging parameters of a list request.
#[derive(Debug, Clone)]
pub(crate) struct PageRequest {
    pub page: usize,
    pub page_size: usize,
    pub token: Option<String>,
}

impl PageRequest {
    /// Reads `PageSize`, `Page` and `PageToken`; `PageSize` is clamped to 1..=1000.
    pub fn from_params(params: &Params, default_size: usize) -> Result<PageRequest, ApiError> {
        let page_size = match params.get("PageSize") {
            Some(v) => {
                v.trim().parse::<usize>().map_err(|_| ApiError::bad_request(20001, format!("Invalid PageSize: {v}")))?
            }
            None => default_size,
        }
        .clamp(1, MAX_PAGE_SIZE);
        let page = match params.get("Page") {
            Some(v) => {
                v.trim().parse::<usize>().map_err(|_| ApiError::bad_request(20001, format!("Invalid Page: {v}")))?
            }
            None => 0,
        };
        Ok(PageRequest { page, page_size, token: params.get("PageToken").map(str::to_string) })
    }
}

/// One page of a list.
#[derive(Debug)]
pub(crate) struct Page<'a, T> {
    pub items: Vec<&'a T>,
    pub start: usize,
    pub first_sid: Option<String>,
    pub last_sid: Option<String>,
    pub has_next: bool,
}

/// Cuts the page `req` asks for out of `items` (already filtered and ordered).
pub(crate) fn paginate<'a, T>(items: &'a [T], sid: impl Fn(&T) -> &str, req: &PageRequest) -> Page<'a, T> {
    let position = |s: &str| items.iter().position(|i| sid(i) == s);
    let by_page = (req.page.saturating_mul(req.page_size)).min(items.len());
    let start = match req.token.as_deref() {
        Some(t) if t.starts_with("PA") => position(&t[2..]).map_or(by_page, |i| i + 1),
        Some(t) if t.starts_with("PB") => position(&t[2..]).map_or(by_page, |i| i.saturating_sub(req.page_size)),
        _ => by_page,
    };
    let end = (start + req.page_size).min(items.len());
    let slice: Vec<&T> = items[start..end].iter().collect();
    Page {
        first_sid: slice.first().map(|i| sid(i).to_string()),
        last_sid: slice.last().map(|i| sid(i).to_string()),
        has_next: end < items.len(),
        start,
        items: slice,
    }
}

fn encode(pairs: &[(String, String)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

fn page_pairs(page_size: usize, page: usize, token: Option<String>) -> Vec<(String, String)> {
    let mut v = vec![("PageSize".to_string(), page_size.to_string()), ("Page".to_string(), page.to_string())];
    if let Some(t) = token {
        v.push(("PageToken".to_string(), t));
    }
    v
}

/// Links of a page: (first, current, next, previous) query strings.
struct Links {
    first: Vec<(String, String)>,
    current: Vec<(String, String)>,
    next: Option<Vec<(String, String)>>,
    previous: Option<Vec<(String, String)>>,
}

fn links<T>(req: &PageRequest, page: &Page<'_, T>) -> Links {
    Links {
        first: page_pairs(req.page_size, 0, None),
        current: page_pairs(req.page_size, req.page, req.token.clone()),
        next: page
            .last_sid
            .as_ref()
            .filter(|_| page.has_next)
            .map(|s| page_pairs(req.page_size, req.page + 1, Some(format!("PA{s}")))),
        previous: page
            .first_sid
            .as_ref()
            .filter(|_| page.start > 0)
            .map(|s| page_pairs(req.page_size, req.page.saturating_sub(1), Some(format!("PB{s}")))),
    }
}

/// The 2010 API list envelope: filters first, then `PageSize`, `Page`, `PageToken`.
pub(crate) fn envelope_2010<T>(
    key: &str,
    path: &str,
    filters: &[(String, String)],
    req: &PageRequest,
    page: &Page<'_, T>,
    items: Vec<Value>,
) -> Value {
    let l = links(req, page);
    let uri = |p: &[(String, String)]| {
        let mut all = filters.to_vec();
        all.extend_from_slice(p);
        format!("{path}?{}", encode(&all))
    };
    let n = items.len();
    json!({
        key: items,
        "page": req.page,
        "page_size": req.page_size,
        "start": page.start,
        "end": if n == 0 { page.start } else { page.start + n - 1 },
        "first_page_uri": uri(&l.first),
        "next_page_uri": l.next.as_deref().map(uri),
        "previous_page_uri": l.previous.as_deref().map(uri),
        "uri": uri(&l.current),
    })
}

/// The v1/v2 list envelope: `{<key>: [...], "meta": {...}}` with absolute URLs, paging
/// parameters first, then filters.
pub(crate) fn envelope_meta<T>(
    key: &str,
    base_url: &str,
    path: &str,
    filters: &[(String, String)],
    req: &PageRequest,
    page: &Page<'_, T>,
    items: Vec<Value>,
) -> Value {
    let l = links(req, page);
    let url = |p: &[(String, String)]| {
        let mut all = p.to_vec();
        all.extend_from_slice(filters);
        format!("{base_url}{path}?{}", encode(&all))
    };
    json!({
        key: items,
        "meta": {
            "page": req.page,
            "page_size": req.page_size,
            "first_page_url": url(&l.first),
            "previous_page_url": l.previous.as_deref().map(url),
            "url": url(&l.current),
            "next_page_url": l.next.as_deref().map(url),
            "key": key,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(page: usize, size: usize, token: Option<&str>) -> PageRequest {
        PageRequest { page, page_size: size, token: token.map(str::to_string) }
    }

    #[test]
    fn walks_pages_with_tokens() {
        let items: Vec<String> = (0..5).map(|i| format!("PN{i}")).collect();
        let p0 = paginate(&items, |s| s, &req(0, 2, None));
        assert_eq!(p0.items.len(), 2);
        assert!(p0.has_next);
        let tok = format!("PA{}", p0.last_sid.unwrap());
        let p1 = paginate(&items, |s| s, &req(1, 2, Some(&tok)));
        assert_eq!(p1.start, 2);
        let back = format!("PB{}", p1.first_sid.unwrap());
        let p0b = paginate(&items, |s| s, &req(0, 2, Some(&back)));
        assert_eq!(p0b.start, 0);
        let p2 = paginate(&items, |s| s, &req(2, 2, None));
        assert_eq!(p2.items.len(), 1);
        assert!(!p2.has_next);
    }

    #[test]
    fn envelope_2010_shape() {
        let items: Vec<String> = vec![];
        let r = req(0, 50, None);
        let p = paginate(&items, |s| s, &r);
        let filters = vec![("PhoneNumber".to_string(), "+1555".to_string())];
        let v = envelope_2010("incoming_phone_numbers", "/x.json", &filters, &r, &p, vec![]);
        assert_eq!(v["first_page_uri"], "/x.json?PhoneNumber=%2B1555&PageSize=50&Page=0");
        assert_eq!(v["next_page_uri"], Value::Null);
        assert_eq!(v["end"], 0);
    }
}
