//! A throw-away second control plane (another cluster) for tests that need a cluster of their
//! own: a second cluster sharing one Twilio account, an operator watching all namespaces, or a
//! fault test that stops, freezes or restarts the API server or compacts etcd (the shared
//! control plane is never disturbed).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::Client;

/// A throw-away second control plane (another cluster); stopped when dropped.
pub struct ControlPlane {
    dir: String,
    kubeconfig: String,
    /// A `K8S_TESTENV_HOME` of its own, so the shared `last-run` record is left alone.
    home: std::path::PathBuf,
    /// The kube-apiserver's command line (as the start script ran it), for restarts.
    apiserver_cmdline: Vec<String>,
    /// A kube-apiserver this test restarted (its child).
    apiserver_child: Option<Child>,
}

/// The installed control-plane binaries, resolved as `start-control-plane.sh` does.
fn testenv_bin_dir() -> String {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    var("K8S_TESTENV_BIN_DIR").unwrap_or_else(|| {
        let home = var("K8S_TESTENV_HOME").unwrap_or_else(|| {
            let cache = var("XDG_CACHE_HOME")
                .unwrap_or_else(|| format!("{}/.cache", std::env::var("HOME").unwrap_or_default()));
            format!("{cache}/k8s-testenv")
        });
        format!("{home}/bin")
    })
}

