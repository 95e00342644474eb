//! The node's operations, as every interface calls them.
//!
//! [`Node`] is the one handle an adapter holds: the store, the centre's
//! identity, the clock and the source of randomness. Each operation runs in
//! one store call (one transaction when it writes), takes and returns plain
//! typed data, and fails with its domain's error enum, whose
//! [`ErrorKind`] tells an adapter which status to answer (404, 409, 422...).
//! Wording for people is the adapter's job: the CLI and the web application
//! turn these errors into French sentences.
//!
//! Adapters (`cli`, `web`) call what is here and never open SQL or Automerge
//! themselves (see `ARCHITECTURE.md`, "API boundary of the node").

pub mod accounts;
pub mod catalogue;
pub mod circulation;
pub mod local;
pub mod report;
pub mod sync;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use clps_model::CentreId;
use rand::{RngCore, SeedableRng};

use crate::centre::NodeIdentity;
use crate::store::{OpenMode, Store, StoreError};

/// What kind of failure an operation met: what an adapter maps to a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The thing asked for does not exist.
    NotFound,
    /// The request contradicts the current state (already exists, taken...).
    Conflict,
    /// The input breaks a rule; nothing was written.
    Invalid,
    /// The caller may not do this.
    Forbidden,
    /// The node cannot do it now (disk full, database locked, hub down).
    Unavailable,
}

impl StoreError {
    /// The kind of a storage failure.
    pub fn kind(&self) -> ErrorKind {
        use clps_model::docs::DocError;
        match self {
            StoreError::MissingDir(_) | StoreError::NotInitialised(_) => ErrorKind::NotFound,
            StoreError::AlreadyInitialised(..) => ErrorKind::Conflict,
            StoreError::Foreign(_) | StoreError::NewerSchema { .. } => ErrorKind::Unavailable,
            StoreError::Locked(_)
            | StoreError::DiskFull(_)
            | StoreError::ReadOnly(_)
            | StoreError::DiskIo(_)
            | StoreError::Sqlite(_)
            | StoreError::Closed => ErrorKind::Unavailable,
            StoreError::Invalid(_) | StoreError::Record(_) => ErrorKind::Invalid,
            StoreError::Doc(e) => match e {
                DocError::UnknownRecord(_) => ErrorKind::NotFound,
                DocError::RecordExists(_) => ErrorKind::Conflict,
                DocError::NotOwner { .. } => ErrorKind::Forbidden,
                DocError::Automerge(_)
                | DocError::WrongKind { .. }
                | DocError::SchemaTooNew(_)
                | DocError::WrongDocument { .. } => ErrorKind::Unavailable,
                DocError::WrongBucket { .. }
                | DocError::UnknownCode { .. }
                | DocError::BadSlug(_)
                | DocError::PersonalData { .. }
                | DocError::Invalid(_) => ErrorKind::Invalid,
            },
        }
    }
}

/// The clock operations read: the system's, or a fixed instant in tests.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    /// Seconds since the epoch.
    Fixed(i64),
}

impl Clock {
    /// Seconds since the epoch.
    pub fn now(self) -> i64 {
        match self {
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            Clock::Fixed(t) => t,
        }
    }
}

/// Where identifiers, session tokens and salts come from.
enum Entropy {
    System,
    /// Reproducible, for tests.
    Seeded(Box<Mutex<rand_chacha::ChaCha20Rng>>),
}

struct Inner {
    store: Store,
    data: Option<PathBuf>,
    identity: NodeIdentity,
    clock: Clock,
    entropy: Entropy,
    /// The search page's facet lists, recomputed at most every
    /// [`catalogue::FACETS_SECONDS`] (they scan the whole catalogue).
    facets: Mutex<Option<(std::time::Instant, catalogue::Facets)>>,
}

/// The node, as an adapter holds it. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("centre", &self.inner.identity.centre)
            .field("data", &self.inner.data)
            .finish()
    }
}

impl Node {
    /// Opens an initialised data directory.
    pub async fn open(data: &Path) -> Result<Node, StoreError> {
        let store = Store::open(data, OpenMode::Existing)?;
        let identity = store.call(|c| crate::centre::require_identity(c)).await?;
        Ok(Node::with(
            store,
            Some(data.to_owned()),
            identity,
            Clock::System,
        ))
    }

    /// Initialises a data directory for `centre` and opens it.
    pub async fn create(data: &Path, centre: &CentreId) -> Result<Node, StoreError> {
        let store = Store::open(data, OpenMode::Create)?;
        let identity = init(&store, centre, random_bytes(&Entropy::System)).await?;
        Ok(Node::with(
            store,
            Some(data.to_owned()),
            identity,
            Clock::System,
        ))
    }

    /// A node of `centre` in memory, with a fixed clock and seeded
    /// randomness: for tests of the operations.
    pub async fn in_memory(centre: &CentreId, now: i64, seed: u64) -> Result<Node, StoreError> {
        let store = Store::in_memory()?;
        let entropy = Entropy::Seeded(Box::new(Mutex::new(
            rand_chacha::ChaCha20Rng::seed_from_u64(seed),
        )));
        let identity = init(&store, centre, random_bytes(&entropy)).await?;
        let mut node = Node::with(store, None, identity, Clock::Fixed(now));
        if let Some(inner) = Arc::get_mut(&mut node.inner) {
            inner.entropy = entropy;
        }
        Ok(node)
    }

    fn with(store: Store, data: Option<PathBuf>, identity: NodeIdentity, clock: Clock) -> Node {
        Node {
            inner: Arc::new(Inner {
                store,
                data,
                identity,
                clock,
                entropy: Entropy::System,
                facets: Mutex::new(None),
            }),
        }
    }

    /// The centre this node belongs to.
    pub fn centre(&self) -> &CentreId {
        &self.inner.identity.centre
    }

    pub fn identity(&self) -> &NodeIdentity {
        &self.inner.identity
    }

    /// The data directory (`None` in memory).
    pub fn data_dir(&self) -> Option<&Path> {
        self.inner.data.as_deref()
    }

    /// Seconds since the epoch, by the node's clock.
    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    pub(crate) fn facets_cache(
        &self,
    ) -> std::sync::MutexGuard<'_, Option<(std::time::Instant, catalogue::Facets)>> {
        self.inner.facets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `N` random bytes.
    pub fn random<const N: usize>(&self) -> [u8; N] {
        random_bytes(&self.inner.entropy)
    }

    /// The storage actor, for the node's own modules (the link, the
    /// publisher). Adapters never use it.
    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }
}

fn random_bytes<const N: usize>(entropy: &Entropy) -> [u8; N] {
    let mut out = [0u8; N];
    match entropy {
        Entropy::System => rand::rng().fill_bytes(&mut out),
        Entropy::Seeded(rng) => match rng.lock() {
            Ok(mut rng) => rng.fill_bytes(&mut out),
            Err(poisoned) => poisoned.into_inner().fill_bytes(&mut out),
        },
    }
    out
}

async fn init(
    store: &Store,
    centre: &CentreId,
    instance: [u8; 8],
) -> Result<NodeIdentity, StoreError> {
    let centre = centre.clone();
    store
        .call(move |conn| crate::centre::init(conn, &centre, instance))
        .await
}
