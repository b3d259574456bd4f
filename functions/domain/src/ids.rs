//! Identifiers as newtypes, so a variant id can never be passed where a product id belongs.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID read from a trusted source (the database).
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The underlying UUID, for queries.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A product (a garment style such as `classic-tee`).
    ProductId
);
uuid_id!(
    /// One sellable colour/size of a product.
    VariantId
);
uuid_id!(
    /// A decoration method such as screen printing.
    DecorationMethodId
);
uuid_id!(
    /// A discount rule.
    PriceRuleId
);
uuid_id!(
    /// An account (customer with saved designs, or staff).
    UserId
);
uuid_id!(
    /// A checkout identity, found or created by email.
    CustomerId
);
uuid_id!(
    /// An order.
    OrderId
);
uuid_id!(
    /// A saved design.
    DesignId
);
uuid_id!(
    /// A stored object (upload, cut-out, proof).
    AssetId
);
uuid_id!(
    /// An upload in flight: reserved by the API, completed once the file has arrived.
    UploadId
);
uuid_id!(
    /// A background-removal job.
    JobId
);
uuid_id!(
    /// A guest's media capability: who started an upload without an account. Never trusted
    /// on its own: a request proves it with an HMAC-signed guest token (see the API's
    /// `guest` module), so knowing the id grants nothing.
    GuestId
);
