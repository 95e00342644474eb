//! A real browser for the web pages: Debian's `chromium` driven through
//! its `chromedriver` (WebDriver), with `axe-core` injected in pages to
//! check their accessibility, and screenshots kept under
//! `target/web-screenshots/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// A chromedriver process and one headless Chromium session.
pub struct Browser {
    pub client: Client,
    _driver: Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

/// A free loopback port (chromedriver takes a port, not a listener).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Where the screenshots go: `target/web-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/<test> → target/
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("web-screenshots")
}

/// axe-core's script: `CLPS_AXE`, or where `tests/run.sh` installs it.
fn axe_source() -> anyhow::Result<String> {
    let path = std::env::var_os("CLPS_AXE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            screenshot_dir()
                .with_file_name("test-tools")
                .join("node_modules/axe-core/axe.min.js")
        });
    std::fs::read_to_string(&path).with_context(|| {
        format!(
            "axe-core introuvable ({}) : lancez tests/run.sh, qui l'installe depuis npm",
            path.display()
        )
    })
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> anyhow::Result<Browser> {
        let port = free_port()?;
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("chromedriver introuvable : tests/run.sh installe chromium-driver")?;
        let url = format!("http://127.0.0.1:{port}");
        // Ready once it says so on its standard output.
        let stdout = driver.stdout.take().context("chromedriver stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if line.contains("started successfully") {
                    return Ok(());
                }
            }
            bail!("chromedriver exited before listening")
        })
        .await
        .context("chromedriver did not start within 30 s")??;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let profile = tempfile::tempdir()?;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,1000", "--lang=fr-BE",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .context("cannot open a Chromium session")?;
        let shots = screenshot_dir();
        std::fs::create_dir_all(&shots)?;
        Ok(Browser {
            client,
            _driver: driver,
            _profile: profile,
            shots,
        })
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        Ok(self.client.goto(url).await?)
    }

    pub async fn path(&self) -> anyhow::Result<String> {
        let url = self.client.current_url().await?;
        Ok(match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        })
    }

    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("no {css}"))?;
        field.clear().await?;
        field.send_keys(text).await?;
        Ok(())
    }

    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("no {css}"))?
            .click()
            .await?;
        Ok(())
    }

    /// Clicks the link or button showing `text`.
    pub async fn click_text(&self, text: &str) -> anyhow::Result<()> {
        let xpath =
            format!("//a[normalize-space()={text:?}] | //button[normalize-space()={text:?}]");
        self.client
            .find(Locator::XPath(&xpath))
            .await
            .with_context(|| format!("no link or button « {text} »"))?
            .click()
            .await?;
        Ok(())
    }

    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        Ok(self
            .client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("no {css}"))?
            .text()
            .await?)
    }

    /// The text of `css` once it contains `needle` (pages that htmx updates
    /// in place are read again until then, for at most 10 s).
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> anyhow::Result<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let found = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.ok(),
                Err(_) => None,
            };
            match found {
                Some(text) if text.contains(needle) => return Ok(text),
                other if std::time::Instant::now() > deadline => {
                    bail!("{css} never contained « {needle} »: {other:?}")
                }
                _ => tokio::task::yield_now().await,
            }
        }
    }

    /// The path (and query) once it starts with `prefix` (a click's
    /// navigation may still be under way), for at most 10 s.
    pub async fn wait_for_path(&self, prefix: &str) -> anyhow::Result<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let path = self.path().await?;
            if path.starts_with(prefix) {
                return Ok(path);
            }
            if std::time::Instant::now() > deadline {
                bail!("still at {path}, not at {prefix}");
            }
            tokio::task::yield_now().await;
        }
    }

    /// The visible text of the whole page.
    pub async fn body(&self) -> anyhow::Result<String> {
        self.text("body").await
    }

    /// Saves a screenshot as `target/web-screenshots/NAME.png`.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// Runs axe-core in the page; returns the serious and critical
    /// violations (rule, impact, help, first target).
    pub async fn accessibility_problems(&self) -> anyhow::Result<Vec<String>> {
        let source = axe_source()?;
        self.client.execute(&source, vec![]).await?;
        let result = self
            .client
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                   window.axe.run(document, { resultTypes: ['violations'] })
                     .then(r => done(JSON.stringify(r.violations)))
                     .catch(e => done(JSON.stringify({ error: String(e) })));"#,
                vec![],
            )
            .await?;
        let text = result.as_str().unwrap_or("[]");
        let violations: serde_json::Value = serde_json::from_str(text)?;
        if let Some(error) = violations.get("error") {
            bail!("axe-core failed: {error}");
        }
        Ok(violations
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(|v| {
                format!(
                    "{} ({}): {} — {}",
                    v["id"].as_str().unwrap_or("?"),
                    v["impact"].as_str().unwrap_or("?"),
                    v["help"].as_str().unwrap_or(""),
                    v["nodes"][0]["target"]
                )
            })
            .collect())
    }

    /// The value of a cookie the browser holds for the current site
    /// (HttpOnly ones included: WebDriver sees them).
    pub async fn cookie(&self, name: &str) -> anyhow::Result<String> {
        Ok(self.client.get_named_cookie(name).await?.value().to_owned())
    }
}

/// One raw HTTP/1.1 request; returns the status code and the body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let (status, bytes) = http_bytes(addr, method, path, headers, body).await?;
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// The same, with the body as bytes (downloads).
pub async fn http_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await??;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of HTTP headers")?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status")?;
    Ok((status, answer[split + 4..].to_vec()))
}
