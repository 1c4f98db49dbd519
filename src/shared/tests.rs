use super::*;

fn spec(yaml: &str) -> SharedSpec {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn compile(yaml: &str) -> Result<SharedSettings, SharedConfigError> {
    SharedSettings::compile(
        &spec(yaml),
        |p| p.to_owned(),
        Duration::from_secs(3600),
        Duration::from_secs(30),
    )
}

#[test]
fn defaults_follow_the_local_caches() {
    let s = compile("url: redis://127.0.0.1:6379").unwrap();
    assert_eq!(s.ttl, Duration::from_secs(3600));
    assert_eq!(s.negative_ttl, Duration::from_secs(30));
    assert_eq!(s.timeout, Duration::from_millis(50));
    assert_eq!(s.key_prefix, "provgate:");
    assert!(!format!("{s:?}").contains("password"));
}

#[test]
fn credentials_never_sit_in_the_url() {
    let e = compile("url: redis://:secret@127.0.0.1:6379")
        .unwrap_err()
        .to_string();
    assert!(e.contains("auth.passwordFile"), "{e}");
    let e = compile("url: rediss://127.0.0.1:6379/#insecure")
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot be turned off"), "{e}");
    let e = compile("url: http://127.0.0.1:6379")
        .unwrap_err()
        .to_string();
    assert!(e.contains("rediss://"), "{e}");
}

#[test]
fn auth_and_tls_settings_are_checked() {
    let e =
        compile("url: redis://127.0.0.1:6379\nauth: {passwordEnv: PROVGATE_TEST_SURELY_UNSET_VAR}")
            .unwrap_err()
            .to_string();
    assert!(e.contains("PROVGATE_TEST_SURELY_UNSET_VAR"), "{e}");
    let e = compile("url: redis://127.0.0.1:6379\nauth: {username: u}")
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs a password"), "{e}");
    let e = compile("url: redis://127.0.0.1:6379\ntls: {caFile: /nonexistent/ca.crt}")
        .unwrap_err()
        .to_string();
    assert!(e.contains("rediss://"), "{e}");
    let e = compile("url: rediss://127.0.0.1:6379\ntls: {caFile: /nonexistent/ca.crt}")
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot read"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let s = compile(&format!(
        "url: redis://127.0.0.1:6379\nauth: {{username: app, passwordFile: {}}}",
        pw.display()
    ))
    .unwrap();
    assert!(!format!("{s:?}").contains("s3cret"));
}

#[test]
fn the_wait_never_takes_more_than_half_the_time_left() {
    let s = compile("url: redis://127.0.0.1:6379\nlockWait: 3s").unwrap();
    let t = SharedTier::new(s, Arc::new(Metrics::new()));
    let now = Instant::now();
    assert_eq!(t.wait_budget(now, None), Duration::from_secs(3));
    assert_eq!(
        t.wait_budget(now, Some(now + Duration::from_secs(2))),
        Duration::from_secs(1)
    );
    assert_eq!(t.wait_budget(now, Some(now)), Duration::ZERO);
}

#[test]
fn keys_separate_scopes_and_cosign_searches() {
    let image = ImageRef::parse("registry.test/team/app:v1").unwrap();
    let d = Digest::sha256_of(b"x");
    let fp = Digest::sha256_of(b"settings");
    let a = SharedKey::new(&image, &d, &fp, "tenant-a", true);
    let b = SharedKey::new(&image, &d, &fp, "tenant-b", true);
    let c = SharedKey::new(&image, &d, &fp, "tenant-a", false);
    assert_ne!(a.entry("p:"), b.entry("p:"));
    assert_ne!(a.entry("p:"), c.entry("p:"));
    assert!(a.entry("p:").starts_with("p:ev1:c:"));
    assert!(
        a.entry("p:")
            .ends_with(&format!("registry.test/team/app@{d}"))
    );
    assert_ne!(a.entry("p:"), a.lock("p:"));
}
