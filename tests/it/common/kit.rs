//! The shared test kit: a real registry (distribution), a loopback
//! Fulcio/Rekor/TSA and real signers. One instance per test run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::kit_root;

/// A running kit instance.
pub struct Kit {
    /// The kit's state directory.
    pub dir: PathBuf,
    env: serde_json::Value,
}

/// The GitHub Actions identity used by most tests.
pub const GH_ID: &str = "https://github.com/acme/app/.github/workflows/build.yml@refs/heads/main";
/// The GitHub Actions OIDC issuer.
pub const GH_ISS: &str = "https://token.actions.githubusercontent.com";

impl Kit {
    /// A variable of `DIR/env.json`.
    pub fn var(&self, k: &str) -> String {
        self.env[k]
            .as_str()
            .unwrap_or_else(|| panic!("kit variable {k} missing"))
            .to_owned()
    }

    /// The plain-HTTP registry host:port.
    pub fn registry(&self) -> String {
        self.var("TESTKIT_REGISTRY")
    }

    /// The HTTPS registry host:port.
    pub fn registry_tls(&self) -> String {
        self.var("TESTKIT_REGISTRY_TLS")
    }

    /// The kit's trusted_root.json.
    pub fn trusted_root(&self) -> PathBuf {
        PathBuf::from(self.var("TESTKIT_TRUSTED_ROOT"))
    }

    /// The kit's trusted root as a string.
    pub fn trusted_root_json(&self) -> String {
        std::fs::read_to_string(self.trusted_root()).expect("read kit trusted root")
    }

    /// A path inside the kit directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Runs `bin/testkit ARGS` and returns its trimmed stdout; panics with
    /// its stderr on failure.
    pub fn tk(&self, args: &[&str]) -> String {
        let out = self.tk_output(args);
        assert!(
            out.status.success(),
            "testkit {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    /// Runs `bin/testkit ARGS` and returns the raw output.
    pub fn tk_output(&self, args: &[&str]) -> std::process::Output {
        Command::new(kit_root().join("bin/testkit"))
            .args(args)
            .env("TESTKIT_DIR", &self.dir)
            .output()
            .expect("run bin/testkit")
    }

    /// Pushes an image and returns its digest.
    pub fn push_image(&self, repo_tag: &str, extra: &[&str]) -> String {
        let mut args = vec!["push-image", repo_tag];
        args.extend_from_slice(extra);
        self.tk(&args)
    }

    /// Signs SLSA provenance for `image` (registry/repo@digest) into `out`.
    pub fn sign_provenance(&self, image: &str, out: &Path, extra: &[&str]) {
        let out_s = out.to_str().expect("utf-8 path");
        let mut args = vec![
            "sign-provenance",
            image,
            "--identity",
            GH_ID,
            "--issuer",
            GH_ISS,
            "--out",
            out_s,
        ];
        args.extend_from_slice(extra);
        self.tk(&args);
    }
}

/// The kit, started once per test process (with the HTTPS listener on
/// 127.0.0.2 so that `attach` works over TLS too).
pub fn kit() -> &'static Kit {
    static KIT: OnceLock<Kit> = OnceLock::new();
    KIT.get_or_init(|| {
        let out = Command::new(kit_root().join("up.sh"))
            .args([
                "--tls",
                "--tls-host",
                "127.0.0.2",
                "--owner-pid",
                &std::process::id().to_string(),
            ])
            .output()
            .expect("run ../shared/testkit/up.sh (install it with ../shared/testkit/install.sh)");
        assert!(
            out.status.success(),
            "up.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = PathBuf::from(String::from_utf8(out.stdout).expect("utf-8").trim());
        let env = serde_json::from_slice(&std::fs::read(dir.join("env.json")).expect("env.json"))
            .expect("env.json is JSON");
        Kit { dir, env }
    })
}

/// A fresh repository name for one test, so tests can share the kit.
pub fn repo_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
