//! The node's identity and seeded code lists, kept in the `meta` and `vocab`
//! tables: which centre this node belongs to, its instance tag (the second
//! half of its Automerge actor ids), and the code-list version it carries.

use clps_model::{CentreId, vocab};
use rusqlite::{Connection, OptionalExtension, params};

use crate::store::StoreError;

/// What `init` records about the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    pub centre: CentreId,
    /// 8 bytes, hex-encoded; distinguishes installations of one centre.
    pub instance: String,
    pub vocab_version: u32,
}

/// Records the centre and seeds the code lists; refuses a second init.
pub fn init(
    conn: &mut Connection,
    centre: &CentreId,
    instance: [u8; 8],
) -> Result<NodeIdentity, StoreError> {
    if let Some(existing) = identity(conn)? {
        return Err(StoreError::AlreadyInitialised(
            conn.path().map(Into::into).unwrap_or_default(),
            existing.centre.to_string(),
        ));
    }
    let v = vocab::get();
    let instance_hex: String = instance.iter().map(|b| format!("{b:02x}")).collect();
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO meta VALUES ('centre_id', ?1)",
        [centre.as_str()],
    )?;
    tx.execute("INSERT INTO meta VALUES ('instance', ?1)", [&instance_hex])?;
    tx.execute(
        "INSERT INTO meta VALUES ('vocab_version', ?1)",
        [v.version.to_string()],
    )?;
    let lists = [
        ("service_types", &v.service_types),
        ("requester_sectors", &v.requester_sectors),
        ("requester_professions", &v.requester_professions),
        ("contact_modes", &v.contact_modes),
        ("themes", &v.themes),
        ("document_types", &v.document_types),
        ("accompaniment_axes", &v.accompaniment_axes),
        ("points_d_appui", &v.points_d_appui),
        ("ottawa_axes", &v.ottawa_axes),
        ("determinant_layers", &v.determinant_layers),
    ];
    for (name, list) in lists {
        for (position, code) in list.0.iter().enumerate() {
            tx.execute(
                "INSERT INTO vocab (list, code, label, position) VALUES (?1, ?2, ?3, ?4)",
                params![name, code.code, code.label, position as i64],
            )?;
        }
    }
    tx.commit()?;
    Ok(NodeIdentity {
        centre: centre.clone(),
        instance: instance_hex,
        vocab_version: v.version,
    })
}

/// The node's identity, or `None` before `init`.
pub fn identity(conn: &Connection) -> Result<Option<NodeIdentity>, StoreError> {
    let get = |key: &str| -> Result<Option<String>, StoreError> {
        Ok(conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    };
    let Some(centre) = get("centre_id")? else {
        return Ok(None);
    };
    let centre = CentreId::new(&centre).map_err(|e| StoreError::Invalid(e.to_string()))?;
    Ok(Some(NodeIdentity {
        centre,
        instance: get("instance")?.unwrap_or_default(),
        vocab_version: get("vocab_version")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    }))
}

/// The node's identity, or a clear error when the directory was never initialised.
pub fn require_identity(conn: &Connection) -> Result<NodeIdentity, StoreError> {
    identity(conn)?.ok_or_else(|| {
        StoreError::NotInitialised(
            conn.path()
                .and_then(|p| std::path::Path::new(p).parent().map(|d| d.to_owned()))
                .unwrap_or_default(),
        )
    })
}
