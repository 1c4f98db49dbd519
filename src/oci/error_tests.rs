use super::*;

fn err(kind: RegistryErrorKind) -> RegistryError {
    RegistryError::new("reg.example:5000", "resolve app:v1", kind)
}

fn no_debug_forms(s: &str) {
    for bad in ["Some(", "None", "\\\"", "{ ", "Duration"] {
        assert!(!s.contains(bad), "debug form {bad} in {s}");
    }
}

#[test]
fn plain_http_names_the_insecure_setting_of_the_host() {
    let e = err(RegistryErrorKind::Connect(ConnectFailure::PlainHttp));
    assert_eq!(
        e.to_string(),
        "registry reg.example:5000: resolve app:v1: TLS handshake failed: the answer is not TLS: the registry speaks plain HTTP; if that is intended set registries.hosts.\"reg.example:5000\".insecure: true"
    );
    assert_eq!(e.category(), ErrorCategory::Operational);
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(e.label(), "tls");
}

#[test]
fn unknown_ca_names_the_ca_file_setting() {
    let e = err(RegistryErrorKind::Connect(ConnectFailure::UnknownCa {
        ca_configured: false,
    }));
    let s = e.to_string();
    assert!(
        s.ends_with("TLS certificate not trusted: unknown issuer: the registry's certificate is not issued by a publicly trusted CA; if it uses a private CA set registries.hosts.\"reg.example:5000\".caFile to that CA's PEM file"),
        "{s}"
    );
    let e = err(RegistryErrorKind::Connect(ConnectFailure::UnknownCa {
        ca_configured: true,
    }));
    assert!(
        e.to_string()
            .contains("the CA in registries.hosts.\"reg.example:5000\".caFile did not issue"),
        "{e}"
    );
    assert!(e.is_operational());
}

#[test]
fn docker_hub_is_configured_as_docker_io() {
    let e = RegistryError::new(
        "registry-1.docker.io",
        "resolve library/nginx:1",
        RegistryErrorKind::Connect(ConnectFailure::PlainHttp),
    );
    assert!(
        e.to_string()
            .contains("registries.hosts.\"docker.io\".insecure: true"),
        "{e}"
    );
}

#[test]
fn refused_dns_and_timeouts_are_transient_and_operational_with_a_hint() {
    let cases = [
        (
            RegistryErrorKind::Connect(ConnectFailure::Refused),
            "connection refused: nothing listens on reg.example:5000; check that the registry is running and that the image names the right host and port",
        ),
        (
            RegistryErrorKind::Connect(ConnectFailure::Dns(
                "failed to lookup address information: Name or service not known".into(),
            )),
            "the host name does not resolve: failed to lookup address information: Name or service not known; check the registry name in the image reference (and this machine's DNS)",
        ),
        (
            RegistryErrorKind::Timeout(TimeoutKind::Request(Duration::from_secs(5))),
            "no answer within 5 s; if the registry is slow but up, raise registries.hosts.\"reg.example:5000\".timeout",
        ),
        (
            RegistryErrorKind::Timeout(TimeoutKind::Deadline(Duration::from_millis(1500))),
            "discovery did not finish within 1500 ms; if the registry is slow but up, raise registries.limits.maxImageMillis",
        ),
    ];
    for (kind, tail) in cases {
        let e = err(kind);
        let s = e.to_string();
        assert_eq!(
            s,
            format!("registry reg.example:5000: resolve app:v1: {tail}")
        );
        assert_eq!(e.class(), ErrorClass::Transient, "{s}");
        assert_eq!(e.category(), ErrorCategory::Operational, "{s}");
        no_debug_forms(&s);
    }
}

#[test]
fn unauthorized_names_the_credentials_used_and_the_field_that_sets_them() {
    let basic = err(RegistryErrorKind::Unauthorized {
        status: 401,
        credentials: CredentialsUsed {
            set: "team-a".into(),
            credential: Some(CredentialKind::Basic {
                username: "bot".into(),
            }),
        },
    });
    assert_eq!(
        basic.to_string(),
        "registry reg.example:5000: resolve app:v1: access denied (401) with basic credentials of user \"bot\" from credentials set \"team-a\"; check the auths.\"reg.example:5000\" entry in the Docker config file of credentials[] \"team-a\" (its file field)"
    );
    let forbidden = err(RegistryErrorKind::Unauthorized {
        status: 403,
        credentials: CredentialsUsed {
            set: "team-a".into(),
            credential: Some(CredentialKind::IdentityToken),
        },
    });
    assert!(
        forbidden.to_string().contains(
            "forbidden (403) with an identity token from credentials set \"team-a\"; grant these credentials pull access"
        ),
        "{forbidden}"
    );
    let anonymous = err(RegistryErrorKind::Unauthorized {
        status: 401,
        credentials: CredentialsUsed::default(),
    });
    assert_eq!(
        anonymous.to_string(),
        "registry reg.example:5000: resolve app:v1: access denied (401) anonymously (no credentials set applies); give provgate credentials for reg.example:5000 with a credentials[] entry (name, file: a Docker config.json with an auths.\"reg.example:5000\" entry)"
    );
    let missing = err(RegistryErrorKind::Unauthorized {
        status: 401,
        credentials: CredentialsUsed {
            set: "team-b".into(),
            credential: None,
        },
    });
    assert!(
        missing.to_string().contains(
            "anonymously (credentials set \"team-b\" has no entry for this registry); add an auths.\"reg.example:5000\" entry to the Docker config file of credentials[] \"team-b\""
        ),
        "{missing}"
    );
    for e in [basic, forbidden, anonymous, missing] {
        assert_eq!(e.category(), ErrorCategory::Operational);
        assert_eq!(e.class(), ErrorClass::Permanent);
        no_debug_forms(&e.to_string());
    }
}

