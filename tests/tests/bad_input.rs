//! A raw gRPC client (any bytes as the request message) throws malformed
//! and oversized input at the hub: every case gets an error (a stream
//! status or a per-document DocError with the right code), and the hub keeps
//! serving. Also checks that `serve` receives pushed changes without
//! polling.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::BufMut;
use clps_hub::Identity;
use clps_hub::config::Limits;
use clps_model::docs::DocId;
use clps_node::link::{serve, sync_once};
use clps_proto::pb;
use clps_proto::pb::client_message::Kind as ClientKind;
use clps_proto::pb::server_message::Kind as ServerKind;
use clps_tests::{Federation, Node, centre};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::{Code, Status, Streaming};

/// Sends pre-encoded bytes as they are; decodes replies as ServerMessage.
#[derive(Clone, Copy, Default)]
struct RawCodec;
struct RawEncoder;
struct ServerDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for ServerDecoder {
    type Item = pb::ServerMessage;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<pb::ServerMessage>, Status> {
        pb::ServerMessage::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = pb::ServerMessage;
    type Encoder = RawEncoder;
    type Decoder = ServerDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> ServerDecoder {
        ServerDecoder
    }
}

struct RawSession {
    tx: mpsc::Sender<Vec<u8>>,
    rx: Streaming<pb::ServerMessage>,
}

async fn open(fed: &Federation, identity: &Identity) -> RawSession {
    let channel = fed.channel(identity).await.unwrap();
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(64 << 20);
    grpc.ready().await.unwrap();
    let (tx, rx) = mpsc::channel(16);
    let response = grpc
        .streaming(
            tonic::Request::new(ReceiverStream::new(rx)),
            PathAndQuery::from_static("/clps.sync.v1.Sync/Session"),
            RawCodec,
        )
        .await
        .unwrap();
    RawSession {
        tx,
        rx: response.into_inner(),
    }
}

fn encode(kind: ClientKind) -> Vec<u8> {
    pb::ClientMessage { kind: Some(kind) }.encode_to_vec()
}

fn hello() -> Vec<u8> {
    encode(ClientKind::Hello(pb::Hello::default()))
}

fn sync(doc_id: &str, message: Vec<u8>) -> Vec<u8> {
    encode(ClientKind::Sync(pb::DocSync {
        doc_id: doc_id.to_owned(),
        message,
    }))
}

impl RawSession {
    async fn send(&self, bytes: Vec<u8>) {
        self.tx.send(bytes).await.unwrap();
    }

    async fn next(&mut self) -> Result<Option<pb::ServerMessage>, Status> {
        tokio::time::timeout(Duration::from_secs(10), self.rx.message())
            .await
            .expect("hub answers in time")
    }

    async fn doc_error(&mut self) -> pb::DocError {
        match self.next().await {
            Ok(Some(pb::ServerMessage {
                kind: Some(ServerKind::Error(e)),
            })) => e,
            other => panic!("expected a DocError, got {other:?}"),
        }
    }

    async fn welcome(&mut self) -> pb::Welcome {
        match self.next().await {
            Ok(Some(pb::ServerMessage {
                kind: Some(ServerKind::Welcome(w)),
            })) => w,
            other => panic!("expected a Welcome, got {other:?}"),
        }
    }

