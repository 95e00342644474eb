//! `clps-bench-web`: the staff web application's response times at the
//! network's size, with concurrent signed-in sessions.
//!
//! It opens a node data directory filled by `clps-bench-search --data DIR`
//! (200,000 records by default there), creates a staff account, serves the
//! web application in-process through `NodeServer` on 127.0.0.1 port 0, and
//! signs in `--sessions` clients (10). Each client then loops, for
//! `--seconds`: a search page (the search bench's kinds of queries), a
//! record page of a result, and every tenth round an edit of a record's
//! description with a word of its own, followed by searches until that word
//! shows (the edit « visible in search »). Times are measured at the client
//! over loopback HTTP/1.1 (connect, request, whole response), an upper
//! bound of the server time. Targets: search p99 < 30 ms, record p99 <
//! 15 ms, edit visible p99 < 50 ms.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use clps_node::app::Node;
use clps_node::app::accounts::Role;
use clps_node::server::{NodeServer, ServeOptions};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

#[derive(Debug, Parser)]
#[command(
    name = "clps-bench-web",
    about = "Measures the staff web application's response times"
)]
struct Args {
    /// A node data directory filled by `clps-bench-search --data DIR`.
    #[arg(long)]
    data: PathBuf,
    /// Concurrent signed-in sessions.
    #[arg(long, default_value_t = 10)]
    sessions: usize,
    /// How long the sessions run.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

const WORDS: &[&str] = &[
    "santé",
    "jeunes",
    "prevention",
    "education",
    "alimentation",
    "ecole",
    "emotions",
    "alcool",
    "relations",
    "jeu",
    "tabac",
    "famille",
    "harcelement",
    "ecrans",
    "animation",
    "guide",
    "outil pedagogique",
    "estime de soi",
    "activite physique",
    "sante mentale",
    "emo",
    "assu",
];

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: &str,
    body: &str,
) -> anyhow::Result<(u16, String, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !cookie.is_empty() {
        head.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if method == "POST" {
        head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    head.push_str("\r\n");
    head.push_str(body);
    stream.write_all(head.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    let (headers, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    Ok((status, headers.to_owned(), body.to_owned()))
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Signs in; returns the session cookie and its CSRF token.
async fn sign_in(
    addr: SocketAddr,
    login: &str,
    password: &str,
) -> anyhow::Result<(String, String)> {
    let (_, headers, _) = request(addr, "GET", "/connexion", "", "").await?;
    let token = between(&headers, "clps_connexion=", ";")
        .context("no login cookie")?
        .to_owned();
    let body = format!(
        "csrf={token}&suite=%2F&identifiant={login}&mot_de_passe={}",
        enc(password)
    );
    let (status, headers, _) = request(
        addr,
        "POST",
        "/connexion",
        &format!("clps_connexion={token}"),
        &body,
    )
    .await?;
    if status != 303 {
        bail!("sign-in answered {status}");
    }
    let session = between(&headers, "clps_session=", ";")
        .context("no session")?
        .to_owned();
    let cookie = format!("clps_session={session}");
    let (_, _, home) = request(addr, "GET", "/", &cookie, "").await?;
    let csrf = between(&home, "name=\"csrf\" value=\"", "\"")
        .context("no csrf")?
        .to_owned();
    Ok((cookie, csrf))
}

#[derive(Debug, Default, Serialize)]
struct Times {
    search_ms: Vec<f64>,
    record_ms: Vec<f64>,
    edit_visible_ms: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct Percentiles {
    n: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn percentiles(times: &[f64]) -> Percentiles {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |p: f64| {
        if sorted.is_empty() {
            return 0.0;
        }
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    };
    Percentiles {
        n: sorted.len(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: sorted.last().copied().unwrap_or(0.0),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let node = Node::open(&args.data)
        .await
        .context("open the node (fill it with clps-bench-search --data DIR)")?;
    let records = node.catalogue_count().await?;
    let password = "mot de passe du banc d'essai";
    if !node.users().await?.iter().any(|u| u.login == "banc") {
        node.add_user("banc", Role::Documentaliste, password, None)
            .await?;
    }
    let server = NodeServer::bind(
        node,
        ServeOptions {
            link: None,
            web: Some(("127.0.0.1:0".parse()?, None)),
            publish: false,
        },
    )
    .await?;
    let addr = server.web_addr().context("no web address")?;
    eprintln!(
        "{records} notices ; application web sur http://{addr}/ ; {} sessions pendant {} s",
        args.sessions, args.seconds
    );
    let times = Arc::new(Mutex::new(Times::default()));
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let mut clients = Vec::new();
    for i in 0..args.sessions {
        let (cookie, csrf) = sign_in(addr, "banc", password).await?;
        let times = times.clone();
        clients.push(tokio::spawn(async move {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i as u64);
            let mut round = 0u64;
            while Instant::now() < until {
                round += 1;
                let word = WORDS[rng.random_range(0..WORDS.len())];
                let t = Instant::now();
                let (status, _, page) = request(
                    addr,
                    "GET",
                    &format!("/catalogue?q={}", enc(word)),
                    &cookie,
                    "",
                )
                .await?;
                let search = ms(t.elapsed());
                anyhow::ensure!(status == 200, "search answered {status}");
                let Some(id) = between(&page, "href=\"/notices/", "\"").map(str::to_owned) else {
                    times.lock().await.search_ms.push(search);
                    continue;
                };
                let t = Instant::now();
                let (status, _, _) =
                    request(addr, "GET", &format!("/notices/{id}"), &cookie, "").await?;
                let record_ms = ms(t.elapsed());
                anyhow::ensure!(status == 200, "record answered {status}");
                {
                    let mut times = times.lock().await;
                    times.search_ms.push(search);
                    times.record_ms.push(record_ms);
                }
                if !round.is_multiple_of(10) {
                    continue;
                }
                // An edit, then searches until it shows.
                let (_, _, form) =
                    request(addr, "GET", &format!("/notices/{id}/modifier"), &cookie, "").await?;
                let base = between(&form, "name=\"base\" value=\"", "\"")
                    .unwrap_or("")
                    .replace("&quot;", "\"")
                    .replace("&amp;", "&")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">");
                let Ok(base_form) =
                    serde_json::from_str::<clps_node::app::catalogue::RecordForm>(&base)
                else {
                    continue;
                };
                let marker = format!("bancessai{i}x{round}");
                let mut new = base_form.clone();
                new.description = format!("{} {marker}", base_form.description);
                let mut body = format!("csrf={csrf}&base={}", enc(&base));
                for (k, v) in [
                    ("title", &new.title),
                    ("doc_type", &new.doc_type),
                    ("creator", &new.creator),
                    ("publisher", &new.publisher),
                    ("year", &new.year),
                    ("publics", &new.publics),
                    ("age_min", &new.age_min),
                    ("age_max", &new.age_max),
                    ("description", &new.description),
                    ("conditions", &new.conditions),
                    ("languages", &new.languages),
                    ("links", &new.links),
                ] {
                    body.push_str(&format!("&{k}={}", enc(v)));
                }
                for theme in &new.themes {
                    body.push_str(&format!("&themes={}", enc(theme)));
                }
                let t = Instant::now();
                let (status, _, _) =
                    request(addr, "POST", &format!("/notices/{id}"), &cookie, &body).await?;
                if status != 303 {
                    continue;
                }
                loop {
                    let (_, _, found) =
                        request(addr, "GET", &format!("/catalogue?q={marker}"), &cookie, "")
                            .await?;
                    if found.contains(&format!("/notices/{id}\"")) {
                        break;
                    }
                    anyhow::ensure!(t.elapsed() < Duration::from_secs(10), "edit never visible");
                }
                times.lock().await.edit_visible_ms.push(ms(t.elapsed()));
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for c in clients {
        c.await??;
    }
    server.shutdown();
    server.join().await?;
    let times = times.lock().await;
    let report = serde_json::json!({
        "records": records,
        "sessions": args.sessions,
        "seconds": args.seconds,
        "search_page": percentiles(&times.search_ms),
        "record_page": percentiles(&times.record_ms),
        "edit_visible_in_search": percentiles(&times.edit_visible_ms),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(path) = args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
