//! Accounts (`users`) and their Supabase links. Always the primary: a sign-in must see the
//! account that was just registered. Sign-in limits: [`crate::sign_in`].

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

/// An account found by its Supabase user id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupabaseAccount {
    pub user: User,
    /// Whether the link may be used to sign in: the account has no password (its Supabase
    /// user created it), or its password proved the link. Links made before that proof was
    /// required (by e-mail alone) are not trusted.
    pub trusted: bool,
}

/// The outcome of creating an account for a Supabase user with a verified address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupabaseCreate {
    Created(User),
    /// Another request created (or linked) this Supabase user's account a moment ago.
    Existing(SupabaseAccount),
    /// An account has this e-mail. `linked_elsewhere`: it is linked, with proof, to a
    /// different Supabase user; otherwise its password can prove a link.
    EmailTaken {
        linked_elsewhere: bool,
    },
}

/// The outcome of linking a Supabase user to an account whose password was proven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupabaseLinkOutcome {
    Linked(User),
    /// The account is linked, with proof, to another Supabase user, or this Supabase user
    /// signs in to another account.
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

/// Whether a Supabase link is trusted (see [`SupabaseAccount::trusted`]), as SQL over `users`.
const LINK_TRUSTED: &str = "(password_hash IS NULL OR supabase_linked_at IS NOT NULL)";

impl FromRow for SupabaseAccount {
    /// Reads [`USER_COLUMNS`] and `trusted`.
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(SupabaseAccount { user: User::from_row(row)?, trusted: row.column("trusted")? })
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

    /// The account a Supabase user signs in to, if any.
    pub async fn by_supabase_id(&self, supabase_id: &str) -> Result<Option<SupabaseAccount>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!("SELECT {USER_COLUMNS}, {LINK_TRUSTED} AS trusted FROM users WHERE supabase_user_id = $1");
        let rows = conn.query("finding a Supabase account", &sql, &[(&supabase_id, Type::TEXT)]).await?;
        row::first(&rows)
    }

    /// Creates a customer account without a password for a Supabase user whose address is
    /// verified. Never touches an existing account: an address that has one is
    /// [`SupabaseCreate::EmailTaken`], and only that account's password can link it.
    pub async fn create_for_supabase(
        &self,
        supabase_id: &str,
        email: &Email,
        name: Option<&str>,
    ) -> Result<SupabaseCreate, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!(
            "INSERT INTO users (email, name, supabase_user_id, role) VALUES ($1, $2, $3, 'customer') \
             ON CONFLICT DO NOTHING RETURNING {USER_COLUMNS}"
        );
        let rows = conn
            .query(
                "creating a Supabase account",
                &sql,
                &[(&email.as_str(), Type::TEXT), (&name, Type::TEXT), (&supabase_id, Type::TEXT)],
            )
            .await?;
        if let Some(user) = row::first::<User>(&rows)? {
            return Ok(SupabaseCreate::Created(user));
        }
        drop(conn);
        if let Some(account) = self.by_supabase_id(supabase_id).await? {
            return Ok(SupabaseCreate::Existing(account));
        }
        let conn = self.db.primary.conn().await?;
        let rows = conn
            .query(
                "finding the account of an e-mail",
                &format!(
                    "SELECT supabase_user_id IS NOT NULL AND supabase_user_id <> $2 AND {LINK_TRUSTED} AS linked_elsewhere \
                     FROM users WHERE email = $1"
                ),
                &[(&email.as_str(), Type::TEXT), (&supabase_id, Type::TEXT)],
            )
            .await?;
        let linked_elsewhere = match rows.first() {
            Some(row) => row.column("linked_elsewhere")?,
            None => false,
        };
        Ok(SupabaseCreate::EmailTaken { linked_elsewhere })
    }

    /// Links a Supabase user to an account whose password the caller just proved, replacing
    /// an untrusted link (one made by e-mail alone, on this account or another) but never a
    /// proven one.
    pub async fn link_supabase(&self, id: UserId, supabase_id: &str) -> Result<SupabaseLinkOutcome, StoreError> {
        let mut conn = self.db.primary.conn().await?;
        let tx = conn.transaction().await?;
        tx.query(
            "releasing an untrusted Supabase link",
            &format!(
                "UPDATE users SET supabase_user_id = NULL \
                 WHERE supabase_user_id = $1 AND id <> $2 AND NOT {LINK_TRUSTED}"
            ),
            &[(&supabase_id, Type::TEXT), (&id.as_uuid(), Type::UUID)],
        )
        .await?;
        let sql = format!(
            "UPDATE users SET supabase_user_id = $2, supabase_linked_at = now() \
             WHERE id = $1 AND (supabase_user_id IS NULL OR supabase_user_id = $2 OR NOT {LINK_TRUSTED}) \
             RETURNING {USER_COLUMNS}"
        );
        let result = tx
            .query("linking a Supabase account", &sql, &[(&id.as_uuid(), Type::UUID), (&supabase_id, Type::TEXT)])
            .await;
        let rows = match result {
            Ok(rows) => rows,
            // The Supabase user signs in to another account, with proof.
            Err(StoreError::Query { source, .. }) if source.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                return Ok(SupabaseLinkOutcome::Conflict);
            }
            Err(e) => return Err(e),
        };
        let Some(user) = row::first::<User>(&rows)? else {
            return Ok(SupabaseLinkOutcome::Conflict);
        };
        tx.commit().await?;
        Ok(SupabaseLinkOutcome::Linked(user))
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
