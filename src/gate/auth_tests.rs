//! Unit tests of gate authentication: one test per rejection, each built
//! from the accepted token (or configuration) changed in one respect.
//!
//! The clock is a fixed `NOW`, passed as `now_unix`; keys are generated per
//! test run and the JWKS is built in memory (written to a temporary file for
//! `jwksFile`, handed over by the `fetched` closure for `jwksUrl`).

use std::cell::Cell;
use std::path::Path;
use std::sync::OnceLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::Digest as _;

use super::{AuthError, Authenticator, Caller, OidcSpec, TokenSpec};

const NOW: u64 = 1_700_000_000;
const ISS: &str = "https://token.actions.githubusercontent.com";
const JWKS_URL: &str = "https://token.actions.githubusercontent.com/.well-known/jwks";
const TOKEN: &str = "release-ci-s3cret-token";
const SUB: &str = "repo:acme/app:ref:refs/heads/main";

/// PKCS#8 private keys: the issuer's EC key, another EC key, an Ed25519 key.
struct Keys {
    ec: Vec<u8>,
    other_ec: Vec<u8>,
    ed: Vec<u8>,
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let rng = SystemRandom::new();
        let ec = || {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .unwrap()
                .as_ref()
                .to_vec()
        };
        Keys {
            ec: ec(),
            other_ec: ec(),
            ed: Ed25519KeyPair::generate_pkcs8(&rng)
                .unwrap()
                .as_ref()
                .to_vec(),
        }
    })
}

/// The issuer's EC public key, an uncompressed SEC1 point.
fn ec_point() -> Vec<u8> {
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &keys().ec).unwrap();
    pair.public_key().as_ref().to_vec()
}

/// The issuer's EC key as a JWK declaring `alg`.
fn ec_jwk(kid: &str, alg: &str) -> Value {
    let p = ec_point();
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": alg, "use": "sig",
        "x": B64URL.encode(&p[1..33]), "y": B64URL.encode(&p[33..])})
}

/// The issuer's keys: `k1` (EC P-256, ES256) and `ed1` (Ed25519).
fn issuer_keys() -> Vec<Value> {
    let ed = Ed25519KeyPair::from_pkcs8(&keys().ed).unwrap();
    let x = B64URL.encode(ed.public_key().as_ref());
    vec![
        ec_jwk("k1", "ES256"),
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "alg": "EdDSA", "x": x}),
    ]
}

fn jwk_set(keys: Vec<Value>) -> JwkSet {
    serde_json::from_value(json!({ "keys": keys })).unwrap()
}

fn token_spec(name: &str, token: &str) -> TokenSpec {
    TokenSpec {
        name: name.into(),
        sha256: hex::encode(sha2::Sha256::digest(token.as_bytes())),
        contracts: vec!["needs-provenance".into()],
    }
}

/// The trusted issuer, its keys from `source` (`jwksFile: …` or `jwksUrl: …`).
fn oidc_spec(source: &str) -> OidcSpec {
    serde_yaml_ng::from_str(&format!(
        "{{name: github, issuer: '{ISS}', audiences: [provgate], {source}, \
         claims: {{repository: {{regex: 'acme/.+'}}}}, contracts: [ci-release]}}"
    ))
    .unwrap()
}

fn url_spec() -> OidcSpec {
    oidc_spec(&format!("jwksUrl: '{JWKS_URL}'"))
}

/// The static token and the issuer with `jwks` in a `jwksFile`.
fn file_auth(jwks: Vec<Value>) -> Authenticator {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("jwks.json"),
        json!({ "keys": jwks }).to_string(),
    )
    .unwrap();
    let oidc = oidc_spec("jwksFile: jwks.json");
    Authenticator::compile(&[token_spec("release-ci", TOKEN)], &[oidc], dir.path()).unwrap()
}

fn auth() -> Authenticator {
    file_auth(issuer_keys())
}