impl ControlPlane {
    /// Starts one (etcd + kube-apiserver on free ports); blocks until it is ready.
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// Starts one with extra kube-apiserver flags (word-split), e.g. `--watch-cache=false`.
    pub fn start_with(apiserver_args: &str) -> Self {
        let home = std::env::temp_dir().join(format!("wao-testenv-{}", super::random_suffix()));
        let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/start-control-plane.sh"))
            .env("K8S_TESTENV_BIN_DIR", testenv_bin_dir())
            .env("K8S_TESTENV_HOME", &home)
            .env("K8S_TESTENV_CONTROLLER_MANAGER", "0")
            .env("K8S_TESTENV_APISERVER_ARGS", apiserver_args)
            .env_remove("K8S_TESTENV_API_PORT")
            .env_remove("K8S_TESTENV_ETCD_PORT")
            .env_remove("K8S_TESTENV_ETCD_PEER_PORT")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("run hack/start-control-plane.sh");
        assert!(out.status.success(), "start-control-plane.sh failed: {:?}", out.status);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let var = |name: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .map(|v| v.trim().to_owned())
                .unwrap_or_else(|| panic!("no {name} in: {stdout}"))
        };
        let dir = var("K8S_TESTENV_DIR");
        let pid = read_pid(&dir, "apiserver");
        let apiserver_cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .expect("read the kube-apiserver's command line")
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        Self { dir, kubeconfig: var("KUBECONFIG"), home, apiserver_cmdline, apiserver_child: None }
    }

    /// A client through `addr` (a [`super::proxy::Proxy`]; default: the API server itself),
    /// counting its requests into `metrics` when given (as the binary does).
    pub async fn client_via(
        &self,
        addr: Option<std::net::SocketAddr>,
        metrics: Option<&whatsapp_operator::telemetry::Metrics>,
    ) -> Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read the kubeconfig");
        let mut cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("kube config");
        if let Some(addr) = addr {
            cfg.cluster_url = format!("https://{addr}").parse().expect("the proxy's URL");
        }
        let builder = kube::client::ClientBuilder::try_from(cfg).expect("kube client");
        match metrics {
            Some(m) => builder.with_layer(&m.kube_layer()).build(),
            None => builder.build(),
        }
    }

    /// The API server's address (`127.0.0.1:port`), from the kubeconfig.
    pub fn api_addr(&self) -> std::net::SocketAddr {
        let kc = std::fs::read_to_string(&self.kubeconfig).expect("read the kubeconfig");
        let server = kc
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: https://"))
            .unwrap_or_else(|| panic!("no server in {kc}"));
        server.trim().parse().expect("the API server's address")
    }

    /// etcd's client URL (`http://127.0.0.1:port`).
    pub fn etcd_url(&self) -> String {
        let env = std::fs::read_to_string(format!("{}/env", self.dir)).expect("read the control plane's env file");
        env.lines()
            .find_map(|l| l.strip_prefix("export K8S_TESTENV_ETCD_URL="))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no K8S_TESTENV_ETCD_URL in {env}"))
    }

    /// Stops the kube-apiserver (SIGTERM, then SIGKILL after 10 s), keeping etcd and its data.
    pub fn stop_apiserver(&mut self) {
        let pid = read_pid(&self.dir, "apiserver");
        signal(pid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive(pid) {
            signal(pid, "KILL");
        }
        if let Some(mut child) = self.apiserver_child.take() {
            let _ = child.wait();
        }
        while alive(pid) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the kube-apiserver again on the same port, etcd and certificates (with `extra`
    /// flags appended; a later flag wins), and waits until it answers `/readyz`.
    pub fn start_apiserver(&mut self, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(format!("{}/apiserver.log", self.dir))
            .expect("open the apiserver log");
        let child = Command::new(&self.apiserver_cmdline[0])
            .args(&self.apiserver_cmdline[1..])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start kube-apiserver");
        std::fs::write(format!("{}/apiserver.pid", self.dir), child.id().to_string()).expect("write the pid");
        self.apiserver_child = Some(child);
        self.wait_ready();
    }

    /// Stops and starts the kube-apiserver ([`Self::stop_apiserver`], [`Self::start_apiserver`]).
    pub fn restart_apiserver(&mut self, extra: &[&str]) {
        self.stop_apiserver();
        self.start_apiserver(extra);
    }

    /// Freezes the kube-apiserver (SIGSTOP): its connections stay open, no request is answered.
    pub fn freeze_apiserver(&self) {
        signal(read_pid(&self.dir, "apiserver"), "STOP");
    }

    /// Thaws a frozen kube-apiserver (SIGCONT).
    pub fn thaw_apiserver(&self) {
        signal(read_pid(&self.dir, "apiserver"), "CONT");
    }

    /// Waits (at most 60 s) until the API server answers `/readyz` with `ok`.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = super::kubectl()
                .args(["--kubeconfig", &self.kubeconfig, "--request-timeout=2s", "get", "--raw", "/readyz"])
                .stderr(Stdio::null())
                .output()
                .expect("run kubectl");
            if out.status.success() && out.stdout.starts_with(b"ok") {
                return;
            }
            assert!(Instant::now() < deadline, "the kube-apiserver did not become ready again");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// etcd's current revision (through its v3 HTTP gateway).
    pub async fn etcd_revision(&self) -> i64 {
        // Any key: the answer's header carries the store's revision.
        let body = serde_json::json!({"key": "Lw==", "limit": 1, "count_only": true});
        let answer = self.etcd_call("/v3/kv/range", body).await;
        answer["header"]["revision"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("no revision in {answer}"))
    }

    /// Compacts etcd's history up to `revision` (physically): a watch from an older
    /// resourceVersion is answered `410 Gone` once no watch cache covers it.
    pub async fn compact_etcd(&self, revision: i64) {
        let body = serde_json::json!({"revision": revision.to_string(), "physical": true});
        self.etcd_call("/v3/kv/compaction", body).await;
    }

    async fn etcd_call(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let url = format!("{}{path}", self.etcd_url());
        let answer = reqwest::Client::new()
            .post(&url)
            .json(&body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        assert!(status.is_success(), "POST {url}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {url}: {e}: {text}"))
    }

    /// The path of its admin kubeconfig.
    pub fn kubeconfig(&self) -> &std::path::Path {
        std::path::Path::new(&self.kubeconfig)
    }

    /// An admin client.
    pub async fn client(&self) -> Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read the kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("kube config");
        Client::try_from(cfg).expect("kube client")
    }
}

fn read_pid(dir: &str, name: &str) -> u32 {
    let text = std::fs::read_to_string(format!("{dir}/{name}.pid")).unwrap_or_else(|e| panic!("{name}.pid: {e}"));
    text.trim().parse().unwrap_or_else(|e| panic!("{name}.pid {text:?}: {e}"))
}

/// Whether `pid` runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Sends `SIG<sig>` to one process this control plane started.
fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // A frozen API server would not stop on SIGTERM.
        if let Ok(pid) = std::fs::read_to_string(format!("{}/apiserver.pid", self.dir)) {
            let _ = Command::new("kill").arg("-CONT").arg(pid.trim()).stderr(Stdio::null()).status();
        }
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/stop-control-plane.sh"))
            .arg(&self.dir)
            .env("K8S_TESTENV_HOME", &self.home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(mut child) = self.apiserver_child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.home);
    }
}
