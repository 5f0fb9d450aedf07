//! Counting the operator's own Kubernetes API requests: a tower layer in the client's stack that
//! labels each request with its verb (`get`, `list`, `watch`, `create`, `patch`, …), resource
//! (`whatsappchannels/status`, `events`, …) and answer, so the cost per channel can be read from
//! `/metrics` (and `make bench` reads it there).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// A Kubernetes API request's verb, resource and answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KubeRequestLabels {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: String,
    /// The resource, with its subresource (`whatsappchannels/status`); `other` for non-resource paths.
    pub resource: String,
    /// The HTTP status, or `none` when no answer came.
    pub code: String,
}

/// The layer: counts into `family`.
#[derive(Clone, Debug)]
pub struct CountKubeRequests {
    family: Family<KubeRequestLabels, Counter>,
}

impl CountKubeRequests {
    /// Counts into `family`.
    pub fn new(family: Family<KubeRequestLabels, Counter>) -> Self {
        Self { family }
    }
}

impl<S> tower_layer::Layer<S> for CountKubeRequests {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Counted { inner, family: self.family.clone() }
    }
}

/// The counting service (see [`CountKubeRequests`]).
#[derive(Clone, Debug)]
pub struct Counted<S> {
    inner: S,
    family: Family<KubeRequestLabels, Counter>,
}

impl<S, B, R> tower_service::Service<Request<B>> for Counted<S>
where
    S: tower_service::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (verb, resource) = classify(req.method(), req.uri().path(), req.uri().query());
        let family = self.family.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            let code = match &result {
                Ok(r) => r.status().as_u16().to_string(),
                Err(_) => "none".to_owned(),
            };
            family.get_or_create(&KubeRequestLabels { verb: verb.to_owned(), resource, code }).inc();
            result
        })
    }
}

/// The verb and resource of a request to the Kubernetes API, as the API server's audit log
/// names them.
pub fn classify(method: &Method, path: &str, query: Option<&str>) -> (&'static str, String) {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // /api/v1/... or /apis/{group}/{version}/...
    let rest = match segs.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return (verb_of(method, false, query), "other".to_owned()),
    };
    let rest = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, named) = match rest {
        [] => return (verb_of(method, false, query), "other".to_owned()),
        [resource] => ((*resource).to_owned(), false),
        [resource, _name] => ((*resource).to_owned(), true),
        [resource, _name, sub, ..] => (format!("{resource}/{sub}"), true),
    };
    (verb_of(method, named, query), resource)
}

fn verb_of(method: &Method, named: bool, query: Option<&str>) -> &'static str {
    let watch = query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    match *method {
        Method::GET if watch => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_and_resources_follow_the_audit_log() {
        let cases = [
            (
                Method::GET,
                "/apis/whatsapp-operator.io/v1alpha1/whatsappchannels",
                Some("watch=true&timeoutSeconds=290"),
                "watch",
                "whatsappchannels",
            ),
            (
                Method::GET,
                "/apis/whatsapp-operator.io/v1alpha1/whatsappchannels",
                Some("limit=500"),
                "list",
                "whatsappchannels",
            ),
            (
                Method::PATCH,
                "/apis/whatsapp-operator.io/v1alpha1/namespaces/a/whatsappchannels/c/status",
                None,
                "patch",
                "whatsappchannels/status",
            ),
            (Method::POST, "/apis/events.k8s.io/v1/namespaces/a/events", None, "create", "events"),
            (Method::GET, "/api/v1/namespaces/a/secrets/s", None, "get", "secrets"),
            (Method::GET, "/api/v1/namespaces", None, "list", "namespaces"),
            (Method::GET, "/api/v1/namespaces/kube-system", None, "get", "namespaces"),
            (
                Method::DELETE,
                "/apis/whatsapp-operator.io/v1alpha1/whatsappnumberbindings/b",
                None,
                "delete",
                "whatsappnumberbindings",
            ),
            (Method::PUT, "/apis/coordination.k8s.io/v1/namespaces/x/leases/l", None, "update", "leases"),
            (Method::GET, "/version", None, "list", "other"),
        ];
        for (m, path, q, verb, resource) in cases {
            assert_eq!(classify(&m, path, q), (verb, resource.to_owned()), "{m} {path}");
        }
    }
}
