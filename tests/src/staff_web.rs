//! Helpers of the staff web application's browser tests: accounts made with
//! the CLI, `clps-node serve`/`web` started and their address read from what
//! they print, sign-in, and the accessibility check with a screenshot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::browser::Browser;

pub fn bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(2).unwrap().join(name)
}

/// `clps-node user add` with the password on standard input.
pub async fn add_user(data: &Path, login: &str, role: &str, password: &str) {
    let mut child = Command::new(bin("clps-node"))
        .arg("--data")
        .arg(data)
        .args(["user", "add", login, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `clps-node serve` and returns it with its web address, read from
/// the line it prints once listening.
pub async fn serve(data: &Path) -> (Child, SocketAddr) {
    serve_with(data, &["serve"]).await
}

/// Starts `clps-node ARGS…` (`serve`, or `web` for a node without a hub).
pub async fn serve_with(data: &Path, args: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(bin("clps-node"))
        .arg("--data")
        .arg(data)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("web sur http://").nth(1) {
                return rest
                    .split('/')
                    .next()
                    .unwrap()
                    .parse::<SocketAddr>()
                    .unwrap();
            }
        }
        panic!("serve ended before listening");
    })
    .await
    .expect("serve did not listen within 30 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

pub async fn sign_in(b: &Browser, base: &str, login: &str, password: &str) {
    b.goto(&format!("{base}/connexion")).await.unwrap();
    b.fill("#identifiant", login).await.unwrap();
    b.fill("#mot_de_passe", password).await.unwrap();
    b.click("main button[type=submit]").await.unwrap();
    // Signed in once the page names the account.
    b.wait_for_text("header", login).await.unwrap();
}

/// Checks the page with axe-core and keeps a screenshot of it.
pub async fn check_page(b: &Browser, name: &str) {
    let problems = b.accessibility_problems().await.unwrap();
    assert!(
        problems.is_empty(),
        "{name}: accessibility violations:\n{}",
        problems.join("\n")
    );
    b.screenshot(name).await.unwrap();
}
