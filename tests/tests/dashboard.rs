//! The committee dashboard in a real browser (issue 6): a hub with its
//! dashboard on port 0, a few seeded centres (two of them with two years),
//! and headless Chromium.
//!
//! Chromium cannot easily present a client certificate from the command
//! line, so the test runs a tiny tunnel on 127.0.0.1: Chromium speaks plain
//! HTTP to it and the tunnel opens a mutual-TLS connection to the dashboard
//! with the committee's certificate, byte for byte (no HTTP parsing). The
//! dashboard itself only ever sees verified certificates. Direct HTTPS
//! requests check the refusals: a centre's certificate gets 403 in French,
//! no certificate gets no TLS session at all.
//!
//! The screenshot is kept in `target/test-artefacts/dashboard.png`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clps_hub::{Identity, pki};
use clps_model::stats::Dimension;
use clps_tests::{centre, seeded};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A client certificate and key, as PEM files.
struct ClientCert {
    cert: PathBuf,
    key: PathBuf,
}

fn connector(ca: &Path, client: Option<&ClientCert>) -> anyhow::Result<TlsConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match client {
        Some(c) => builder.with_client_auth_cert(
            CertificateDer::pem_file_iter(&c.cert)?.collect::<Result<Vec<_>, _>>()?,
            PrivateKeyDer::from_pem_file(&c.key)?,
        )?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

async fn tls(
    addr: SocketAddr,
    ca: &Path,
    client: Option<&ClientCert>,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    Ok(connector(ca, client)?
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?)
}

/// One HTTP/1.1 GET over mutual TLS: (status, body).
async fn https_get(
    addr: SocketAddr,
    ca: &Path,
    client: Option<&ClientCert>,
    path: &str,
) -> anyhow::Result<(u16, String)> {
    let mut stream = tls(addr, ca, client).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    // A server may close without close_notify; what was read still counts.
    if let Err(e) = stream.read_to_end(&mut response).await
        && response.is_empty()
    {
        return Err(e.into());
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("no HTTP header in the response")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status")?;
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "pages are sent with a length"
    );
    Ok((status, body.to_owned()))
}

/// Plain TCP on 127.0.0.1 → mutual TLS to the dashboard as `client`.
async fn tunnel(dashboard: SocketAddr, ca: PathBuf, client: ClientCert) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap();
    let client = Arc::new(client);
    tokio::spawn(async move {
        while let Ok((mut plain, _)) = listener.accept().await {
            let (ca, client) = (ca.clone(), client.clone());
            tokio::spawn(async move {
                if let Ok(mut secure) = tls(dashboard, &ca, Some(&client)).await {
                    let _ = tokio::io::copy_bidirectional(&mut plain, &mut secure).await;
                }
            });
        }
    });
    local
}

fn chromium_args(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

async fn chromium(profile: &Path, extra: &[String], url: &str) -> anyhow::Result<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("chromium")
            .args(chromium_args(profile))
            .args(extra)
            .arg(url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("chromium did not finish within 90 s")?
    .context("cannot run chromium (apt-get install chromium; .ci/run installs it)")?;
    anyhow::ensure!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committee_dashboard_in_headless_chromium() {
    let started = Instant::now();
    let fed = seeded::start_hub(None).await.unwrap();
    let dashboard = fed.hub.dashboard_addr().unwrap();
    // Four centres publish 2021; two of them also 2020 (year on year), and
    // the six others are missing, as the overview must say.
    let mut nodes = Vec::new();
    for id in ["charleroi-thuin", "namur", "liege", "verviers"] {
        nodes.push(seeded::seed_node(&fed, id, 2021).await.unwrap());
    }
    nodes[0].seed_year(2020, false, 0.9).await.unwrap();
    nodes[1].seed_year(2020, false, 0.7).await.unwrap();
    let mut expected_total = 0;
    for node in &nodes {
        let report = node.sync().await.unwrap();
        assert!(report.failures.is_empty(), "{report:?}");
        let csv = node.stats_csv(2021, Dimension::Sector).await.unwrap();
        let total_line = csv.lines().last().unwrap();
        expected_total += total_line
            .rsplit(',')
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap();
    }
    assert!(expected_total > 2000, "{expected_total}");

    let pki_dir = fed.pki_dir();
    let ca = pki_dir.join(pki::CA_CERT);
    let issue = |identity: Identity| {
        let pair = pki::issue(&pki_dir, &identity).unwrap();
        ClientCert {
            cert: pair.cert_path,
            key: pair.key_path,
        }
    };
    let committee = issue(Identity::Committee("inter-clps".to_owned()));
    let namur = issue(Identity::Centre(centre("namur")));

    // Refusals, straight to the dashboard.
    let (status, body) = https_get(dashboard, &ca, Some(&namur), "/").await.unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("réservé aux comités inter-CLPS"), "{body}");
    assert!(!body.contains(&expected_total.to_string()));
    let (status, _) = https_get(dashboard, &ca, Some(&namur), "/stats.csv?year=2021")
        .await
        .unwrap();
    assert_eq!(status, 403);
    let anonymous = https_get(dashboard, &ca, None, "/").await;
    assert!(
        anonymous.is_err(),
        "no certificate, no TLS session: {anonymous:?}"
    );

    // The committee, directly: the CSV download.
    let (status, csv) = https_get(
        dashboard,
        &ca,
        Some(&committee),
        "/stats.csv?year=2021&by=sector&per_centre=1",
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let header = csv.lines().next().unwrap();
    assert!(
        header.starts_with("code,") && header.contains("namur:pret"),
        "{header}"
    );
    assert!(
        csv.lines()
            .last()
            .unwrap()
            .ends_with(&format!(",{expected_total}")),
        "{csv}"
    );
    let (status, body) = https_get(dashboard, &ca, Some(&committee), "/table?by=secteur")
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert!(body.contains("dimension inconnue"), "{body}");

    // The browser, through the committee's tunnel.
    let proxy = tunnel(dashboard, ca.clone(), committee).await;
    let profile = tempfile::tempdir().unwrap();
    let base = format!("http://{proxy}");
    let dom = chromium(
        profile.path(),
        &["--dump-dom".to_owned()],
        &format!("{base}/?year=2021"),
    )
    .await
    .unwrap();
    assert!(dom.contains("Vue d'ensemble 2021"), "{dom}");
    assert!(
        dom.contains(&format!("<div class=\"n\">{expected_total}</div>")),
        "network total {expected_total} shown: {dom}"
    );
    assert!(dom.contains("4/10"), "centres included");
    assert!(dom.contains("sans données"), "missing centres named");
    assert!(dom.contains("<svg"), "charts drawn");
    let table = chromium(
        profile.path(),
        &["--dump-dom".to_owned()],
        &format!("{base}/table?year=2021&by=theme"),
    )
    .await
    .unwrap();
    assert!(table.contains("Comparaison par centre"), "{table}");
    let years = chromium(
        profile.path(),
        &["--dump-dom".to_owned()],
        &format!("{base}/years"),
    )
    .await
    .unwrap();
    assert!(years.contains("2020") && years.contains("Tendance du réseau"));

    let artefacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artefacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let png = artefacts.join("dashboard.png");
    let _ = std::fs::remove_file(&png);
    chromium(
        profile.path(),
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,1600".to_owned(),
        ],
        &format!("{base}/?year=2021"),
    )
    .await
    .unwrap();
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "screenshot of {} bytes",
        bytes.len()
    );
    println!(
        "dashboard: network total {expected_total}, screenshot {} ({} bytes), {:.1} s",
        png.display(),
        bytes.len(),
        started.elapsed().as_secs_f64()
    );
}
