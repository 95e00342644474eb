//! Request cross tables computed from the node's records, and the aggregate
//! figures the node publishes in its statistics document. The table types and
//! their rendering live in `clps_model::stats`, shared with the hub.

use clps_model::stats::{CrossTable, Dimension};
use rusqlite::{Connection, params};

fn sql(by: Dimension) -> &'static str {
    match by {
        Dimension::Sector => {
            "SELECT sector, service_type, count(*) FROM requests
             WHERE date >= ?1 AND date < ?2 GROUP BY 1, 2"
        }
        Dimension::Profession => {
            "SELECT profession, service_type, count(*) FROM requests
             WHERE date >= ?1 AND date < ?2 GROUP BY 1, 2"
        }
        Dimension::ContactMode => {
            "SELECT contact_mode, service_type, count(*) FROM requests
             WHERE date >= ?1 AND date < ?2 GROUP BY 1, 2"
        }
        Dimension::Theme => {
            "SELECT t.theme, r.service_type, count(*) FROM requests r
             JOIN request_themes t ON t.request_id = r.id
             WHERE r.date >= ?1 AND r.date < ?2 GROUP BY 1, 2"
        }
    }
}

/// Computes the cross table of `year` from the request records.
pub fn cross_table(conn: &Connection, year: i32, by: Dimension) -> rusqlite::Result<CrossTable> {
    let mut table = CrossTable::empty(year, by);
    let mut stmt = conn.prepare_cached(sql(by))?;
    let rows = stmt.query_map(
        params![format!("{year:04}-"), format!("{:04}-", year + 1)],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        },
    )?;
    for row in rows {
        let (code, service, n) = row?;
        table.add(&code, &service, u64::try_from(n).unwrap_or(0));
    }
    Ok(table)
}
