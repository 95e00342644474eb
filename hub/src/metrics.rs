//! The hub's counters, rendered in the Prometheus text format at `/metrics`
//! by a small axum server. Plain atomics: no registry crate is needed for a
//! dozen series.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use tokio::net::TcpListener;

/// Upper bounds (seconds) of the sync latency histogram buckets.
const LATENCY_BUCKETS: [f64; 9] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5];

#[derive(Debug, Default)]
pub struct Metrics {
    pub sessions_total: AtomicU64,
    pub sessions_active: AtomicU64,
    pub handshakes_failed: AtomicU64,
    pub wire_bytes_in: AtomicU64,
    pub wire_bytes_out: AtomicU64,
    pub payload_bytes_in: AtomicU64,
    pub payload_bytes_out: AtomicU64,
    pub changes_accepted: AtomicU64,
    pub changes_rejected: AtomicU64,
    /// Changes received before their dependencies and held until they came.
    pub changes_held: AtomicU64,
    pub doc_errors: AtomicU64,
    pub snapshots_sent: AtomicU64,
    pub compactions: AtomicU64,
    /// Sessions refused because their identity held too many already.
    pub sessions_refused: AtomicU64,
    /// Connections closed after the handshake: the identity held
    /// max_connections_per_identity already.
    pub connections_refused: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Time the hub took to handle one sync message (validate, merge,
    /// commit, answer).
    pub fn observe_sync(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, &AtomicU64); 14] = [
            (
                "clps_hub_sessions_total",
                "Sync sessions opened.",
                &self.sessions_total,
            ),
            (
                "clps_hub_tls_handshakes_failed_total",
                "TLS handshakes refused or failed.",
                &self.handshakes_failed,
            ),
            (
                "clps_hub_wire_bytes_in_total",
                "Bytes read from clients (TLS records).",
                &self.wire_bytes_in,
            ),
            (
                "clps_hub_wire_bytes_out_total",
                "Bytes written to clients (TLS records).",
                &self.wire_bytes_out,
            ),
            (
                "clps_hub_payload_bytes_in_total",
                "Protobuf bytes of session messages received.",
                &self.payload_bytes_in,
            ),
            (
                "clps_hub_payload_bytes_out_total",
                "Protobuf bytes of session messages sent.",
                &self.payload_bytes_out,
            ),
            (
                "clps_hub_changes_accepted_total",
                "Automerge changes validated and stored.",
                &self.changes_accepted,
            ),
            (
                "clps_hub_changes_rejected_total",
                "Sync messages refused by write validation.",
                &self.changes_rejected,
            ),
            (
                "clps_hub_changes_held_total",
                "Changes received before their dependencies (a Bloom filter false positive at the sender), held until they came.",
                &self.changes_held,
            ),
            (
                "clps_hub_doc_errors_total",
                "Per-document errors sent to clients.",
                &self.doc_errors,
            ),
            (
                "clps_hub_snapshots_sent_total",
                "Whole-document snapshots sent.",
                &self.snapshots_sent,
            ),
            (
                "clps_hub_compactions_total",
                "Document compactions.",
                &self.compactions,
            ),
            (
                "clps_hub_connections_refused_total",
                "Connections closed after the handshake: the identity held max_connections_per_identity already.",
                &self.connections_refused,
            ),
            (
                "clps_hub_sessions_refused_total",
                "Sessions refused: the identity held max_sessions_per_identity already.",
                &self.sessions_refused,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                Self::get(value)
            );
        }
        let _ = writeln!(
            out,
            "# HELP clps_hub_sessions_active Sync sessions open now.\n# TYPE clps_hub_sessions_active gauge\nclps_hub_sessions_active {}",
            Self::get(&self.sessions_active)
        );
        let name = "clps_hub_sync_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to handle one sync message.\n# TYPE {name} histogram"
        );
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", Self::get(bucket));
        }
        let count = Self::get(&self.latency_count);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = Self::get(&self.latency_sum_micros) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
        out
    }
}

async fn metrics_handler(State(metrics): State<Arc<Metrics>>) -> String {
    metrics.render()
}

/// Binds the metrics endpoint; the returned future serves until `shutdown`.
pub async fn bind(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> std::io::Result<(
    SocketAddr,
    impl FnOnce(tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(metrics);
    let start = move |mut shutdown: tokio::sync::watch::Receiver<bool>| {
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    crate::server::stopped(&mut shutdown).await;
                })
                .await
        })
    };
    Ok((local, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        Metrics::add(&m.changes_accepted, 3);
        m.observe_sync(Duration::from_millis(3));
        let text = m.render();
        assert!(text.contains("clps_hub_changes_accepted_total 3"));
        assert!(text.contains("clps_hub_sync_latency_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("clps_hub_sync_latency_seconds_count 1"));
    }
}
