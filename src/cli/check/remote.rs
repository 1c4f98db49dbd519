//! `check --server`: the gate call, and what a failed call means in words
//! that name the fix (an unknown CA, a certificate for another name, a
//! refused connection).

use std::collections::BTreeMap;

use super::{CheckArgs, gate_token};
use crate::cli::CliError;
use crate::respond::json::{GateContext, GateRequest, GateResponse};

pub(super) async fn remote(
    args: &CheckArgs,
    server: &str,
    labels: BTreeMap<String, String>,
) -> Result<GateResponse, CliError> {
    let base = url::Url::parse(server).map_err(|e| {
        CliError::new(format!("--server {server:?} is not a URL"), e)
            .hint("give the gate's base URL, e.g. --server https://provgate.example:8443")
    })?;
    if base.scheme() != "https" {
        return Err(CliError::msg(format!(
            "--server {server:?}: the gate serves HTTPS only, and the token must not travel in clear"
        ))
        .hint(format!(
            "use https://{}",
            server.split_once("://").map(|(_, r)| r).unwrap_or(server)
        )));
    }
    let (var, flag, token) = gate_token(args)?;
    let mut builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .user_agent(concat!("provgate/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &args.ca {
        let pem =
            std::fs::read(ca).map_err(|e| CliError::new(format!("reading {}", ca.display()), e))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| CliError::new(format!("{} is not a PEM CA bundle", ca.display()), e))?;
        if certs.is_empty() {
            return Err(CliError::msg(format!(
                "--ca {}: no PEM certificate in the file",
                ca.display()
            )));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder
        .build()
        .map_err(|e| CliError::new("building the HTTP client", e))?;
    let url = format!("{}/v1/gate", server.trim_end_matches('/'));
    let request = GateRequest {
        api_version: Some(crate::respond::json::GATE_V1.into()),
        images: args.images.clone(),
        context: GateContext {
            namespace: args.namespace.clone(),
            labels,
            kind: args.kind.clone(),
            name: args.name.clone(),
        },
        contracts: (!args.contracts.is_empty()).then(|| args.contracts.clone()),
    };
    let resp = match client
        .post(&url)
        .json(&request)
        .bearer_auth(&token)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return Err(send_error(e, &url, &base, args.ca.is_some()).await),
    };
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp
        .bytes()
        .await
        .map_err(|e| CliError::new(format!("reading the answer of {url}"), e))?;
    if !status.is_success() {
        let msg = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&body)
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(300)
                    .collect()
            });
        let err = CliError::msg(format!("the gate {url} answered {status}: {msg}"));
        return Err(match status.as_u16() {
            401 if flag == "--oidc-token-env" => err.hint(format!(
                "the gate did not accept the OIDC token in {var}: its issuer must be listed \
                 under gate.oidc of the gate's configuration, with the token's audience among \
                 `audiences` and its claims matching `claims`; the gate's log says which check \
                 failed"
            )),
            401 => err.hint(format!(
                "the gate did not accept the token in {var}: its SHA-256 \
                 (printf %s \"${var}\" | sha256sum) must be listed under gate.tokens of the \
                 gate's configuration; `provgate serve` on the embedded defaults lists none and \
                 answers 401 to every call (README, \"Run the webhook\")"
            )),
            403 => err.hint(
                "this caller may not choose the contracts given with --contract: the gate's \
                 gate.tokens[].contracts (or gate.oidc[].contracts) must list each of them; \
                 without --contract the gate judges the bindings",
            ),
            429 => err.hint(match retry_after {
                Some(s) => format!("the gate limits calls per caller; retry after {s} s"),
                None => "the gate limits calls per caller; retry later".to_owned(),
            }),
            404 => err.hint(format!(
                "{} does not serve the gate API (POST /v1/gate); give the base URL of a \
                 provgate server",
                server
            )),
            _ => err,
        });
    }
    serde_json::from_slice(&body)
        .map_err(|e| CliError::new(format!("unreadable answer from {url}"), e))
}

