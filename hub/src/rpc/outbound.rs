//! A session's outgoing messages, bounded by bytes as well as by count: the
//! session task queues a message only once the bytes already queued and not
//! yet taken by the transport leave room for it (`limits.max_message_bytes`
//! in all), so a client that asks for the same large document many times
//! and never reads costs the hub one budget, not one copy per request. A
//! session that ends with an error puts its status ahead of whatever is
//! still queued, so the client learns why (a stalled reader gets
//! `DEADLINE_EXCEEDED`, not a silent end).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use clps_proto::pb;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tonic::Status;

type Queued = (pb::ServerMessage, OwnedSemaphorePermit);

/// The session task's end.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Queued>,
    budget: Arc<Semaphore>,
    budget_bytes: u32,
    last: Arc<Mutex<Option<Status>>>,
}

/// What happened to a message handed to [`Outbox::send`].
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    Queued,
    /// The client hung up: nothing more to say.
    Gone,
    /// No room within the timeout: the client does not read.
    Stalled,
}

/// The transport's end: the response stream tonic reads.
#[derive(Debug)]
pub struct Outbound {
    rx: mpsc::Receiver<Queued>,
    last: Arc<Mutex<Option<Status>>>,
    done: bool,
}

/// A bounded outbox: at most `messages` queued, `bytes` in all.
pub fn channel(messages: usize, bytes: usize) -> (Outbox, Outbound) {
    let (tx, rx) = mpsc::channel(messages.max(1));
    let budget_bytes = u32::try_from(bytes.max(1)).unwrap_or(u32::MAX);
    let last = Arc::new(Mutex::new(None));
    (
        Outbox {
            tx,
            budget: Arc::new(Semaphore::new(budget_bytes as usize)),
            budget_bytes,
            last: last.clone(),
        },
        Outbound {
            rx,
            last,
            done: false,
        },
    )
}

impl Outbox {
    /// Queues `message` (of `size` encoded bytes) within `timeout`.
    pub async fn send(&self, message: pb::ServerMessage, size: usize, timeout: Duration) -> Sent {
        // A message larger than the whole budget waits for all of it.
        let want = u32::try_from(size)
            .unwrap_or(u32::MAX)
            .clamp(1, self.budget_bytes);
        let queue = async {
            let Ok(permit) = self.budget.clone().acquire_many_owned(want).await else {
                return Sent::Gone;
            };
            match self.tx.send((message, permit)).await {
                Ok(()) => Sent::Queued,
                Err(_) => Sent::Gone,
            }
        };
        tokio::time::timeout(timeout, queue)
            .await
            .unwrap_or(Sent::Stalled)
    }

    /// Ends the stream with `status`, ahead of anything still queued.
    pub fn fail(&self, status: Status) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
    }
}

impl tokio_stream::Stream for Outbound {
    type Item = Result<pb::ServerMessage, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let take_last = |this: &mut Self| {
            let status = this.last.lock().unwrap_or_else(|e| e.into_inner()).take();
            if status.is_some() {
                this.done = true;
            }
            status
        };
        if let Some(status) = take_last(&mut self) {
            return Poll::Ready(Some(Err(status)));
        }
        match self.rx.poll_recv(cx) {
            // The permit goes with the message: its bytes leave the budget
            // once the transport has taken it.
            Poll::Ready(Some((message, _permit))) => Poll::Ready(Some(Ok(message))),
            Poll::Ready(None) => Poll::Ready(take_last(&mut self).map(Err)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio_stream::StreamExt;

    fn message(n: usize) -> pb::ServerMessage {
        pb::ServerMessage {
            kind: Some(pb::server_message::Kind::Snapshot(pb::Snapshot {
                doc_id: "catalogue/001".to_owned(),
                document: vec![0; n],
                heads: Vec::new(),
            })),
        }
    }

    #[tokio::test]
    async fn bytes_in_flight_are_bounded_and_a_failure_comes_first() {
        let (outbox, mut outbound) = channel(256, 1000);
        let short = Duration::from_millis(50);
        assert_eq!(outbox.send(message(600), 600, short).await, Sent::Queued);
        // 600 of 1000 bytes queued, nobody reads: no room for 600 more.
        assert_eq!(outbox.send(message(600), 600, short).await, Sent::Stalled);
        // Once the transport takes the first, there is.
        assert!(outbound.next().await.unwrap().is_ok());
        assert_eq!(outbox.send(message(600), 600, short).await, Sent::Queued);
        // A failure is delivered ahead of what is still queued, then the end.
        outbox.fail(Status::deadline_exceeded("client did not read"));
        let first = outbound.next().await.unwrap().unwrap_err();
        assert_eq!(first.code(), tonic::Code::DeadlineExceeded);
        assert!(outbound.next().await.is_none());
    }
}
