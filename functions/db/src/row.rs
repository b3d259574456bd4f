//! Reading rows by column name.
//!
//! Each row type is built from a row in one [`FromRow`] implementation that reads its
//! columns by name, so a statement may list its columns in any order, and a column that is
//! missing, NULL where the field is not optional, of the wrong type or holding a value the
//! domain refuses becomes [`StoreError::Corrupt`] naming the column — never a panic, never
//! a value silently read from its neighbour.
//!
//! Why hand-written and not a derive (`postgres-from-row`, `tokio-pg-mapper`): few fields
//! are used as they are stored. Ids become newtypes, cents become `Cents`, state names are
//! parsed into enums and JSON into domain types, and `domain` does not (and must not) know
//! the driver's `FromSql`, so the orphan rule leaves no place for the impls a derive would
//! need. A derive would map the plain fields and leave the rest to code like this anyway.

use std::fmt::Display;
use std::str::FromStr;

use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use crate::pool::StoreError;

/// A type built from one row of a statement that selects its columns by name.
pub trait FromRow: Sized {
    fn from_row(row: &Row) -> Result<Self, StoreError>;
}

/// Named, fallible column reads.
pub trait RowExt {
    /// The column `name` as `T` (`Option<T>` for a nullable column).
    fn column<'a, T: FromSql<'a>>(&'a self, name: &str) -> Result<T, StoreError>;

    /// The text column `name` parsed with `FromStr`: a state or kind name.
    fn parsed<T>(&self, name: &str) -> Result<T, StoreError>
    where
        T: FromStr,
        T::Err: Display;

    /// The nullable text column `name` parsed with `FromStr`.
    fn parsed_opt<T>(&self, name: &str) -> Result<Option<T>, StoreError>
    where
        T: FromStr,
        T::Err: Display;
}

impl RowExt for Row {
    fn column<'a, T: FromSql<'a>>(&'a self, name: &str) -> Result<T, StoreError> {
        self.try_get(name).map_err(|e| corrupt_column(name, e))
    }

    fn parsed<T>(&self, name: &str) -> Result<T, StoreError>
    where
        T: FromStr,
        T::Err: Display,
    {
        let raw: &str = self.column(name)?;
        raw.parse().map_err(|e| corrupt_column(name, e))
    }

    fn parsed_opt<T>(&self, name: &str) -> Result<Option<T>, StoreError>
    where
        T: FromStr,
        T::Err: Display,
    {
        let raw: Option<&str> = self.column(name)?;
        raw.map(|raw| raw.parse().map_err(|e| corrupt_column(name, e))).transpose()
    }
}

/// The error for a column that cannot be read as its field.
pub fn corrupt_column(name: &str, why: impl Display) -> StoreError {
    StoreError::Corrupt(format!("column {name}: {why}"))
}

/// The first row a statement returned, built as `T`; `None` when it returned none.
pub(crate) fn first<T: FromRow>(rows: &[Row]) -> Result<Option<T>, StoreError> {
    rows.first().map(T::from_row).transpose()
}

/// Every row a statement returned, built as `T`.
pub(crate) fn all<T: FromRow>(rows: &[Row]) -> Result<Vec<T>, StoreError> {
    rows.iter().map(T::from_row).collect()
}

/// The row a statement must return (an `INSERT … RETURNING`), built as `T`.
pub(crate) fn one<T: FromRow>(rows: &[Row], doing: &str) -> Result<T, StoreError> {
    let row = rows.first().ok_or_else(|| StoreError::Corrupt(format!("{doing} returned no row")))?;
    T::from_row(row)
}
