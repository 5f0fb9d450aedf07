//! How the watches wait after an error: client-go's backoff (from 0.8 s, doubling to 30 s,
//! jittered, forgotten after two quiet minutes), except after `410 Gone`.
//!
//! kube's own `default_backoff()` counts every error alike. After an outage (an API server
//! restart, a network cut) the backoff has grown to tens of seconds by the time the server is
//! back; the first watch it answers then fails with `410 Gone` (the restarted server's watch
//! cache starts after the revision the watch resumes from), and that counts as one more
//! failure: the relist the 410 asks for waited up to another 30 s. A 410 is an answer, not a
//! failure: the server is up and says "list again". So it resets the backoff and the relist
//! waits only the first step. Errors without an answer keep growing the backoff as before.

use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, DefaultBackoff};

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

/// `stream` (the watcher of `what`), pausing after each error: by [`DefaultBackoff`], reset by
/// every event and by a `410 Gone`. The error itself is passed on at once.
pub fn with_backoff<S, T>(what: &'static str, stream: S) -> impl Stream<Item = Result<T, watcher::Error>> + Send
where
    S: Stream<Item = Result<T, watcher::Error>> + Send + 'static,
    T: Send,
{
    with_backoff_from(what, stream, DefaultBackoff::default())
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
        let backoff = DefaultBackoff::default();
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
        // Eight unanswered attempts grow the backoff to its 30 s ceiling (0.8 s doubling, jitter
        // adds up to one step). Then the server answers 410: the relist comes at the first
        // step's pace, and the next event after it at once.
        let mut items: Vec<Result<u8, watcher::Error>> = (0..8).map(|_| Err(refused())).collect();
        items.push(Err(watcher::Error::WatchError(status(410))));
        items.push(Ok(1));
        items.push(Ok(2));
        let at = arrivals(items).await;
        let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[6] >= Duration::from_secs(25), "the outage's backoff grew: {gaps:?}");
        assert!(gaps[8] <= Duration::from_millis(1600), "the relist after the 410 waited the first step: {gaps:?}");
        assert_eq!(gaps[9], Duration::ZERO, "events are not delayed: {gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn errors_without_an_answer_keep_growing_and_an_event_resets() {
        let items = vec![Err(refused()), Err(refused()), Err(refused()), Ok(1), Err(refused()), Ok(2)];
        let at = arrivals(items).await;
        let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[1] >= Duration::from_millis(1600), "the second pause doubles: {gaps:?}");
        assert!(gaps[2] >= Duration::from_millis(3200), "the third doubles again: {gaps:?}");
        assert!(gaps[4] <= Duration::from_millis(1600), "an event reset the backoff: {gaps:?}");
    }
}
