//! Time helpers over the API's `metav1.Time`.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Now, as an API timestamp.
pub fn now() -> Time {
    Time(Timestamp::now())
}

/// How long ago `t` was (zero if it is in the future).
pub fn age(t: &Time) -> Duration {
    Timestamp::now().duration_since(t.0).try_into().unwrap_or_default()
}

/// A chrono time as an API timestamp (now, if it is out of range).
pub fn from_chrono(t: &chrono::DateTime<chrono::Utc>) -> Time {
    Time(Timestamp::from_second(t.timestamp()).unwrap_or_else(|_| Timestamp::now()))
}

/// `t` as a chrono time (the Twilio client's type).
pub fn to_chrono(t: &Time) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().try_into().unwrap_or(0))
}

/// How long after `earlier` the time `later` is (zero if it is not later).
pub fn between(earlier: &Time, later: &Time) -> Duration {
    later.0.duration_since(earlier.0).try_into().unwrap_or_default()
}

/// `t` moved back by `d` (`t` itself if that is out of range).
pub fn minus(t: &Time, d: Duration) -> Time {
    let span = k8s_openapi::jiff::SignedDuration::try_from(d).unwrap_or_default();
    Time(t.0.checked_sub(span).unwrap_or(t.0))
}
