//! How the watches wait after an error: from 0.8 s, doubling up to [`MAX`] (10 s), each pause
//! drawn from the upper half of its step; reset by every event and by `410 Gone`.
//!
//! kube's own `default_backoff()` (client-go's numbers) grows to 30 s and then adds up to as
//! much again as jitter, and counts every error alike. After an outage (an API server restart,
//! a network cut) a watch could so wait up to a minute after the server was back; and the first
//! watch the server answers then fails with `410 Gone` (the restarted server's watch cache
//! starts after the revision the watch resumes from), which grew the backoff once more before
//! the relist it asks for. Here a 410 counts as an answer, not a failure: the server is up and
//! says "list again", so the relist waits only the first step. And the pause never exceeds 10 s:
//! three watches per replica reconnecting every 10 s are no load for an API server coming back,
//! and the operator follows the cluster again within seconds of its return.

use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::utils::Backoff;
use kube::runtime::watcher;
use rand::Rng;

/// The first pause after an error.
pub const FIRST: Duration = Duration::from_millis(800);
/// The longest pause.
pub const MAX: Duration = Duration::from_secs(10);

/// Exponential backoff: the n-th pause lies in `[d/2, d]`, `d = min(MAX, FIRST·2ⁿ⁻¹)`.
#[derive(Debug, Default)]
pub struct WatchBackoff {
    failures: u32,
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let step = FIRST.saturating_mul(1 << self.failures.min(16)).min(MAX);
        self.failures = self.failures.saturating_add(1);
        let half = step / 2;
        Some(half + rand::rng().random_range(Duration::ZERO..=half))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Whether a watch error is the API server's `410 Gone` (a resource version or a list's
/// continue token that has expired): the watcher relists next.
pub fn is_gone(err: &watcher::Error) -> bool {
    let api_code = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 410);
    match err {
        watcher::Error::WatchError(status) => status.code == 410,
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            api_code(e)
        }
        _ => false,
    }
}

/// `stream` (the watcher of `what`), pausing after each error: by [`WatchBackoff`], reset by
/// every event and by a `410 Gone`. The error itself is passed on at once.
pub fn with_backoff<S, T>(what: &'static str, stream: S) -> impl Stream<Item = Result<T, watcher::Error>> + Send
where
    S: Stream<Item = Result<T, watcher::Error>> + Send + 'static,
    T: Send,
{
    with_backoff_from(what, stream, WatchBackoff::default())
}

fn with_backoff_from<S, T, B>(
    what: &'static str,
    stream: S,
    backoff: B,
) -> impl Stream<Item = Result<T, watcher::Error>> + Send
where
    S: Stream<Item = Result<T, watcher::Error>> + Send + 'static,
    T: Send,
    B: Backoff + 'static,
{
    let start = (stream.boxed(), backoff, None::<Duration>);
    futures::stream::unfold(start, move |(mut stream, mut backoff, pause)| async move {
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
        let item = stream.next().await?;
        let pause = match &item {
            Ok(_) => {
                backoff.reset();
                None
            }
            Err(e) if is_gone(e) => {
                backoff.reset();
                backoff.next()
            }
            Err(_) => backoff.next(),
        };
        if let (Err(error), Some(pause)) = (&item, pause) {
            tracing::debug!(watch = what, %error, ?pause, "watch failed; trying again after a pause");
        }
        Some((item, (stream, backoff, pause)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;
    use tokio::time::Instant;

    fn status(code: u16) -> Box<Status> {
        Box::new(Status::failure("test", "Test").with_code(code))
    }

    fn refused() -> watcher::Error {
        watcher::Error::WatchStartFailed(kube::Error::Api(status(503)))
    }

    /// The virtual time each item of `items` is yielded at, from the start.
    async fn arrivals(items: Vec<Result<u8, watcher::Error>>) -> Vec<Duration> {
        let t0 = Instant::now();
        let backoff = WatchBackoff::default();
        with_backoff_from("test", futures::stream::iter(items), backoff).map(|_| t0.elapsed()).collect().await
    }

    #[test]
    fn gone_is_a_410_in_any_of_the_watchers_error_kinds() {
        assert!(is_gone(&watcher::Error::WatchError(status(410))));
        assert!(is_gone(&watcher::Error::InitialListFailed(kube::Error::Api(status(410)))));
        assert!(is_gone(&watcher::Error::WatchStartFailed(kube::Error::Api(status(410)))));
        assert!(!is_gone(&watcher::Error::WatchError(status(500))));
        assert!(!is_gone(&refused()));
        assert!(!is_gone(&watcher::Error::NoResourceVersion));
    }

    #[tokio::test(start_paused = true)]
    async fn after_an_outage_a_410_is_followed_by_the_first_step_not_the_grown_backoff() {
        // Eight unanswered attempts grow the backoff to its 10 s ceiling (0.8 s doubling, each
        // pause in the upper half of its step). Then the server answers 410: the relist comes
        // at the first step's pace, and the next event after it at once.
        let mut items: Vec<Result<u8, watcher::Error>> = (0..8).map(|_| Err(refused())).collect();
        items.push(Err(watcher::Error::WatchError(status(410))));
        items.push(Ok(1));
        items.push(Ok(2));
        let at = arrivals(items).await;
        let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[6] >= MAX / 2, "the outage's backoff grew: {gaps:?}");
        assert!(gaps.iter().all(|g| *g <= MAX), "never more than {MAX:?}: {gaps:?}");
        assert!(gaps[8] <= FIRST, "the relist after the 410 waited the first step: {gaps:?}");
        assert_eq!(gaps[9], Duration::ZERO, "events are not delayed: {gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn errors_without_an_answer_keep_growing_and_an_event_resets() {
        let items = vec![Err(refused()), Err(refused()), Err(refused()), Ok(1), Err(refused()), Ok(2)];
        let at = arrivals(items).await;
        let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[0] >= FIRST / 2 && gaps[0] <= FIRST, "the first pause: {gaps:?}");
        assert!(gaps[1] >= FIRST, "the second pause doubles: {gaps:?}");
        assert!(gaps[2] >= FIRST * 2, "the third doubles again: {gaps:?}");
        assert!(gaps[4] <= FIRST, "an event reset the backoff: {gaps:?}");
    }
}
