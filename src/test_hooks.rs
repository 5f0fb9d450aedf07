//! Test-only fault hooks: named points of a pass where a crash or fault test can stop the
//! operator deterministically (between "intent recorded" and "Twilio write", and just after the
//! write, before its result is recorded).
//!
//! Why this cannot be switched on by accident in production: the hooks exist only in builds
//! with `debug_assertions` (the dev and test profiles). In a release build — the image, the
//! chart, `cargo install` — [`Hooks`] is an empty type whose [`Hooks::at`] does nothing and
//! [`Hooks::from_env`] reads no environment at all, so no flag or variable can enable them.
//! In a debug build they are still off unless the deliberately named variable
//! [`ENV_VAR`] is set, and the binary logs a warning at startup when it is.
//!
//! `WAO_TEST_HOOK=<point>:<n>` pauses the `n`-th pass to reach `<point>` (1-based, counted per
//! process) forever, after printing `wao-test-hook: paused at <point> <namespace>/<name>` to
//! standard error — the crash test then kills the process with SIGKILL at that exact point.
//! In-process tests install a closure with [`Hooks::new`] instead.

use std::fmt;

/// The environment variable a debug build reads its hook from (`<point>:<n>`).
pub const ENV_VAR: &str = "WAO_TEST_HOOK";
/// What a paused binary prints to standard error, followed by the point and the channel.
pub const PAUSED_PREFIX: &str = "wao-test-hook: paused at";

/// A point in a pass where a hook runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Point {
    /// The intent is recorded in the status; the Twilio write (webhook or message) is next.
    BeforeTwilioWrite,
    /// The Twilio write answered; its result is not recorded yet.
    AfterTwilioWrite,
}

impl Point {
    /// The point's name in [`ENV_VAR`].
    pub fn as_str(self) -> &'static str {
        match self {
            Point::BeforeTwilioWrite => "before-twilio-write",
            Point::AfterTwilioWrite => "after-twilio-write",
        }
    }

    /// The point named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        [Point::BeforeTwilioWrite, Point::AfterTwilioWrite].into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(debug_assertions)]
type HookFn = dyn Fn(Point, String) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync;

/// The hooks of one operator process: none by default (and always none in release builds).
#[derive(Clone, Default)]
pub struct Hooks {
    #[cfg(debug_assertions)]
    hook: Option<std::sync::Arc<HookFn>>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_active() { "Hooks(active)" } else { "Hooks(none)" })
    }
}

impl Hooks {
    /// Hooks that run `hook(point, "namespace/name")` and await it at every point (debug builds;
    /// in release builds the hook is dropped unused).
    pub fn new<F, Fut>(hook: F) -> Self
    where
        F: Fn(Point, String) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        #[cfg(debug_assertions)]
        {
            let hook: std::sync::Arc<HookFn> = std::sync::Arc::new(move |p, key| Box::pin(hook(p, key)));
            Self { hook: Some(hook) }
        }
        #[cfg(not(debug_assertions))]
        {
            drop(hook);
            Self {}
        }
    }

    /// The hook [`ENV_VAR`] describes, if set (debug builds only; release builds read nothing).
    pub fn from_env() -> Result<Self, String> {
        #[cfg(debug_assertions)]
        {
            let Some(value) = std::env::var(ENV_VAR).ok().filter(|v| !v.is_empty()) else {
                return Ok(Self::default());
            };
            let (point, n) = parse_spec(&value)?;
            Ok(Self::pause_nth(point, n))
        }
        #[cfg(not(debug_assertions))]
        {
            Ok(Self {})
        }
    }

    /// Whether a hook is installed.
    pub fn is_active(&self) -> bool {
        #[cfg(debug_assertions)]
        {
            self.hook.is_some()
        }
        #[cfg(not(debug_assertions))]
        {
            false
        }
    }

    /// Runs the hook at `point` of the pass over `key` ("namespace/name").
    pub async fn at(&self, point: Point, key: &str) {
        #[cfg(debug_assertions)]
        if let Some(hook) = &self.hook {
            hook(point, key.to_owned()).await;
        }
        #[cfg(not(debug_assertions))]
        let _ = (point, key);
    }

    /// Pauses the `n`-th pass to reach `point` forever, announcing it on standard error.
    #[cfg(debug_assertions)]
    fn pause_nth(point: Point, n: u64) -> Self {
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        Self::new(move |p, key| {
            let hit = p == point && seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == n;
            async move {
                if hit {
                    eprintln!("{PAUSED_PREFIX} {p} {key}");
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

/// Parses `<point>:<n>` (n ≥ 1).
#[cfg_attr(not(debug_assertions), allow(dead_code))]
fn parse_spec(value: &str) -> Result<(Point, u64), String> {
    let bad = || format!("{ENV_VAR}={value:?}: expected <before-twilio-write|after-twilio-write>:<n>, n ≥ 1");
    let (point, n) = value.split_once(':').ok_or_else(bad)?;
    let point = Point::parse(point).ok_or_else(bad)?;
    let n: u64 = n.parse().ok().filter(|n| *n >= 1).ok_or_else(bad)?;
    Ok((point, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_strictly() {
        assert_eq!(parse_spec("before-twilio-write:3"), Ok((Point::BeforeTwilioWrite, 3)));
        assert_eq!(parse_spec("after-twilio-write:1"), Ok((Point::AfterTwilioWrite, 1)));
        for bad in ["before-twilio-write", "before-twilio-write:0", "elsewhere:1", "after-twilio-write:x"] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn no_hook_does_nothing() {
        let hooks = Hooks::default();
        assert!(!hooks.is_active());
        hooks.at(Point::BeforeTwilioWrite, "ns/ch").await;
    }

    #[cfg(debug_assertions)]
    #[tokio::test]
    async fn the_nth_pass_at_the_point_pauses() {
        let hooks = Hooks::pause_nth(Point::AfterTwilioWrite, 2);
        let quick = std::time::Duration::from_millis(50);
        hooks.at(Point::BeforeTwilioWrite, "ns/a").await;
        assert!(tokio::time::timeout(quick, hooks.at(Point::AfterTwilioWrite, "ns/a")).await.is_ok());
        assert!(tokio::time::timeout(quick, hooks.at(Point::AfterTwilioWrite, "ns/b")).await.is_err(), "2nd pauses");
        assert!(tokio::time::timeout(quick, hooks.at(Point::AfterTwilioWrite, "ns/c")).await.is_ok());
    }
}