#[test]
fn rate_limits_say_when_to_retry_if_the_registry_said() {
    let with = err(RegistryErrorKind::RateLimited {
        retry_after: Some(Duration::from_secs(30)),
    });
    assert!(
        with.to_string()
            .contains("rate limited (429): the registry asks to retry after 30 s;"),
        "{with}"
    );
    let without = err(RegistryErrorKind::RateLimited { retry_after: None });
    assert!(
        without
            .to_string()
            .contains("rate limited (429), no Retry-After given;"),
        "{without}"
    );
    for e in [with, without] {
        assert_eq!(e.class(), ErrorClass::Transient);
        assert!(e.is_operational());
        no_debug_forms(&e.to_string());
    }
}

#[test]
fn evidence_problems_are_not_operational() {
    for kind in [
        RegistryErrorKind::NotFound,
        RegistryErrorKind::InvalidManifest("expected an object".into()),
        RegistryErrorKind::TooLarge {
            what: "manifest",
            limit: 10,
            size: 11,
        },
        RegistryErrorKind::TooMany {
            what: "Sigstore referrers",
            limit: 2,
        },
        RegistryErrorKind::BudgetExceeded { limit: 1 },
        RegistryErrorKind::DigestMismatch {
            expected: "sha256:aa".into(),
            actual: "sha256:bb".into(),
        },
    ] {
        let e = err(kind);
        assert_eq!(e.category(), ErrorCategory::Evidence, "{e}");
        assert!(!e.is_operational());
        assert_eq!(e.class(), ErrorClass::Permanent);
    }
    for kind in [
        RegistryErrorKind::Server(503),
        RegistryErrorKind::Status(418),
        RegistryErrorKind::Token("no token in response".into()),
        RegistryErrorKind::BadRedirect("to a ftp: URL".into()),
        RegistryErrorKind::Connect(ConnectFailure::Other("reset".into())),
    ] {
        assert_eq!(err(kind).category(), ErrorCategory::Operational);
    }
}

#[test]
fn backing_off_says_until_when_after_what_and_that_nothing_was_sent() {
    let until = jiff::Timestamp::from_millisecond(1_767_225_602_500).unwrap();
    let e = err(RegistryErrorKind::BackingOff {
        until,
        cause: "429 Too Many Requests (Retry-After: 2)".into(),
        probing: false,
    });
    assert_eq!(
        e.to_string(),
        "registry reg.example:5000 is backing off until 2026-01-01T00:00:02.500Z after 429 Too Many Requests (Retry-After: 2): resolve app:v1 was not sent; the registry is asked again after the back-off, and until then registries.hosts.\"reg.example:5000\".failure decides"
    );
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(e.category(), ErrorCategory::Operational);
    assert_eq!(e.label(), "backing-off");
    assert!(!e.is_over_limit());
    no_debug_forms(&e.to_string());
    let probing = err(RegistryErrorKind::BackingOff {
        until,
        cause: "503 Service Unavailable (no Retry-After)".into(),
        probing: true,
    });
    assert!(
        probing.to_string().starts_with(
            "registry reg.example:5000 is backing off after 503 Service Unavailable (no Retry-After): a probe request is in flight: resolve app:v1 was not sent;"
        ),
        "{probing}"
    );
    no_debug_forms(&probing.to_string());
}

#[test]
fn answers_over_a_limit_are_permanent_but_marked_for_a_short_memory() {
    for kind in [
        RegistryErrorKind::TooLarge {
            what: "manifest",
            limit: 10,
            size: 11,
        },
        RegistryErrorKind::TooMany {
            what: "referrers pages",
            limit: 8,
        },
        RegistryErrorKind::BudgetExceeded { limit: 1 },
    ] {
        let e = err(kind);
        assert!(e.is_over_limit(), "{e}");
        assert_eq!(e.class(), ErrorClass::Permanent, "never degrades: {e}");
    }
    for kind in [
        RegistryErrorKind::NotFound,
        RegistryErrorKind::InvalidManifest("x".into()),
        RegistryErrorKind::Server(503),
    ] {
        assert!(!err(kind).is_over_limit());
    }
}

#[test]
fn limits_name_their_config_field() {
    let e = err(RegistryErrorKind::TooLarge {
        what: "blob",
        limit: 10,
        size: 11,
    });
    assert!(
        e.to_string().ends_with(
            "blob of 11 bytes exceeds the limit of 10 bytes (registries.limits.maxBlobBytes)"
        ),
        "{e}"
    );
    let e = err(RegistryErrorKind::TooMany {
        what: "referrers pages",
        limit: 8,
    });
    assert!(
        e.to_string()
            .ends_with("more referrers pages than the limit of 8 (registries.limits.maxPages)"),
        "{e}"
    );
}
