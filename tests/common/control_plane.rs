//! A throw-away second control plane (another cluster) for tests that need a cluster of their
//! own: a second cluster sharing one Twilio account, or an operator watching all namespaces.

use std::process::{Command, Stdio};

use kube::Client;

/// A throw-away second control plane (another cluster); stopped when dropped.
pub struct ControlPlane {
    dir: String,
    kubeconfig: String,
    /// A `K8S_TESTENV_HOME` of its own, so the shared `last-run` record is left alone.
    home: std::path::PathBuf,
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
        let home = std::env::temp_dir().join(format!("wao-testenv-{}", super::random_suffix()));
        let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/start-control-plane.sh"))
            .env("K8S_TESTENV_BIN_DIR", testenv_bin_dir())
            .env("K8S_TESTENV_HOME", &home)
            .env("K8S_TESTENV_CONTROLLER_MANAGER", "0")
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
        Self { dir: var("K8S_TESTENV_DIR"), kubeconfig: var("KUBECONFIG"), home }
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

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/stop-control-plane.sh"))
            .arg(&self.dir)
            .env("K8S_TESTENV_HOME", &self.home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}
