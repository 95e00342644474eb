//! The EVRAS point d'appui across three centres and a real hub (mutual TLS on
//! loopback): each centre's node is a real SQLite data directory joined with
//! `federation::join`, written through `clps_node::appui` (what `clps-node
//! appui …` runs) and synced with `link::sync_once` over `NodeDocStore` (what
//! `clps-node sync` runs).
//!
//! Offline, three centres edit the same co-written document in different
//! places and list organisations, two of them the same one under different
//! spellings; after syncing there is one merged document and one directory
//! entry carrying both centres' notes. A version named before the edits reads
//! back byte-identical everywhere. A centre outside the scheme is denied.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use clps_hub::config::{Limits, SpaceConfig};
use clps_hub::{Identity, pki};
use clps_model::CentreId;
use clps_model::docs::AppuiDoc;
use clps_model::docs::appui::ServiceInput;
use clps_node::appui::{self, Access, AppuiError};
use clps_node::federation::{self, NodeConfig, NodeDocStore};
use clps_node::link::{SyncReport, sync_once};
use clps_node::store::{OpenMode, Store};
use clps_tests::{Federation, centre};
use tempfile::TempDir;

const SCHEME: &str = "evras";
const DOC: &str = "texte-reference";
const BASE: &str = "Le texte de référence EVRAS.\nIl parle de l'école.\nFin.";

/// One centre's node: its data directory and store.
struct CentreNode {
    id: CentreId,
    dir: TempDir,
    store: Store,
}

impl CentreNode {
    async fn new(fed: &Federation, id: &str, instance: u8) -> CentreNode {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), OpenMode::Create).unwrap();
        let c = centre(id);
        let cc = c.clone();
        store
            .call(move |conn| clps_node::centre::init(conn, &cc, [instance; 8]))
            .await
            .unwrap();
        // Issue the centre's certificate, then join as `clps-node join` does.
        fed.link_config(&Identity::Centre(c.clone())).unwrap();
        let pki_dir = fed.pki_dir();
        federation::join(
            dir.path(),
            &fed.hub.local_addr().to_string(),
            "localhost",
            &pki_dir.join(pki::CA_CERT),
            &pki_dir.join(format!("centre-{id}.crt")),
            &pki_dir.join(format!("centre-{id}.key")),
            federation::WebChoice::Off,
        )
        .unwrap();
        CentreNode { id: c, dir, store }
    }

    async fn sync(&self) -> SyncReport {
        let config = NodeConfig::load(self.dir.path())
            .unwrap()
            .link_config(self.dir.path())
            .unwrap();
        let docs = NodeDocStore {
            store: self.store.clone(),
        };
        sync_once(&config, &docs).await.unwrap()
    }

    async fn sync_ok(&self) {
        let r = self.sync().await;
        assert!(r.failures.is_empty(), "{}: {:?}", self.id, r.failures);
    }

    async fn write<T: Send + 'static>(
        &self,
        access: Access,
        edit: impl FnOnce(&mut AppuiDoc) -> Result<T, AppuiError> + Send + 'static,
    ) -> T {
        self.store
            .call(move |c| appui::with_appui(c, SCHEME, access, edit))
            .await
            .unwrap()
    }

    async fn read<T: Send + 'static>(&self, f: impl FnOnce(&AppuiDoc) -> T + Send + 'static) -> T {
        self.store
            .call(move |c| Ok(f(&appui::open(c, SCHEME)?)))
            .await
            .unwrap()
    }

    async fn heads(&self) -> Vec<automerge::ChangeHash> {
        self.read(|d| d.automerge().clone().get_heads()).await
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn edit_body(
    from: &str,
    to: &str,
) -> impl FnOnce(&mut AppuiDoc) -> Result<(), AppuiError> + Send + 'static {
    let (from, to) = (from.to_owned(), to.to_owned());
    move |d| {
        let body = appui::document_version(d, DOC, None)?.text;
        assert!(body.contains(&from), "{body}");
        d.update_document(DOC, &body.replacen(&from, &to, 1))
            .map_err(|e| appui::french(e, None))
    }
}

