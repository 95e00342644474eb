//! The federation's certificate authority, on disk as PEM files.
//!
//! `init` creates the CA (`ca.crt`, `ca.key`) and the hub's server
//! certificate (`hub.crt`, `hub.key`, for `localhost`, `127.0.0.1` and any
//! extra names). `issue` signs a client certificate for a centre or a
//! committee (`centre-<id>.crt/.key`, `committee-<name>.crt/.key`) whose
//! only `clps://` URI SAN is the identity the hub will see. Keys are ECDSA
//! P-256. The CA key never leaves the directory it was created in: keep that
//! directory offline and copy out only `ca.crt` and the issued pairs.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::identity::Identity;

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const HUB_CERT: &str = "hub.crt";
pub const HUB_KEY: &str = "hub.key";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("une autorité existe déjà dans {0}")]
    AlreadyExists(PathBuf),
    #[error("lecture ou écriture impossible : {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("la génération du certificat a échoué")]
    Rcgen(#[from] rcgen::Error),
    #[error("nom invalide « {0} »")]
    Name(String),
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct IssuedPair {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), PkiError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(io_err(path))?;
    file.write_all(contents.as_bytes()).map_err(io_err(path))
}

fn read_file(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(io_err(path))
}

fn ca_params() -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Fédération des CLPS");
    dn.push(DnType::CommonName, "CLPS federation CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    Ok(params)
}

fn leaf_params(common_name: &str, sans: Vec<SanType>, server: bool) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Fédération des CLPS");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    params
}

fn load_issuer(dir: &Path) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let key = KeyPair::from_pem(&read_file(&dir.join(CA_KEY))?)?;
    Ok(Issuer::from_ca_cert_pem(
        &read_file(&dir.join(CA_CERT))?,
        key,
    )?)
}

fn sign_leaf(dir: &Path, stem: &str, params: CertificateParams) -> Result<IssuedPair, PkiError> {
    let issuer = load_issuer(dir)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let cert_path = dir.join(format!("{stem}.crt"));
    let key_path = dir.join(format!("{stem}.key"));
    write_file(&cert_path, &cert.pem(), false)?;
    write_file(&key_path, &key.serialize_pem(), true)?;
    Ok(IssuedPair {
        cert_path,
        key_path,
    })
}

/// Creates the CA and the hub's server certificate in `dir`. The hub
/// certificate is valid for `localhost`, `127.0.0.1`, `::1` and
/// `hub_names` (DNS names or IP addresses).
pub fn init(dir: &Path, hub_names: &[String]) -> Result<IssuedPair, PkiError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    if dir.join(CA_KEY).exists() {
        return Err(PkiError::AlreadyExists(dir.to_owned()));
    }
    let key = KeyPair::generate()?;
    let cert = ca_params()?.self_signed(&key)?;
    write_file(&dir.join(CA_CERT), &cert.pem(), false)?;
    write_file(&dir.join(CA_KEY), &key.serialize_pem(), true)?;
    issue_hub(dir, hub_names)
}

/// (Re)issues the hub's server certificate.
pub fn issue_hub(dir: &Path, hub_names: &[String]) -> Result<IssuedPair, PkiError> {
    let mut sans = vec![
        SanType::DnsName("localhost".try_into()?),
        SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
        SanType::IpAddress(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])),
    ];
    for name in hub_names {
        match name.parse::<IpAddr>() {
            Ok(ip) => sans.push(SanType::IpAddress(ip)),
            Err(_) => sans.push(SanType::DnsName(
                name.as_str()
                    .try_into()
                    .map_err(|_| PkiError::Name(name.clone()))?,
            )),
        }
    }
    sign_leaf(dir, "hub", leaf_params("clps-hub", sans, true))
}

/// Issues a client certificate for a centre or a committee.
pub fn issue(dir: &Path, identity: &Identity) -> Result<IssuedPair, PkiError> {
    let uri = identity.uri();
    let stem = match identity {
        Identity::Centre(c) => format!("centre-{c}"),
        Identity::Committee(n) => format!("committee-{n}"),
    };
    let sans = vec![SanType::URI(
        uri.as_str()
            .try_into()
            .map_err(|_| PkiError::Name(uri.clone()))?,
    )];
    sign_leaf(dir, &stem, leaf_params(&identity.to_string(), sans, false))
}

/// The revocation list `revoke` writes (PEM), for the hub's `tls.crl`.
pub const CRL: &str = "ca.crl";
/// The revoked serials (hex, one per line) the CRL is rebuilt from.
pub const REVOKED: &str = "revoked.txt";

/// The serial number of a PEM certificate, lowercase hex without colons.
pub fn serial_hex(cert_pem: &str) -> Result<String, PkiError> {
    use rustls::pki_types::pem::PemObject;
    use x509_parser::prelude::{FromDer, X509Certificate};
    let der = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|_| PkiError::Name("PEM certificate".to_owned()))?;
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|_| PkiError::Name("X.509 certificate".to_owned()))?;
    Ok(hex_lower(cert.raw_serial()))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    let text: String = text.chars().filter(|c| *c != ':').collect();
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Revokes the certificate `cert` (a PEM file issued by this CA): adds its
/// serial to `revoked.txt` and rewrites `ca.crl`, signed by the CA, with
/// every serial revoked so far. Returns the CRL's path and the serial.
/// Revoking twice is harmless.
pub fn revoke(dir: &Path, cert: &Path) -> Result<(PathBuf, String), PkiError> {
    let serial = serial_hex(&read_file(cert)?)?;
    let list_path = dir.join(REVOKED);
    let mut serials: Vec<String> = match fs::read_to_string(&list_path) {
        Ok(text) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(PkiError::Io {
                path: list_path,
                source,
            });
        }
    };
    if !serials.contains(&serial) {
        serials.push(serial.clone());
    }
    let issuer = load_issuer(dir)?;
    let now = std::time::SystemTime::now().into();
    let revoked_certs = serials
        .iter()
        .filter_map(|s| from_hex(s))
        .map(|bytes| rcgen::RevokedCertParams {
            serial_number: rcgen::SerialNumber::from_slice(&bytes),
            revocation_time: now,
            reason_code: Some(rcgen::RevocationReason::KeyCompromise),
            invalidity_date: None,
        })
        .collect();
    let params = rcgen::CertificateRevocationListParams {
        this_update: now,
        next_update: rcgen::date_time_ymd(2045, 1, 1),
        crl_number: rcgen::SerialNumber::from(u64::try_from(serials.len()).unwrap_or(u64::MAX)),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&issuer)?;
    let crl_path = dir.join(CRL);
    write_file(&crl_path, &crl.pem()?, false)?;
    write_file(&list_path, &format!("{}\n", serials.join("\n")), false)?;
    Ok((crl_path, serial))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clps_model::CentreId;

    #[test]
    fn issued_certificates_carry_the_identity() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), &["hub.clps.be".to_owned()]).unwrap();
        assert!(matches!(
            init(dir.path(), &[]),
            Err(PkiError::AlreadyExists(_))
        ));
        for identity in [
            Identity::Centre(CentreId::new("namur").unwrap()),
            Identity::Committee("inter-clps".to_owned()),
        ] {
            let pair = issue(dir.path(), &identity).unwrap();
            let pem = fs::read_to_string(&pair.cert_path).unwrap();
            let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
            assert_eq!(Identity::from_cert_der(&der).unwrap(), identity);
        }
    }

    use rustls::pki_types::pem::PemObject;
}
