//! The operator under test: its release binary as a child process, its `/metrics` (the
//! Kubernetes requests it made, its reconciles) and its resource use from `/proc`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Result;

/// How the operator is started.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The release binary.
    pub binary: PathBuf,
    /// The simulator's base URL (both Twilio API hosts).
    pub sim_url: String,
    /// `--concurrency`.
    pub concurrency: u16,
    /// `--verify-interval`.
    pub verify_interval: Duration,
    /// Where its log goes.
    pub log: PathBuf,
}

/// A running operator.
pub struct Operator {
    child: Child,
    metrics_addr: String,
}

/// What `/proc` says about the process.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStats {
    /// Peak resident set (VmHWM) since start or the last [`Operator::reset_peak`], bytes.
    pub peak_rss: u64,
    /// CPU time (user + system), seconds.
    pub cpu_secs: f64,
}

/// The counters the bench reads from `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    /// Kubernetes requests by `verb resource`.
    pub kube: BTreeMap<String, u64>,
    /// Reconcile passes (every result).
    pub reconciles: u64,
}

impl Scrape {
    /// The counts since `earlier`.
    pub fn since(&self, earlier: &Scrape) -> Scrape {
        let kube = self
            .kube
            .iter()
            .map(|(k, v)| (k.clone(), v.saturating_sub(earlier.kube.get(k).copied().unwrap_or(0))))
            .filter(|(_, v)| *v > 0)
            .collect();
        Scrape { kube, reconciles: self.reconciles.saturating_sub(earlier.reconciles) }
    }
}

/// Whether a `verb resource` key is a write.
pub fn is_write(key: &str) -> bool {
    matches!(key.split(' ').next(), Some("create" | "update" | "patch" | "delete" | "deletecollection"))
}

impl Operator {
    /// Starts the operator and waits until it serves `/healthz`.
    pub async fn start(launch: &Launch) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let metrics_addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(&launch.log)?;
        let child = Command::new(&launch.binary)
            .arg("run")
            .args(["--twilio-api-url", &launch.sim_url, "--twilio-messaging-url", &launch.sim_url])
            .args(["--concurrency", &launch.concurrency.to_string()])
            .args(["--verify-interval", &humantime::format_duration(launch.verify_interval).to_string()])
            // The Debugger alerts (ReceiverHealthy): one listing per account and verify interval.
            .args(["--alerts-interval", &humantime::format_duration(launch.verify_interval).to_string()])
            .args(["--metrics-addr", &metrics_addr])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let op = Self { child, metrics_addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(&op.metrics_addr, "/healthz").await.is_err() {
            if Instant::now() > deadline {
                return Err("the operator did not serve /healthz within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(op)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads `/metrics`.
    pub async fn scrape(&self) -> Result<Scrape> {
        let text = get(&self.metrics_addr, "/metrics").await?;
        Ok(parse_metrics(&text))
    }

    /// Peak RSS and CPU time so far.
    pub fn stats(&self) -> Result<ProcStats> {
        proc_stats(self.pid())
    }

    /// Starts a new peak-RSS window (`/proc/PID/clear_refs`).
    pub fn reset_peak(&self) -> Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5")?;
        Ok(())
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 30 s).
    pub fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    eprintln!("bench: the operator exited with {status}");
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                self.child.kill()?;
                self.child.wait()?;
                return Err("the operator did not stop within 30 s of SIGTERM".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Peak RSS and CPU seconds of process `pid`.
pub fn proc_stats(pid: u32) -> Result<ProcStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmHWM in /proc/PID/status")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(')').map(|(_, r)| r).ok_or("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let cpu_ticks = ticks(11) + ticks(12);
    Ok(ProcStats { peak_rss: peak_kib * 1024, cpu_secs: cpu_ticks as f64 / clock_ticks() })
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// One plain HTTP/1.0 GET on loopback; the body.
async fn get(addr: &str, path: &str) -> Result<String> {
    let mut stream = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr)).await??;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await??;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("malformed HTTP answer")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!("GET {path}: {}", head.lines().next().unwrap_or("")).into());
    }
    Ok(body.to_owned())
}

fn parse_metrics(text: &str) -> Scrape {
    let mut s = Scrape::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name_labels, value)) = line.rsplit_once(' ') else { continue };
        let value: u64 = value.parse::<f64>().map(|v| v as u64).unwrap_or(0);
        let (name, labels) = name_labels.split_once('{').unwrap_or((name_labels, ""));
        let label = |k: &str| {
            labels.split("\",").find_map(|kv| {
                let (key, v) = kv.split_once("=\"")?;
                (key.trim_start_matches(',') == k).then(|| v.trim_end_matches("\"}").trim_end_matches('"').to_owned())
            })
        };
        match name {
            "whatsapp_operator_kubernetes_requests_total" => {
                let key = format!("{} {}", label("verb").unwrap_or_default(), label("resource").unwrap_or_default());
                *s.kube.entry(key).or_insert(0) += value;
            }
            "whatsapp_operator_reconciles_total" => s.reconciles += value,
            _ => {}
        }
    }
    s
}

/// The release binary next to this one (`target/release/whatsapp-operator`).
pub fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target/release"))
        .join("whatsapp-operator")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_gives_requests_by_verb_and_resource() {
        let text = "# HELP x\nwhatsapp_operator_kubernetes_requests_total{verb=\"patch\",resource=\"whatsappchannels/status\",code=\"200\"} 3\n\
            whatsapp_operator_kubernetes_requests_total{verb=\"patch\",resource=\"whatsappchannels/status\",code=\"409\"} 1\n\
            whatsapp_operator_reconciles_total{result=\"settled\",error=\"\"} 7\n";
        let s = parse_metrics(text);
        assert_eq!(s.kube.get("patch whatsappchannels/status"), Some(&4));
        assert_eq!(s.reconciles, 7);
        assert!(is_write("patch whatsappchannels/status"));
        assert!(!is_write("watch secrets"));
    }
}
