//! `tpc` over https: the certificates it trusts. By default the public web
//! roots (`webpki-roots`); with `--ca-file`, only the certificates in that
//! PEM file (a private CA, or a self-signed coordinator certificate). The
//! same roots serve the HTTP requests (`ureq`) and `tpc watch`'s WebSocket.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use shared::limits::CLI_CA_FILE_BYTES_MAX;
use ureq::tls::{Certificate, PemItem, RootCerts};

use super::client::ClientError;

/// Which certificates a https coordinator may present.
#[derive(Clone, Default)]
pub struct Trust {
    /// None: the public web roots.
    ca: Option<(PathBuf, Vec<Certificate<'static>>)>,
}

impl Trust {
    /// The certificates of `path` (PEM), or the public roots without one.
    pub fn from_ca_file(path: Option<&Path>) -> Result<Trust, ClientError> {
        let Some(path) = path else {
            return Ok(Trust::default());
        };
        let usage =
            |why: String| ClientError::Usage(format!("--ca-file {}: {why}", path.display()));
        let size = std::fs::metadata(path)
            .map_err(|e| usage(format!("cannot read it ({e})")))?
            .len();
        if size > CLI_CA_FILE_BYTES_MAX {
            return Err(usage(format!(
                "{size} bytes is more than a certificate file holds (at most {CLI_CA_FILE_BYTES_MAX})"
            )));
        }
        let pem = std::fs::read(path).map_err(|e| usage(format!("cannot read it ({e})")))?;
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(PemItem::Certificate(cert)) => certs.push(cert),
                Ok(_) => {}
                Err(e) => return Err(usage(format!("not a PEM file ({e})"))),
            }
        }
        if certs.is_empty() {
            return Err(usage(
                "holds no certificate (expected PEM blocks: -----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        Ok(Trust {
            ca: Some((path.to_path_buf(), certs)),
        })
    }

    /// The roots for `ureq`.
    pub fn ureq_roots(&self) -> RootCerts {
        match &self.ca {
            None => RootCerts::WebPki,
            Some((_, certs)) => RootCerts::Specific(Arc::new(certs.clone())),
        }
    }

    /// A rustls configuration with the same roots (for the WebSocket).
    pub fn rustls_config(&self) -> Result<Arc<rustls::ClientConfig>, ClientError> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca {
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Some((path, certs)) => {
                for cert in certs {
                    roots
                        .add(rustls::pki_types::CertificateDer::from(cert.der().to_vec()))
                        .map_err(|e| {
                            ClientError::Usage(format!(
                                "--ca-file {}: a certificate cannot be a root ({e})",
                                path.display()
                            ))
                        })?;
                }
            }
        }
        // ring, as ureq uses: aws-lc-rs (rustls' choice for post-quantum key
        // exchange) would add a C and CMake build for one command's TLS.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Usage(format!("TLS setup failed: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// How to fix a certificate the coordinator presented and this refused.
    pub fn hint(&self) -> &'static str {
        match self.ca {
            None => "if the coordinator's certificate is from a private CA or self-signed, give it with --ca-file PATH",
            Some(_) => "the coordinator's certificate is not signed by the --ca-file certificates",
        }
    }
}