/// The same issuer with its keys behind `jwksUrl`.
fn url_auth() -> Authenticator {
    Authenticator::compile(&[], &[url_spec()], Path::new("/nonexistent")).unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn no_fetch(_: &str) -> Option<JwkSet> {
    None
}

fn check_at(token: &str, now: u64) -> Result<Caller, AuthError> {
    auth().authenticate(Some(&bearer(token)), now, &no_fetch)
}

fn check(token: &str) -> Result<Caller, AuthError> {
    check_at(token, NOW)
}

/// Through `jwksUrl`, the fetched set holding the issuer's keys.
fn check_fetched(token: &str) -> Result<Caller, AuthError> {
    url_auth().authenticate(Some(&bearer(token)), NOW, &|u| {
        (u == JWKS_URL).then(|| jwk_set(issuer_keys()))
    })
}

/// Through `jwksUrl`, asserting that no key set was asked for.
fn check_keyless(token: &str) -> Result<Caller, AuthError> {
    let asked = Cell::new(false);
    let r = url_auth().authenticate(Some(&bearer(token)), NOW, &|_| {
        asked.set(true);
        None
    });
    assert!(!asked.get(), "a key set was asked for");
    r
}

fn oidc_caller() -> Caller {
    Caller {
        identity: format!("oidc:github:{SUB}"),
        contracts: vec!["ci-release".into()],
    }
}

#[track_caller]
fn accepted(r: Result<Caller, AuthError>) {
    assert_eq!(r, Ok(oidc_caller()));
}

#[track_caller]
fn refused(r: Result<Caller, AuthError>, cause: &str) {
    match r {
        Err(AuthError::Unauthorized(why)) => {
            assert!(why.contains(cause), "{why:?} does not mention {cause:?}")
        }
        other => panic!("expected Unauthorized({cause:?}), got {other:?}"),
    }
}

fn claims_at(now: u64) -> Value {
    json!({"iss": ISS, "aud": "provgate", "sub": SUB, "repository": "acme/app",
        "iat": now, "nbf": now - 5, "exp": now + 300})
}

/// The accepted claims.
fn claims() -> Value {
    claims_at(NOW)
}

fn with(field: &str, value: Value) -> Value {
    let mut c = claims();
    c[field] = value;
    c
}

fn without(field: &str) -> Value {
    let mut c = claims();
    c.as_object_mut().unwrap().remove(field);
    c
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(Into::into);
    jsonwebtoken::encode(&h, claims, key).unwrap()
}

/// Signed with the issuer's EC key as `k1`: the accepted form.
fn es256(claims: &Value) -> String {
    let key = EncodingKey::from_ec_der(&keys().ec);
    sign(Algorithm::ES256, Some("k1"), claims, &key)
}

/// The accepted claims, signed ES256 with `key` (PKCS#8) under `kid`.
fn es256_by(key: &[u8], kid: Option<&str>) -> String {
    sign(
        Algorithm::ES256,
        kid,
        &claims(),
        &EncodingKey::from_ec_der(key),
    )
}

/// The accepted token with its header replaced.
fn reheaded(header: Value) -> String {
    let token = es256(&claims());
    let (_, rest) = token.split_once('.').unwrap();
    format!("{}.{rest}", B64URL.encode(header.to_string()))
}

// OIDC: accepted.

#[test]
fn an_es256_token_with_right_iss_aud_kid_exp_and_claim_is_accepted() {
    accepted(check(&es256(&claims())));
}

#[test]
fn an_es256_token_is_accepted_with_the_jwks_fetched_from_the_url() {
    accepted(check_fetched(&es256(&claims())));
}

#[test]
fn an_eddsa_token_is_accepted_with_an_okp_key() {
    let key = EncodingKey::from_ed_der(&keys().ed);
    accepted(check(&sign(Algorithm::EdDSA, Some("ed1"), &claims(), &key)));
}

#[test]
fn a_lowercase_bearer_scheme_is_accepted() {
    let header = format!("bearer {}", es256(&claims()));
    accepted(auth().authenticate(Some(&header), NOW, &no_fetch));
}

// OIDC: algorithms and keys.

#[test]
fn alg_none_is_refused_before_any_key_is_looked_up() {
    let token = es256(&claims());
    let payload = token.split('.').nth(1).unwrap();
    let header = B64URL.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
    refused(check_keyless(&format!("{header}.{payload}.")), "none");
}

#[test]
fn hs256_signed_with_the_public_key_is_refused_before_any_key_is_looked_up() {
    let secret = EncodingKey::from_secret(&ec_point()).unwrap();
    let token = sign(Algorithm::HS256, Some("k1"), &claims(), &secret);
    refused(check_keyless(&token), "algorithm HS256 is not accepted");
}

#[test]
fn an_rsa_header_naming_an_ec_key_is_refused() {
    for alg in ["RS256", "PS256"] {
        let token = reheaded(json!({"alg": alg, "typ": "JWT", "kid": "k1"}));
        refused(check(&token), &format!("kid \"k1\" is not a key for {alg}"));
    }
}

#[test]
fn a_jwk_whose_own_alg_differs_from_the_header_is_refused() {
    let a = file_auth(vec![ec_jwk("k1", "ES384")]);
    let r = a.authenticate(Some(&bearer(&es256(&claims()))), NOW, &no_fetch);
    refused(r, "kid \"k1\" is for ES384");
}

#[test]
fn a_token_without_kid_is_refused() {
    refused(check(&es256_by(&keys().ec, None)), "no kid");
}

#[test]
fn an_unknown_kid_in_a_static_jwks_is_refused() {
    refused(
        check(&es256_by(&keys().ec, Some("k2"))),
        "unknown kid \"k2\"",
    );
}

#[test]
fn an_unknown_kid_in_a_url_jwks_asks_for_a_refetch() {
    let token = es256_by(&keys().ec, Some("k2"));
    assert_eq!(
        check_fetched(&token),
        Err(AuthError::JwksNeeded(JWKS_URL.into()))
    );
}

#[test]
fn a_url_jwks_not_fetched_yet_asks_for_a_fetch() {
    let r = url_auth().authenticate(Some(&bearer(&es256(&claims()))), NOW, &no_fetch);
    assert_eq!(r, Err(AuthError::JwksNeeded(JWKS_URL.into())));
}

#[test]
fn a_signature_by_another_key_with_the_same_kid_is_refused() {
    refused(
        check(&es256_by(&keys().other_ec, Some("k1"))),
        "InvalidSignature",
    );
}

#[test]
fn a_payload_changed_after_signing_is_refused() {
    let token = es256(&claims());
    let parts: Vec<&str> = token.split('.').collect();
    let payload = B64URL.encode(with("repository", json!("acme/other")).to_string());
    let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
    refused(check(&forged), "InvalidSignature");
}

// OIDC: times.

#[test]
fn a_token_expired_beyond_the_leeway_is_refused() {
    refused(check_at(&es256(&claims()), NOW + 300 + 31), "expired");
}

#[test]
fn a_token_expired_within_the_leeway_is_accepted() {
    accepted(check_at(&es256(&claims()), NOW + 300 + 30));
}

#[test]
fn a_token_not_yet_valid_beyond_the_leeway_is_refused() {
    refused(
        check(&es256(&with("nbf", json!(NOW + 31)))),
        "not yet valid",
    );
}

#[test]
fn a_token_not_yet_valid_within_the_leeway_is_accepted() {
    accepted(check(&es256(&with("nbf", json!(NOW + 30)))));
}

#[test]
fn a_token_without_exp_is_refused() {
    refused(check(&es256(&without("exp"))), "exp");
}

#[test]
fn a_non_numeric_nbf_is_refused() {
    refused(check(&es256(&with("nbf", json!("soon")))), "nbf");
}

#[test]
fn times_are_judged_by_now_unix_not_the_system_clock() {
    // Far past the system clock: a fixed clock (tests, replays) decides.
    let later = 4_000_000_000;
    accepted(check_at(&es256(&claims_at(later)), later));
}

// OIDC: issuer, audience, claims.

#[test]
fn a_token_for_another_audience_is_refused() {
    refused(
        check(&es256(&with("aud", json!("sigstore")))),
        "InvalidAudience",
    );
}

#[test]
fn an_audience_list_containing_ours_among_others_is_accepted() {
    accepted(check(&es256(&with("aud", json!(["sigstore", "provgate"])))));
}

#[test]
fn an_untrusted_issuer_is_refused() {
    let token = es256(&with("iss", json!("https://gitlab.example.com")));
    refused(
        check(&token),
        "issuer \"https://gitlab.example.com\" is not trusted",
    );
}

#[test]
fn a_claim_not_matching_its_constraint_is_refused() {
    // The regex is anchored: merely containing "acme/…" is not enough.
    for repo in ["evil/app", "evilacme/app"] {
        let token = es256(&with("repository", json!(repo)));
        refused(
            check(&token),
            &format!("claim repository = \"{repo}\" does not match"),
        );
    }
}

#[test]
fn a_constrained_claim_missing_is_refused() {
    refused(
        check(&es256(&without("repository"))),
        "claim repository missing",
    );
}

// Static tokens and the header.

#[test]
fn the_right_static_token_is_accepted_with_its_name_and_contracts() {
    assert_eq!(
        check(TOKEN),
        Ok(Caller {
            identity: "token:release-ci".into(),
            contracts: vec!["needs-provenance".into()],
        })
    );
}

#[test]
fn each_static_token_authenticates_as_its_own_name() {
    let specs = [token_spec("a", "token-a"), token_spec("b", "token-b")];
    let a = Authenticator::compile(&specs, &[], Path::new("/nonexistent")).unwrap();
    for (name, token) in [("a", "token-a"), ("b", "token-b")] {
        let caller = a
            .authenticate(Some(&bearer(token)), NOW, &no_fetch)
            .unwrap();
        assert_eq!(caller.identity, format!("token:{name}"));
    }
}

#[test]
fn a_static_token_one_character_off_is_not_a_known_token() {
    let wrong = TOKEN.replace('3', "e");
    refused(check(&wrong), "not a known token and not a JWT");
}

#[test]
fn no_header_basic_or_empty_bearer_is_missing() {
    let basic = format!("Basic {TOKEN}");
    for header in [
        None,
        Some(basic.as_str()),
        Some("Bearer "),
        Some("Bearer   "),
    ] {
        assert_eq!(
            auth().authenticate(header, NOW, &no_fetch),
            Err(AuthError::Missing),
            "{header:?}"
        );
    }
}

#[test]
fn a_token_over_16_kib_is_refused_as_too_long() {
    let limit = 16 * 1024;
    refused(check(&"a".repeat(limit + 1)), "token too long");
    refused(check(&"a".repeat(limit)), "not a known token");
}

// Compile refusals.

fn compile_error(tokens: &[TokenSpec], oidc: &[OidcSpec]) -> String {
    Authenticator::compile(tokens, oidc, Path::new("/nonexistent"))
        .unwrap_err()
        .to_string()
}

/// Asserts that the accepted issuer, after `change`, does not compile.
#[track_caller]
fn oidc_refused(change: impl Fn(&mut OidcSpec), cause: &str) {
    let mut spec = url_spec();
    change(&mut spec);
    let e = compile_error(&[], &[spec]);
    assert!(e.contains(cause), "{e:?} does not mention {cause:?}");
}

#[test]
fn compile_accepts_the_issuer_and_token_used_here() {
    let a = Authenticator::compile(
        &[token_spec("release-ci", TOKEN)],
        &[url_spec()],
        Path::new("/nonexistent"),
    )
    .unwrap();
    assert!(a.is_configured());
    assert_eq!(a.jwks_sources().len(), 1);
    assert_eq!(a.jwks_sources()[0].url, JWKS_URL);
}

#[test]
fn compile_refuses_an_empty_audience_list() {
    let cause = "at least one non-empty audience";
    oidc_refused(|s| s.audiences.clear(), cause);
    oidc_refused(|s| s.audiences = vec![String::new()], cause);
}

#[test]
fn compile_refuses_a_plain_http_jwks_url() {
    let http = "http://token.actions.githubusercontent.com/jwks";
    oidc_refused(|s| s.jwks_url = Some(http.into()), "jwksUrl must be https");
}

#[test]
fn compile_refuses_both_or_neither_jwks_source() {
    let cause = "give exactly one of jwksFile or jwksUrl";
    oidc_refused(|s| s.jwks_file = Some("jwks.json".into()), cause);
    oidc_refused(|s| s.jwks_url = None, cause);
}

#[test]
fn compile_refuses_a_bad_sha256() {
    let good = token_spec("release-ci", TOKEN);
    let short = good.sha256[1..].to_string();
    let not_hex = format!("{}g", &good.sha256[1..]);
    for sha256 in ["", "abc", short.as_str(), not_hex.as_str()] {
        let spec = TokenSpec {
            sha256: sha256.into(),
            ..good.clone()
        };
        let e = compile_error(&[spec], &[]);
        assert!(
            e.contains("sha256 must be 64 hex digits"),
            "{sha256:?}: {e}"
        );
    }
}