/// What a gate call that got no answer means, and what fixes it: the cause
/// is found by walking the error's source chain (rustls and I/O errors).
async fn send_error(e: reqwest::Error, url: &str, base: &url::Url, had_ca: bool) -> CliError {
    let host = base.host_str().unwrap_or("").to_owned();
    let port = base.port_or_known_default().unwrap_or(443);
    let hint = match cause(&e) {
        Cause::Tls(rustls::Error::InvalidCertificate(c)) => {
            Some(certificate_hint(c, &host, had_ca))
        }
        Cause::Tls(rustls::Error::InvalidMessage(_)) => Some(format!(
            "{host}:{port} did not answer with TLS: is it a plain-HTTP port? The gate is \
                 served by `provgate serve` on its HTTPS port (server.listen, 8443 by default)"
        )),
        Cause::Tls(other) => Some(format!(
            "the TLS handshake with {host}:{port} failed: {other}"
        )),
        Cause::Refused => Some(format!(
            "nothing listens on {host}:{port}: is `provgate serve` running there, and is the \
             port in --server right (server.listen, 8443 by default)?"
        )),
        Cause::Other if e.is_timeout() => Some(format!(
            "{host}:{port} did not answer within 60 s: check the URL, and that a firewall or \
             proxy lets the connection through"
        )),
        Cause::Other if e.is_connect() => {
            match tokio::net::lookup_host((host.as_str(), port)).await {
                Err(_) => Some(format!(
                    "cannot resolve the host name {host:?} (DNS): check the --server URL"
                )),
                Ok(_) => None,
            }
        }
        Cause::Other => None,
    };
    let err = match cause(&e) {
        // rustls's text lists the names in Rust debug form: say it plainly
        // (the hint names them).
        Cause::Tls(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForNameContext { .. },
        )) => CliError::msg(format!(
            "cannot call the gate {url}: its certificate is not valid for {host:?}"
        )),
        _ => CliError::new(format!("cannot call the gate {url}"), e),
    };
    match hint {
        Some(h) => err.hint(h),
        None => err,
    }
}

/// The cause of a failed request, as far as the CLI can tell a fix for it.
enum Cause<'a> {
    /// A TLS error.
    Tls(&'a rustls::Error),
    /// The connection was refused.
    Refused,
    /// Anything else.
    Other,
}

fn cause(e: &reqwest::Error) -> Cause<'_> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Cause::Tls(t);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return Cause::Refused;
            }
            // `io::Error::source` skips the wrapped error itself (often
            // another `io::Error` around the rustls error): descend into it.
            if let Some(inner) = io.get_ref() {
                next = Some(inner);
                continue;
            }
        }
        next = err.source();
    }
    Cause::Other
}

pub(super) fn certificate_hint(c: &rustls::CertificateError, host: &str, had_ca: bool) -> String {
    use rustls::CertificateError as C;
    match c {
        C::UnknownIssuer if had_ca => format!(
            "the certificate of {host} is not signed by the CA given with --ca (nor by a system \
             root): pass the CA that issued it (for `provgate serve` with a development \
             certificate, the ca.crt it printed at start-up, certs/dev/ca.crt by default)"
        ),
        C::UnknownIssuer => format!(
            "the certificate of {host} is not signed by a CA this machine trusts: pass the CA \
             that issued it with --ca FILE (for `provgate serve` with a development \
             certificate, the ca.crt it printed at start-up, certs/dev/ca.crt by default)"
        ),
        C::NotValidForNameContext { presented, .. } if !presented.is_empty() => {
            let names: Vec<String> = presented.iter().map(|p| plain_name(p)).collect();
            format!(
                "the certificate is not issued for {host:?} but for {}: use one of these \
                 names in --server, or serve a certificate that names {host:?}",
                names.join(", ")
            )
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => format!(
            "the certificate is not issued for {host:?}: use a host name the certificate \
             names in --server (a development certificate names localhost, 127.0.0.1, ::1 and \
             provgate.provgate.svc)"
        ),
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            format!(
                "the certificate of {host} is outside its validity period ({c}): renew it \
                 (`provgate certs generate` for development), or check this machine's clock"
            )
        }
        other => format!("the certificate of {host} was rejected: {other}"),
    }
}

/// A name as webpki presents it (`DnsName("a.example")`, `IpAddress(10.0.0.1)`),
/// without the Rust debug wrapping.
fn plain_name(presented: &str) -> String {
    presented
        .strip_prefix("DnsName(\"")
        .and_then(|r| r.strip_suffix("\")"))
        .or_else(|| {
            presented
                .strip_prefix("IpAddress(")
                .and_then(|r| r.strip_suffix(')'))
        })
        .unwrap_or(presented)
        .to_owned()
}