fn service(name: &str, commune: &str, note: &str) -> ServiceInput {
    ServiceInput {
        name: name.to_owned(),
        org_type: Some("asbl".to_owned()),
        themes: ["assuetudes".to_owned()].into(),
        communes: [commune.to_owned()].into(),
        email: Some("info@infor-drogues.be".to_owned()),
        note: Some(note.to_owned()),
        ..ServiceInput::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_centres_merge_the_evras_repository_through_the_hub() {
    let fed = Federation::start(
        vec![SpaceConfig {
            id: "appui:evras".to_owned(),
            writers: ["namur", "liege", "charleroi-thuin"]
                .map(str::to_owned)
                .to_vec(),
            readers: Vec::new(),
        }],
        Limits::default(),
    )
    .await
    .unwrap();
    let namur = CentreNode::new(&fed, "namur", 1).await;
    let liege = CentreNode::new(&fed, "liege", 2).await;
    let charleroi = CentreNode::new(&fed, "charleroi-thuin", 3).await;
    let bruxelles = CentreNode::new(&fed, "bruxelles", 4).await;
    assert!(namur.path() != liege.path());

    // Namur creates the repository, invites the two others, starts the
    // reference text and names its first version; everyone syncs once.
    namur
        .write(Access::Create, |d| {
            d.join().map_err(|e| appui::french(e, None))
        })
        .await;
    for invited in ["liege", "charleroi-thuin"] {
        let c = centre(invited);
        namur
            .write(Access::Member, move |d| {
                d.invite(&c).map_err(|e| appui::french(e, None))
            })
            .await;
    }
    namur
        .write(Access::Member, |d| {
            d.create_document(DOC, "L'EVRAS à l'école", BASE)
                .map_err(|e| appui::french(e, None))?;
            d.name_version(DOC, "brouillon 2021-10")
                .map_err(|e| appui::french(e, None))
        })
        .await;
    namur.sync_ok().await;
    liege.sync_ok().await;
    charleroi.sync_ok().await;
    let members = charleroi.read(|d| d.members()).await;
    assert_eq!(members.len(), 3, "{members:?}");

    // Offline: each edits another part of the text and the directory; Namur
    // and Liège list the same organisation under two spellings.
    namur
        .write(Access::Member, edit_body("Le texte", "Notre texte"))
        .await;
    liege
        .write(
            Access::Member,
            edit_body("l'école.", "l'école et des CPMS."),
        )
        .await;
    charleroi
        .write(Access::Member, edit_body("Fin.", "Fin (relu à Charleroi)."))
        .await;
    namur
        .write(Access::Member, |d| {
            d.upsert_service(&service(
                "Infor-Drogues ASBL",
                "Namur",
                "Permanence téléphonique",
            ))
            .map_err(|e| appui::french(e, None))
        })
        .await;
    liege
        .write(Access::Member, |d| {
            d.upsert_service(&service("infor drogues", "Liège", "Anime en secondaire"))
                .map_err(|e| appui::french(e, None))
        })
        .await;
    charleroi
        .write(Access::Member, |d| {
            d.upsert_service(&ServiceInput {
                name: "O'YES".to_owned(),
                note: Some("Formations pour enseignants".to_owned()),
                ..ServiceInput::default()
            })
            .map_err(|e| appui::french(e, None))
        })
        .await;

    // Sync all three, then once more so the first gets what the last brought.
    for _ in 0..2 {
        for node in [&namur, &liege, &charleroi] {
            node.sync_ok().await;
        }
    }
    let heads = namur.heads().await;
    assert_eq!(liege.heads().await, heads);
    assert_eq!(charleroi.heads().await, heads);

    // One merged document, character by character.
    let body = charleroi
        .read(|d| appui::document_version(d, DOC, None).unwrap().text)
        .await;
    assert_eq!(
        body,
        "Notre texte de référence EVRAS.\nIl parle de l'école et des CPMS.\nFin (relu à Charleroi)."
    );
    // The version named before the edits reads back byte-identical, on
    // every node.
    for node in [&namur, &liege, &charleroi] {
        let v = node
            .read(|d| d.version_text(DOC, "brouillon 2021-10").unwrap())
            .await;
        assert_eq!(v.as_deref().map(str::as_bytes), Some(BASE.as_bytes()));
    }

    // One directory entry for the organisation, with both centres' notes.
    let services = liege.read(|d| d.services()).await;
    assert_eq!(services.len(), 2, "{services:#?}");
    let infor = services.iter().find(|s| s.key.contains("infor")).unwrap();
    assert_eq!(
        infor.listed_by,
        [centre("namur"), centre("liege")].into(),
        "{infor:#?}"
    );
    assert_eq!(infor.notes[&centre("namur")], "Permanence téléphonique");
    assert_eq!(infor.notes[&centre("liege")], "Anime en secondaire");
    assert_eq!(
        infor.communes,
        ["Liège".to_owned(), "Namur".to_owned()].into()
    );
    // The two spellings of the name are an ordinary, visible conflict.
    let conflicts = liege.read(|d| d.conflicts()).await;
    assert!(
        conflicts.iter().any(|c| c.key.ends_with("|name")),
        "{conflicts:?}"
    );

    // A centre outside the scheme: it may write its own copy, the hub
    // refuses it and gives it nothing of the members' repository.
    bruxelles
        .write(Access::Join, |d| {
            d.join().map_err(|e| appui::french(e, None))
        })
        .await;
    let r = bruxelles.sync().await;
    assert_eq!(r.failures.len(), 1, "{r:?}");
    assert_eq!(r.failures[0].code, tonic::Code::PermissionDenied);
    assert_eq!(r.failures[0].doc_id, "appui/evras");
    let seen = bruxelles.read(|d| d.members()).await;
    assert_eq!(seen, [centre("bruxelles")].into());
    assert!(bruxelles.read(|d| d.services()).await.is_empty());
    // ...and the members' repository is untouched.
    namur.sync_ok().await;
    assert_eq!(namur.heads().await, heads);

    fed.hub.shutdown();
    fed.hub.join().await.unwrap();
}
