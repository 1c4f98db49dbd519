//! Why an exchange failed, in words an operator can act on: the transport
//! error chain (TLS, refused, DNS, timeout) and the statuses a registry
//! answers with.

use std::time::Duration;

use reqwest::header::HeaderMap;

use super::{Fetched, Transport};
use crate::oci::error::{ConnectFailure, RegistryError, RegistryErrorKind, TimeoutKind};

impl Transport {
    pub(super) fn unauthorized(&self, context: &str, status: u16) -> RegistryError {
        RegistryError::new(
            &self.host,
            context,
            RegistryErrorKind::Unauthorized {
                status,
                credentials: self.credentials_used.clone(),
            },
        )
    }

    /// Maps a non-success status of a request to a classified error.
    pub fn status_error(&self, context: &str, f: &Fetched) -> RegistryError {
        let kind = match f.status {
            404 => RegistryErrorKind::NotFound,
            401 | 403 => return self.unauthorized(context, f.status),
            429 => RegistryErrorKind::RateLimited {
                retry_after: retry_after(&f.headers),
            },
            s if s >= 500 => RegistryErrorKind::Server(s),
            s => RegistryErrorKind::Status(s),
        };
        RegistryError::new(&self.host, context, kind)
    }

    /// Classifies a failed request: timeout, or why the connection failed.
    pub(super) fn map_reqwest(&self, context: &str, e: &reqwest::Error) -> RegistryError {
        let kind = if e.is_timeout() {
            RegistryErrorKind::Timeout(TimeoutKind::Request(self.options.timeout))
        } else {
            match connect_failure(e, self.options.ca_pem.is_some()) {
                Some(ConnectFailure::Other(_)) | None if is_timed_out(e) => {
                    RegistryErrorKind::Timeout(TimeoutKind::Request(self.options.timeout))
                }
                Some(c) => RegistryErrorKind::Connect(c),
                None => RegistryErrorKind::Connect(ConnectFailure::Other(root_cause(e))),
            }
        };
        RegistryError::new(&self.host, context, kind)
    }
}

/// `Retry-After`: delay-seconds, or an HTTP date (then the time until it).
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())?;
    crate::oci::backoff::parse_retry_after(v, std::time::SystemTime::now())
}

/// Every error of a chain, outermost first, looking inside `io::Error`s
/// (whose `source()` skips the error they wrap).
pub(super) fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    let mut next = Some(e);
    std::iter::from_fn(move || {
        let cur = next?;
        next = match cur.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => cur.source(),
            },
            None => cur.source(),
        };
        Some(cur)
    })
}

/// Why a request could not connect, from the error chain: rustls errors,
/// refused connections, DNS failures; `None` when nothing is recognised.
pub(super) fn connect_failure(
    e: &(dyn std::error::Error + 'static),
    ca_configured: bool,
) -> Option<ConnectFailure> {
    for cur in chain(e) {
        if let Some(t) = cur.downcast_ref::<rustls::Error>() {
            return Some(tls_failure(t, ca_configured));
        }
        if let Some(io) = cur.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return Some(ConnectFailure::Refused);
        }
    }
    // hyper-util's connector says "dns error" around the resolver's error
    // ("failed to lookup address information: …"); neither has a type or
    // kind of its own. The innermost message is the resolver's.
    let dns = chain(e).any(|c| {
        let text = c.to_string();
        text == "dns error" || text.starts_with("failed to lookup address information")
    });
    if dns {
        return Some(ConnectFailure::Dns(root_cause(e)));
    }
    None
}

/// Whether the chain holds an `io::Error` of kind `TimedOut`.
pub(super) fn is_timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    chain(e).any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    })
}

/// The innermost error's message (without reqwest's and hyper's wrappers,
/// which repeat the URL or show debug forms such as `client error (Connect)`).
pub(super) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    chain(e)
        .last()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "unknown error".into())
}