    async fn status(&mut self) -> Status {
        loop {
            match self.next().await {
                Err(status) => return status,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("stream ended without a status"),
            }
        }
    }
}

/// A sync message (valid framing) carrying one chunk that is not a change.
fn sync_message_with_bad_change() -> Vec<u8> {
    automerge::sync::Message {
        heads: vec![],
        need: vec![],
        have: vec![],
        changes: automerge::sync::ChunkList::from(vec![vec![
            0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 1, 3, 1, 2, 3,
        ]]),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
    .encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_input_gets_errors_and_the_hub_keeps_serving() {
    let limits = Limits {
        max_message_bytes: 1 << 20,
        max_doc_bytes: 256 << 10,
        hello_timeout_secs: 1,
        ..Limits::default()
    };
    let fed = Federation::start(Vec::new(), limits).await.unwrap();
    let namur = Identity::Centre(centre("namur"));

    // Malformed protobuf as the first message: the stream fails, cleanly.
    let mut s = open(&fed, &namur).await;
    s.send(vec![0x0a, 0xff, 0xff, 0xff, 0xff]).await;
    let status = s.status().await;
    assert_eq!(status.code(), Code::Internal, "{status:?}");

    // A first message that is not a Hello.
    let mut s = open(&fed, &namur).await;
    s.send(sync("catalogue/001", vec![])).await;
    assert_eq!(s.status().await.code(), Code::InvalidArgument);

    // No Hello at all: the session times out.
    let mut s = open(&fed, &namur).await;
    assert_eq!(s.status().await.code(), Code::DeadlineExceeded);

    // Per-document errors inside a healthy session.
    let mut s = open(&fed, &namur).await;
    s.send(hello()).await;
    let welcome = s.welcome().await;
    assert_eq!(welcome.identity, "centre/namur");
    let cases: Vec<(Vec<u8>, Code)> = vec![
        (
            sync("catalogue/001", b"not a sync message".to_vec()),
            Code::InvalidArgument,
        ),
        (sync("nothing/x", vec![]), Code::InvalidArgument),
        (sync("catalogue/7", vec![]), Code::InvalidArgument),
        (sync("appui/secret", vec![0x42]), Code::PermissionDenied),
        (
            sync("stats/namur", sync_message_with_bad_change()),
            Code::InvalidArgument,
        ),
        (
            sync("catalogue/003", vec![0u8; 300 << 10]),
            Code::ResourceExhausted,
        ),
        (
            encode(ClientKind::Fetch(pb::Fetch {
                doc_ids: vec!["catalogue/002".to_owned()],
            })),
            Code::NotFound,
        ),
    ];
    for (bytes, code) in cases {
        s.send(bytes).await;
        let e = s.doc_error().await;
        assert_eq!(Code::from_i32(e.code), code, "{e:?}");
    }
    // Still the same session: a Hello is answered.
    s.send(hello()).await;
    s.welcome().await;
    // A message above the message limit ends the stream with a status.
    s.send(sync("catalogue/004", vec![7u8; 2 << 20])).await;
    let status = s.status().await;
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );

    // The hub still serves: listing and a real sync work.
    let listed = fed.list_spaces(&namur).await.unwrap();
    assert_eq!(listed.identity, "centre/namur");
    let node = Node::centre(&fed, "namur").unwrap();
    node.create_record(1, "Après la tempête").unwrap();
    let report = sync_once(&node.config, &node.store).await.unwrap();
    assert!(report.failures.is_empty(), "{report:?}");
    assert!(report.changes_up >= 2);
    assert!(clps_hub::metrics::Metrics::get(&fed.hub.metrics().doc_errors) >= 7);

    fed.hub.shutdown();
    fed.hub.join().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_receives_pushed_changes_without_polling() {
    let fed = Federation::start(Vec::new(), Limits::default())
        .await
        .unwrap();
    let mut listener = Node::centre(&fed, "luxembourg").unwrap();
    // Local polling effectively off: anything that arrives was pushed.
    listener.config.local_poll = Duration::from_secs(3600);
    let writer = Node::centre(&fed, "liege").unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let listener = std::sync::Arc::new(listener);
    let serving = {
        let listener = listener.clone();
        tokio::spawn(async move {
            serve(&listener.config, &listener.store, async {
                let _ = stop_rx.await;
            })
            .await
        })
    };
    // Wait until the serving session is open (the hub counts it).
    let metrics = fed.hub.metrics();
    clps_tests::wait_for("one active session", || {
        clps_hub::metrics::Metrics::get(&metrics.sessions_active) == 1
    })
    .await;

    let id = writer.create_record(1, "Outil poussé").unwrap();
    let report = sync_once(&writer.config, &writer.store).await.unwrap();
    assert!(report.failures.is_empty(), "{report:?}");
    let doc_id = DocId::catalogue(clps_model::docs::catalogue::bucket_of(&id));
    let expected = writer.store.heads(&doc_id);
    clps_tests::wait_for("the listener holds the new heads", || {
        listener.store.heads(&doc_id) == expected
    })
    .await;

    stop_tx.send(()).unwrap();
    serving.await.unwrap().unwrap();
    fed.hub.shutdown();
    fed.hub.join().await.unwrap();
}
