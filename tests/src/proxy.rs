//! A TCP proxy under test control, between nodes and the hub: it passes
//! bytes through, delays them, swallows them (a black hole: the connection
//! stays open and nothing arrives, like a dead route), refuses new
//! connections, or cuts every live connection at once. The target can be
//! changed while it runs, so a restarted hub on a new port keeps the
//! address the nodes know.
//!
//! TLS runs end to end through it: the proxy sees only ciphertext.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    /// Every chunk waits this long before it is forwarded.
    Delay(Duration),
    /// Bytes are read and dropped; connections stay open.
    BlackHole,
    /// New connections are closed at once (a stopped hub, a down link).
    Refuse,
}

struct Shared {
    target: Mutex<SocketAddr>,
    mode: watch::Sender<Mode>,
    /// Bumped by [`Proxy::cut`]; every live connection ends when it moves.
    generation: watch::Sender<u64>,
    faults: AtomicU64,
    connections: AtomicU64,
}

pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        // Ends the pumps of live connections too.
        self.shared.generation.send_modify(|g| *g += 1);
    }
}

impl Proxy {
    /// Listens on 127.0.0.1 (port 0) and forwards to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target: Mutex::new(target),
            mode: watch::channel(Mode::Pass).0,
            generation: watch::channel(0).0,
            faults: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        });
        let task = tokio::spawn(accept(listener, shared.clone()));
        Ok(Proxy { addr, shared, task })
    }

    /// The address nodes connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set_target(&self, target: SocketAddr) {
        *self.shared.target.lock().unwrap() = target;
    }

    /// Changes the mode for live and new connections; any mode other than
    /// `Pass` counts as one injected fault.
    pub fn set_mode(&self, mode: Mode) {
        if mode != Mode::Pass {
            self.shared.faults.fetch_add(1, Ordering::Relaxed);
        }
        self.shared.mode.send_replace(mode);
    }

    /// Closes every live connection now (one injected fault).
    pub fn cut(&self) {
        self.shared.faults.fetch_add(1, Ordering::Relaxed);
        self.shared.generation.send_modify(|g| *g += 1);
    }

    /// Faults injected so far (mode changes and cuts).
    pub fn faults(&self) -> u64 {
        self.shared.faults.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        shared.connections.fetch_add(1, Ordering::Relaxed);
        if *shared.mode.borrow() == Mode::Refuse {
            drop(client);
            continue;
        }
        let target = *shared.target.lock().unwrap();
        let shared = shared.clone();
        tokio::spawn(async move {
            let Ok(upstream) = TcpStream::connect(target).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (ur, uw) = upstream.into_split();
            let cut = shared.generation.subscribe();
            let up = pump(cr, uw, shared.mode.subscribe(), cut.clone());
            let down = pump(ur, cw, shared.mode.subscribe(), cut);
            // When either direction ends, both sockets are dropped.
            tokio::select! {
                _ = up => {}
                _ = down => {}
            }
        });
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: watch::Receiver<Mode>,
    mut cut: watch::Receiver<u64>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    cut.mark_unchanged();
    loop {
        let n = tokio::select! {
            _ = cut.changed() => return,
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
        };
        let current = *mode.borrow();
        match current {
            Mode::Pass => {}
            Mode::Delay(d) => {
                tokio::select! {
                    _ = cut.changed() => return,
                    _ = tokio::time::sleep(d) => {}
                }
            }
            Mode::BlackHole => continue,
            // A live connection under Refuse behaves like a dead link.
            Mode::Refuse => return,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
