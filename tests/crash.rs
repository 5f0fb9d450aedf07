//! Crash safety: two replicas of the real binary under leader election reconcile a fleet of 50
//! channels in three namespaces while the leader is killed with SIGKILL again and again — at
//! random moments, and at the deterministic points of the test hook (`WAO_TEST_HOOK`): after a
//! pass recorded its intent and before its Twilio write, and after the write before its result
//! is recorded. Afterwards every channel is Ready, each got exactly one confirmation message,
//! each number has exactly one binding (its channel's), and no webhook points anywhere but its
//! holder's receiver.
//!
//! `WAO_CRASH_KILLS` (default 24) sets the number of kills for a longer run.

mod common;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use rand::Rng;
use twilio_sim::{FaultAction, FaultRule};
use whatsapp_operator::test_hooks::{Point, ENV_VAR, PAUSED_PREFIX};

use common::control_plane::ControlPlane;
use common::end_state::{self as fleet, Fleet, Member, Writes};
use common::operator::*;
use common::within;

const LEASE: &str = "whatsapp-operator-crash";
const CHANNELS: usize = 50;
const NAMESPACES: usize = 3;

/// One replica of the binary; killed (SIGKILL) when dropped.
struct Replica {
    identity: String,
    child: Child,
    /// Lines announcing that the replica paused at its hook.
    paused: mpsc::Receiver<String>,
    hook: Option<(Point, u64)>,
}