pub(super) fn tls_failure(e: &rustls::Error, ca_configured: bool) -> ConnectFailure {
    use rustls::{CertificateError as C, Error as E, InvalidMessage};
    match e {
        // The first bytes were not a TLS record: an HTTP answer ("HTTP/1.1
        // 400 …") to the ClientHello.
        E::InvalidMessage(InvalidMessage::InvalidContentType) => ConnectFailure::PlainHttp,
        E::InvalidCertificate(C::UnknownIssuer) => ConnectFailure::UnknownCa { ca_configured },
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            ConnectFailure::CertificateName
        }
        E::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => ConnectFailure::CertificateExpired,
        E::InvalidCertificate(c) => {
            // rustls prints the variants without context in debug form.
            let text = c.to_string();
            let text = if text.chars().all(|ch| ch.is_ascii_alphanumeric()) {
                words(&text)
            } else {
                text
            };
            ConnectFailure::Tls(format!("certificate rejected: {text}"))
        }
        E::InvalidMessage(m) => {
            ConnectFailure::Tls(format!("corrupt TLS message: {}", words(&format!("{m:?}"))))
        }
        E::AlertReceived(a) => ConnectFailure::Tls(format!(
            "the registry sent the TLS alert {}",
            words(&format!("{a:?}"))
        )),
        E::PeerIncompatible(p) => ConnectFailure::Tls(format!(
            "the registry's TLS is incompatible: {}",
            words(&format!("{p:?}"))
        )),
        E::PeerMisbehaved(p) => ConnectFailure::Tls(format!(
            "the registry's TLS misbehaved: {}",
            words(&format!("{p:?}"))
        )),
        other => ConnectFailure::Tls(other.to_string()),
    }
}

/// `UnknownIssuer` → `unknown issuer`; anything that is not a bare
/// identifier (a variant with fields) keeps only its name.
pub(super) fn words(ident: &str) -> String {
    let name: String = ident
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push(' ');
            }
            out.push(c.to_ascii_lowercase());
        } else if c == '_' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    /// An error with a source, like hyper-util's `ConnectError`.
    #[derive(Debug)]
    struct Wrap(
        &'static str,
        Box<dyn std::error::Error + Send + Sync + 'static>,
    );
    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Wrap {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&*self.1)
        }
    }

    fn io_around(e: rustls::Error) -> Wrap {
        Wrap(
            "client error (Connect)",
            Box::new(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        )
    }

    #[test]
    fn a_non_tls_answer_to_the_handshake_means_plain_http() {
        let e = io_around(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert_eq!(connect_failure(&e, false), Some(ConnectFailure::PlainHttp));
    }

    #[test]
    fn an_unknown_issuer_is_an_unknown_ca_remembering_whether_a_ca_file_was_set() {
        let e = || {
            io_around(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        };
        assert_eq!(
            connect_failure(&e(), false),
            Some(ConnectFailure::UnknownCa {
                ca_configured: false
            })
        );
        assert_eq!(
            connect_failure(&e(), true),
            Some(ConnectFailure::UnknownCa {
                ca_configured: true
            })
        );
    }

    #[test]
    fn other_tls_failures_are_described_without_debug_forms() {
        let e = io_around(rustls::Error::AlertReceived(
            rustls::AlertDescription::HandshakeFailure,
        ));
        assert_eq!(
            connect_failure(&e, false),
            Some(ConnectFailure::Tls(
                "the registry sent the TLS alert handshake failure".into()
            ))
        );
        let e = io_around(rustls::Error::InvalidCertificate(
            rustls::CertificateError::BadSignature,
        ));
        assert_eq!(
            connect_failure(&e, false),
            Some(ConnectFailure::Tls(
                "certificate rejected: bad signature".into()
            ))
        );
        let e = io_around(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName,
        ));
        assert_eq!(
            connect_failure(&e, false),
            Some(ConnectFailure::CertificateName)
        );
    }

    #[test]
    fn refused_and_dns_failures_are_recognised_in_the_chain() {
        let refused = Wrap(
            "tcp connect error",
            Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        );
        let outer = Wrap("client error (Connect)", Box::new(refused));
        assert_eq!(
            connect_failure(&outer, false),
            Some(ConnectFailure::Refused)
        );

        let dns = Wrap(
            "dns error",
            Box::new(std::io::Error::other(
                "failed to lookup address information: Name or service not known",
            )),
        );
        let outer = Wrap("client error (Connect)", Box::new(dns));
        assert_eq!(
            connect_failure(&outer, false),
            Some(ConnectFailure::Dns(
                "failed to lookup address information: Name or service not known".into()
            ))
        );

        let reset = Wrap(
            "client error (Connect)",
            Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        );
        assert_eq!(connect_failure(&reset, false), None);
        assert_eq!(root_cause(&reset), "connection reset");
        let timed_out = Wrap(
            "client error (Connect)",
            Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut)),
        );
        assert!(is_timed_out(&timed_out));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_static("120"),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
        let date = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&later)
            .unwrap();
        h.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_str(&date).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!((3590..=3600).contains(&d.as_secs()), "{date} → {d:?}");
        h.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_static("soon"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn words_splits_identifiers() {
        assert_eq!(words("UnknownIssuer"), "unknown issuer");
        assert_eq!(words("Other(OtherError)"), "other");
    }
}
