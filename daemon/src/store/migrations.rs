//! Ordered schema migrations. The store records the version it was last migrated to; each
//! migration moves it one version up, inside one transaction.

use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::{Result, StoreError};

const VERSION_KEY: &[u8] = b"schema_version";

/// The schema this berthd writes.
pub const SCHEMA_VERSION: u32 = 1;

type Migration =
    fn(&TransactionalTree) -> std::result::Result<(), ConflictableTransactionError<StoreError>>;

/// Migration `i` moves the schema from version `i` to `i + 1`.
const MIGRATIONS: [Migration; 1] = [
    // 0 → 1: the initial layout (nothing to convert).
    |_| Ok(()),
];

pub fn run(db: &sled::Db) -> Result<()> {
    loop {
        let current = match db.get(VERSION_KEY)? {
            Some(v) if v.len() == 4 => u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
            _ => 0,
        };
        if current > SCHEMA_VERSION {
            return Err(StoreError::TooNew { found: current });
        }
        if current == SCHEMA_VERSION {
            return Ok(());
        }
        let step = MIGRATIONS[current as usize];
        db.transaction(|tx| {
            step(tx)?;
            tx.insert(VERSION_KEY, &(current + 1).to_be_bytes())?;
            Ok(())
        })
        .map_err(|e| match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
        })?;
        db.flush()?;
        tracing::info!(
            from = current,
            to = current + 1,
            "migrated the metadata store"
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        super::run(&db).unwrap();
        db.insert(super::VERSION_KEY, &99u32.to_be_bytes()).unwrap();
        assert!(super::run(&db).is_err());
    }
}
