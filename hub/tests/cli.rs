//! The `clps-hub` binary as an operator runs it: certificates, then bad
//! input that must get one French sentence, a non-zero exit and nothing
//! written.
//!
//! Being an integration test of this package also makes `cargo test
//! --workspace` build `target/<profile>/clps-hub`, which the federation and
//! fault suites start as a real process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn hub(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clps-hub"))
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn pki_init_then_issue_writes_the_authority_and_a_centre_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let p = pki.to_str().unwrap();

    let out = hub(&["pki", "init", "--dir", p]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("autorité créée"), "{stdout}");
    let after_init = files_in(&pki);
    for expected in ["ca.crt", "ca.key", "hub.crt", "hub.key"] {
        assert!(
            after_init.iter().any(|f| f == expected),
            "{expected} missing: {after_init:?}"
        );
    }

    let out = hub(&["pki", "issue", "--dir", p, "--centre", "charleroi-thuin"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("charleroi-thuin"), "{stdout}");
    let issued = files_in(&pki);
    assert!(
        issued.len() > after_init.len(),
        "no certificate written: {issued:?}"
    );
    let cert = issued
        .iter()
        .find(|f| f.contains("charleroi-thuin") && f.ends_with(".crt"))
        .unwrap_or_else(|| panic!("no charleroi-thuin certificate in {issued:?}"));
    let pem = std::fs::read_to_string(pki.join(cert)).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
}

#[test]
fn issuing_for_an_unknown_centre_fails_in_one_sentence_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let p = pki.to_str().unwrap();
    assert!(hub(&["pki", "init", "--dir", p]).status.success());
    let before = files_in(&pki);

    let out = hub(&["pki", "issue", "--dir", p, "--centre", "atlantide"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("atlantide"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        err.trim().lines().count(),
        1,
        "one sentence expected: {err}"
    );
    assert_eq!(files_in(&pki), before);
}

#[test]
fn issuing_without_an_authority_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("nowhere");
    let out = hub(&[
        "pki",
        "issue",
        "--dir",
        pki.to_str().unwrap(),
        "--centre",
        "liege",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.trim().is_empty());
    assert!(
        !pki.exists(),
        "the failed command created {}",
        pki.display()
    );
}

#[test]
fn serve_with_a_missing_or_broken_configuration_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.toml");
    let out = hub(&["serve", "--config", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("absent.toml"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let broken = dir.path().join("hub.toml");
    std::fs::write(&broken, "listen = [this is not toml\n").unwrap();
    let out = hub(&["serve", "--config", broken.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("hub.toml"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