impl Replica {
    fn start(cp: &ControlPlane, lease_ns: &str, sim: &StrictSim, identity: &str, hook: Option<(Point, u64)>) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_whatsapp-operator"));
        cmd.args(["run", "--instance", identity, "--metrics-addr", "127.0.0.1:0"])
            .args(["--leader-elect", "--leader-election-namespace", lease_ns, "--leader-election-id", LEASE])
            .args(["--lease-duration", "2s", "--renew-deadline", "1500ms", "--retry-period", "250ms"])
            .args(["--twilio-api-url", sim.base_url(), "--twilio-messaging-url", sim.base_url()])
            .args(["--backoff-base", "100ms", "--backoff-max", "1s"])
            .env("KUBECONFIG", cp.kubeconfig())
            .env("RUST_LOG", "error")
            .env_remove(ENV_VAR)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((point, n)) = hook {
            cmd.env(ENV_VAR, format!("{point}:{n}"));
        }
        let mut child = cmd.spawn().expect("start the operator binary");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, paused) = mpsc::channel();
        let who = identity.to_owned();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.starts_with(PAUSED_PREFIX) {
                    let _ = tx.send(line);
                } else {
                    eprintln!("[{who}] {line}");
                }
            }
        });
        Replica { identity: identity.to_owned(), child, paused, hook }
    }

    fn kill(mut self) {
        self.child.kill().expect("SIGKILL the replica");
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn holder(client: &kube::Client, ns: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    leases.get_opt(LEASE).await.ok().flatten().and_then(|l| l.spec).and_then(|s| s.holder_identity)
}

/// Waits until one of `live` holds the Lease; its index.
async fn leader_of(client: &kube::Client, ns: &str, live: &[Replica]) -> usize {
    within(Duration::from_secs(30), async {
        loop {
            if let Some(h) = holder(client, ns).await {
                if let Some(i) = live.iter().position(|r| r.identity == h) {
                    return i;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_leaders_leave_every_channel_ready_with_exactly_one_message_and_binding() {
    let started = Instant::now();
    let kills: usize = std::env::var("WAO_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(24);
    common::init_crypto();
    let cp = tokio::task::spawn_blocking(ControlPlane::start).await.expect("start a control plane");
    let admin = cp.client().await;
    let mut namespaces = Vec::new();
    for _ in 0..NAMESPACES {
        let env = common::setup_with(admin.clone(), "crash").await;
        create_secret(&env, "twilio", &[("authToken", FIXTURE_TOKEN)]).await;
        namespaces.push(env);
    }
    let lease_ns = namespaces[0].ns.clone();
    let sim = start_sim().await;
    let fleet = Fleet::seed(&sim, CHANNELS);
    // Slow Twilio writes: a kill often lands while one is in flight.
    sim.add_fault(FaultRule::new(FaultAction::Latency { ms: 150 }).method("POST")).expect("latency");
    let members: Vec<Member> = (0..CHANNELS)
        .map(|i| Member {
            ns: namespaces[i % NAMESPACES].ns.clone(),
            name: format!("ch-{i}"),
            number: fleet.numbers[i].clone(),
        })
        .collect();

    let mut rng = rand::rng();
    let mut next_id = 0;
    let mut spawn = |hook: Option<(Point, u64)>| {
        next_id += 1;
        Replica::start(&cp, &lease_ns, &sim, &format!("replica-{next_id}"), hook)
    };
    let mut live = vec![spawn(None), spawn(Some((Point::BeforeTwilioWrite, 1)))];
    let per_round = CHANNELS.div_ceil((kills * 2 / 3).max(1));
    let mut created = 0;
    let (mut random_kills, mut hooked) = (0usize, Vec::new());
    for round in 0..kills {
        let lead = leader_of(&admin, &lease_ns, &live).await;
        // New work for the new leader (until the fleet is complete).
        for m in members.iter().skip(created).take(per_round) {
            let env = namespaces.iter().find(|e| e.ns == m.ns).expect("namespace");
            create_channel(env, &m.name, fleet.spec(&m.ns, &m.name, &m.number)).await;
            created += 1;
        }
        let leader = live.remove(lead);
        // A hooked leader is killed where it paused; others (or a hook no pass reached) at a
        // random moment of their work.
        let paused = match leader.hook {
            Some(_) => {
                let rx = &leader.paused;
                tokio::task::block_in_place(|| rx.recv_timeout(Duration::from_secs(4))).ok()
            }
            None => None,
        };
        match paused {
            Some(line) => hooked.push(line),
            None => {
                tokio::time::sleep(Duration::from_millis(rng.random_range(20..700))).await;
                random_kills += 1;
            }
        }
        leader.kill();
        // Two replacements in three stop at a deterministic point when they lead in turn.
        let point = [Some(Point::BeforeTwilioWrite), Some(Point::AfterTwilioWrite), None][round % 3];
        live.push(spawn(point.map(|p| (p, rng.random_range(1..=3)))));
    }
    // The rest of the fleet, then two plain replicas finish the work.
    for m in members.iter().skip(created) {
        let env = namespaces.iter().find(|e| e.ns == m.ns).expect("namespace");
        create_channel(env, &m.name, fleet.spec(&m.ns, &m.name, &m.number)).await;
    }
    let last_kill = Instant::now();
    for r in live.drain(..) {
        r.kill();
    }
    live = vec![spawn(None), spawn(None)];
    fleet::wait_converged(&admin, &members, Duration::from_secs(90)).await;
    let converged_in = last_kill.elapsed();

    let before_twilio = hooked.iter().filter(|l| l.contains(Point::BeforeTwilioWrite.as_str())).count();
    let after_twilio = hooked.iter().filter(|l| l.contains(Point::AfterTwilioWrite.as_str())).count();
    let writes = Writes::of(&sim);
    eprintln!(
        "crash: {kills} kills ({random_kills} random, {before_twilio} before a Twilio write, {after_twilio} after one), \
         {} Twilio requests ({} writes), converged {converged_in:?} after the last kill, {:?} in all",
        sim.requests().len(),
        writes.all.len(),
        started.elapsed()
    );
    assert!(kills >= 20, "at least 20 kills (WAO_CRASH_KILLS={kills})");
    assert!(random_kills >= 4, "killed at a random moment at least four times ({random_kills})");
    assert!(before_twilio >= 2, "killed between intent and Twilio write at least twice: {hooked:#?}");
    assert!(after_twilio >= 2, "killed between a Twilio write and its record at least twice: {hooked:#?}");
    fleet::assert_exactly_once(&admin, &sim, &fleet, &members).await;
    drop(live);
    assert_conforming(&sim);
}
