//! Certificates and keys read from PEM files, each error naming the configuration key (a
//! key file's path may be named; its content never is).

use anyhow::{anyhow, bail, Context, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

/// Every certificate in `path` (at least one).
pub fn certificates(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read {key} {}", path.display()))?;
    if certs.is_empty() {
        bail!("{key} {} holds no certificate", path.display());
    }
    Ok(certs)
}

/// The private key in `path`.
pub fn private_key(path: &Path, key: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|_| anyhow!("cannot read a private key from {key} {}", path.display()))
}

/// The certificates of `path` as trust anchors.
pub fn roots(path: &Path, key: &str) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(path, key)? {
        roots
            .add(cert)
            .with_context(|| format!("{key} {}: a certificate is unusable", path.display()))?;
    }
    Ok(roots)
}
