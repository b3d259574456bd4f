//! Accounts and sign-in limits (`users`, `login_attempts`). Always the primary: a sign-in
//! must see the account that was just registered.

use domain::{Email, Role, UserId};
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use crate::pool::{Database, StoreError};
use crate::row::{self, FromRow, RowExt};

/// An account as the API needs it. The password hash never leaves the store except to be
/// verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    pub supabase_user_id: Option<String>,
    pub created_at: OffsetDateTime,
}

/// A user with the stored hash, for password sign-in.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: Option<String>,
}

/// Failed sign-ins in the current window, per e-mail and per client IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCounts {
    pub by_email: i64,
    pub by_ip: i64,
}

/// The outcome of a Supabase sign-in's lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupabaseLink {
    /// Found by Supabase id, linked by e-mail, or created.
    User(User),
    /// An account with this e-mail is linked to a different Supabase user.
    Conflict,
}

const USER_COLUMNS: &str = "id, email, name, role, supabase_user_id, created_at";

impl FromRow for User {
    /// Reads [`USER_COLUMNS`].
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(User {
            id: UserId::from_uuid(row.column("id")?),
            email: row.column("email")?,
            name: row.column("name")?,
            role: row.parsed("role")?,
            supabase_user_id: row.column("supabase_user_id")?,
            created_at: row.column("created_at")?,
        })
    }
}

impl FromRow for Credentials {
    /// Reads [`USER_COLUMNS`] and `password_hash`.
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(Credentials { user: User::from_row(row)?, password_hash: row.column("password_hash")? })
    }
}

impl FromRow for FailureCounts {
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(FailureCounts { by_email: row.column("by_email")?, by_ip: row.column("by_ip")? })
    }
}

#[derive(Clone)]
pub struct Accounts {
    db: Database,
}

impl Accounts {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Creates a customer account; `None` when the e-mail is taken.
    pub async fn register(
        &self,
        email: &Email,
        name: Option<&str>,
        password_hash: &str,
    ) -> Result<Option<User>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!(
            "INSERT INTO users (email, name, password_hash, role) VALUES ($1, $2, $3, 'customer') \
             ON CONFLICT (email) DO NOTHING RETURNING {USER_COLUMNS}"
        );
        let rows = conn
            .query(
                "registering an account",
                &sql,
                &[(&email.as_str(), Type::TEXT), (&name, Type::TEXT), (&password_hash, Type::TEXT)],
            )
            .await?;
        row::first(&rows)
    }

    pub async fn credentials(&self, email: &Email) -> Result<Option<Credentials>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1");
        let rows = conn.query("finding an account", &sql, &[(&email.as_str(), Type::TEXT)]).await?;
        row::first(&rows)
    }

    pub async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let rows = conn.query("finding an account by id", &sql, &[(&id.as_uuid(), Type::UUID)]).await?;
        row::first(&rows)
    }

    /// Failed sign-ins since `window_secs` ago for this e-mail and this IP.
    pub async fn recent_failures(
        &self,
        email: &str,
        client_ip: &str,
        window_secs: i64,
    ) -> Result<FailureCounts, StoreError> {
        let conn = self.db.primary.conn().await?;
        let rows = conn
            .query(
                "counting failed sign-ins",
                "SELECT count(*) FILTER (WHERE email = $1) AS by_email, count(*) FILTER (WHERE client_ip = $2) AS by_ip \
                 FROM login_attempts \
                 WHERE created_at > now() - make_interval(secs => $3::float8) AND (email = $1 OR client_ip = $2)",
                &[(&email, Type::TEXT), (&client_ip, Type::TEXT), (&(window_secs as f64), Type::FLOAT8)],
            )
            .await?;
        row::one(&rows, "counting failed sign-ins")
    }

    /// Records a failed sign-in, and sweeps records older than a day.
    pub async fn record_failure(&self, email: &str, client_ip: &str) -> Result<(), StoreError> {
        let conn = self.db.primary.conn().await?;
        conn.query(
            "recording a failed sign-in",
            "WITH swept AS (DELETE FROM login_attempts WHERE created_at < now() - interval '1 day') \
             INSERT INTO login_attempts (email, client_ip) VALUES ($1, $2)",
            &[(&email, Type::TEXT), (&client_ip, Type::TEXT)],
        )
        .await?;
        Ok(())
    }

    /// Finds the account of a verified Supabase user: by Supabase id, else by e-mail (linking
    /// it), else creates a customer account without a password.
    pub async fn supabase_sign_in(
        &self,
        supabase_id: &str,
        email: &Email,
        name: Option<&str>,
    ) -> Result<SupabaseLink, StoreError> {
        let mut conn = self.db.primary.conn().await?;
        let tx = conn.transaction().await?;
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE supabase_user_id = $1");
        let rows = tx.query("finding a Supabase account", &sql, &[(&supabase_id, Type::TEXT)]).await?;
        if let Some(row) = rows.first() {
            return Ok(SupabaseLink::User(User::from_row(row)?));
        }
        let sql = format!(
            "INSERT INTO users (email, name, supabase_user_id, role) VALUES ($1, $2, $3, 'customer') \
             ON CONFLICT (email) DO UPDATE SET supabase_user_id = EXCLUDED.supabase_user_id \
               WHERE users.supabase_user_id IS NULL \
             RETURNING {USER_COLUMNS}"
        );
        let result = tx
            .query(
                "linking a Supabase account",
                &sql,
                &[(&email.as_str(), Type::TEXT), (&name, Type::TEXT), (&supabase_id, Type::TEXT)],
            )
            .await;
        let rows = match result {
            Ok(rows) => rows,
            // Another request linked the same Supabase id a moment ago.
            Err(StoreError::Query { source, .. }) if source.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                return Ok(SupabaseLink::Conflict);
            }
            Err(e) => return Err(e),
        };
        let Some(row) = rows.first() else {
            return Ok(SupabaseLink::Conflict);
        };
        let user = User::from_row(row)?;
        tx.commit().await?;
        Ok(SupabaseLink::User(user))
    }

    /// Sets a role (operators and tests; no HTTP route grants roles).
    pub async fn set_role(&self, id: UserId, role: Role) -> Result<bool, StoreError> {
        let conn = self.db.primary.conn().await?;
        let rows = conn
            .query(
                "setting a role",
                "UPDATE users SET role = $2 WHERE id = $1 RETURNING id",
                &[(&id.as_uuid(), Type::UUID), (&role.as_str(), Type::TEXT)],
            )
            .await?;
        Ok(!rows.is_empty())
    }
}
