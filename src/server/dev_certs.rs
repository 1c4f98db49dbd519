//! Development certificates: a CA and a serving certificate signed by it.
//!
//! `provgate certs generate` and `provgate serve` without a configured
//! certificate both use this. The CA's private key is not written: a
//! development CA that cannot sign anything else is one less secret to
//! protect. Files are written with mode 0600 for the key.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// The files written.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The CA certificate (PEM): what clients and `caBundle` trust.
    pub ca: PathBuf,
    /// The serving certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
}

/// Why certificates could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Generation failed (e.g. an invalid DNS name).
    #[error("cannot generate certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file exists and replacing it was not asked for.
    #[error("{path} exists; {why}. Pass --force to replace it, or --out DIR to write elsewhere")]
    Exists {
        /// The path.
        path: String,
        /// What replacing it would break.
        why: &'static str,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Certificates valid for this long.
const VALID_DAYS: i64 = 365;

/// The files [`generate`] writes, and what replacing each would break.
const FILES: [(&str, &str); 3] = [
    (
        "ca.crt",
        "a new CA would break every webhook configuration (caBundle) and every client that \
         trusts the old one",
    ),
    (
        "tls.crt",
        "it may be the certificate a running server serves",
    ),
    ("tls.key", "it may be the key a running server serves with"),
];

/// [`generate`], refusing to replace any existing file unless `force`:
/// nothing is written when one exists.
pub fn generate_new(names: &[String], dir: &Path, force: bool) -> Result<CertFiles, CertError> {
    if !force {
        for (name, why) in FILES {
            let path = dir.join(name);
            // `symlink_metadata`: a dangling link is a file in the way too.
            if std::fs::symlink_metadata(&path).is_ok() {
                return Err(CertError::Exists {
                    path: path.display().to_string(),
                    why,
                });
            }
        }
    }
    generate(names, dir)
}

/// Generates a CA and a serving certificate for `names` (DNS names or IP
/// addresses) into `dir` as `ca.crt`, `tls.crt` and `tls.key`, replacing
/// them (the development certificate of `provgate serve`).
pub fn generate(names: &[String], dir: &Path) -> Result<CertFiles, CertError> {
    let now = time::OffsetDateTime::now_utc();
    let not_before = now - time::Duration::hours(1);
    let not_after = now + time::Duration::days(VALID_DAYS);

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "provgate development CA");
    dn.push(DnType::OrganizationName, "provgate");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let leaf_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(names.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        names.first().map(String::as_str).unwrap_or("provgate"),
    );
    leaf.distinguished_name = dn;
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    leaf.not_before = not_before;
    leaf.not_after = not_after;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

    let write = |name: &str, text: &str, secret: bool| -> Result<PathBuf, CertError> {
        let path = dir.join(name);
        let err = |source| CertError::Write {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        write_file(&path, text.as_bytes(), secret).map_err(err)?;
        Ok(path)
    };
    Ok(CertFiles {
        ca: write("ca.crt", &ca_cert.pem(), false)?,
        cert: write(
            "tls.crt",
            &format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
            false,
        )?,
        key: write("tls.key", &leaf_key.serialize_pem(), true)?,
    })
}

#[cfg(unix)]
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    // Rename, so a watching server never reads half a file.
    std::fs::rename(&tmp, path)
}

#[cfg(not(unix))]
fn write_file(path: &Path, bytes: &[u8], _secret: bool) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// The names of a development certificate for `provgate serve`.
pub fn dev_names() -> Vec<String> {
    vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
        "provgate".into(),
        "provgate.provgate.svc".into(),
        "provgate.provgate.svc.cluster.local".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_new_refuses_to_replace_any_file_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["localhost".to_owned()];
        let first = generate_new(&names, dir.path(), false).unwrap();
        let ca = std::fs::read(&first.ca).unwrap();
        for (name, _) in FILES {
            // Only this one file exists: it alone must stop the run.
            let only = tempfile::tempdir().unwrap();
            std::fs::write(only.path().join(name), b"keep").unwrap();
            let e = generate_new(&names, only.path(), false).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, CertError::Exists { .. }), "{text}");
            assert!(text.contains(name) && text.contains("--force"), "{text}");
            assert_eq!(std::fs::read(only.path().join(name)).unwrap(), b"keep");
            for (other, _) in FILES {
                if other != name {
                    assert!(!only.path().join(other).exists(), "{other} was written");
                }
            }
        }
        let e = generate_new(&names, dir.path(), false).unwrap_err();
        assert!(e.to_string().contains("caBundle"), "{e}");
        assert_eq!(std::fs::read(&first.ca).unwrap(), ca, "the CA was replaced");
        let again = generate_new(&names, dir.path(), true).unwrap();
        assert_ne!(
            std::fs::read(&again.ca).unwrap(),
            ca,
            "--force did not replace"
        );
    }

    #[test]
    fn generates_a_chain_rustls_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(&["localhost".into(), "127.0.0.1".into()], dir.path()).unwrap();
        let ca = std::fs::read(&files.ca).unwrap();
        let cert = std::fs::read(&files.cert).unwrap();
        let key = std::fs::read(&files.key).unwrap();
        use rustls::pki_types::pem::PemObject;
        let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(certs.len(), 2);
        rustls::pki_types::PrivateKeyDer::from_pem_slice(&key).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
            roots.add(c.unwrap()).unwrap();
        }
        // The leaf verifies for its name under the CA.
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        use rustls::client::danger::ServerCertVerifier;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        verifier
            .verify_server_cert(
                &certs[0],
                &certs[1..],
                &name,
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .unwrap();
        let other = rustls::pki_types::ServerName::try_from("evil.example").unwrap();
        assert!(
            verifier
                .verify_server_cert(
                    &certs[0],
                    &certs[1..],
                    &other,
                    &[],
                    rustls::pki_types::UnixTime::now()
                )
                .is_err()
        );
    }
}
