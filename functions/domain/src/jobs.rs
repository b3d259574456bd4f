//! Cut-out jobs: the message that asks for one, and the states a job and its assets take.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The one message the job queue carries: "cut out this job's upload". It lives here, not
/// with the queue adapters, because both ends speak it: the API sends it and the worker
/// (which links no queue client) parses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CutoutMessage {
    pub job_id: Uuid,
    pub asset_id: Uuid,
}

/// A state name the code does not know: stored data and code disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownState {
    pub what: &'static str,
    pub value: String,
}

macro_rules! state_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every state, in the order the lifecycle visits them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name stored in the database and shown in the API.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;

            fn from_str(s: &str) -> Result<Self, UnknownState> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownState { what: $what, value: other.to_owned() }),
                }
            }
        }
    };
}

state_enum! {
    /// Where a cut-out job is. `done` and `error` are final for an attempt; an `error` job
    /// may be superseded by a new request for the same upload.
    JobStatus, "job status" {
        Queued = "queued",
        Running = "running",
        Done = "done",
        Error = "error",
    }
}

impl JobStatus {
    /// The storefront stops polling once a job is here.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Error)
    }
}

state_enum! {
    /// What an asset is: the customer's `upload`, or one of the cut-out's products.
    AssetKind, "asset kind" {
        Upload = "upload",
        Original = "original",
        Mask = "mask",
        Transparent = "transparent",
        Proof = "proof",
    }
}

impl AssetKind {
    /// What a design may place on a garment: the upload itself or a cut-out's picture. A
    /// mask is an intermediate and a proof is made from a design, so neither is artwork.
    pub const ARTWORK: &'static [AssetKind] = &[AssetKind::Upload, AssetKind::Original, AssetKind::Transparent];
}

state_enum! {
    /// Where an upload is: `pending` from the presigned PUT's reservation until
    /// `POST /api/uploads/{id}/complete` has checked the file and recorded its asset.
    UploadStatus, "upload status" {
        Pending = "pending",
        Completed = "completed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_stored_names() {
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(*status));
            assert_eq!(serde_json::to_string(status).unwrap(), format!("\"{status}\""));
        }
        for kind in AssetKind::ALL {
            assert_eq!(kind.as_str().parse::<AssetKind>(), Ok(*kind));
        }
        for status in UploadStatus::ALL {
            assert_eq!(status.as_str().parse::<UploadStatus>(), Ok(*status));
        }
        assert_eq!("finished".parse::<JobStatus>(), Err(UnknownState { what: "job status", value: "finished".into() }));
    }

    #[test]
    fn only_done_and_error_are_final() {
        let finals: Vec<_> = JobStatus::ALL.iter().filter(|s| s.is_final()).collect();
        assert_eq!(finals, [&JobStatus::Done, &JobStatus::Error]);
    }

    #[test]
    fn masks_and_proofs_are_not_artwork() {
        let not_artwork: Vec<_> = AssetKind::ALL.iter().filter(|k| !AssetKind::ARTWORK.contains(k)).collect();
        assert_eq!(not_artwork, [&AssetKind::Mask, &AssetKind::Proof]);
    }

    #[test]
    fn the_message_refuses_unknown_fields() {
        let id = Uuid::nil();
        let json = format!(r#"{{"job_id":"{id}","asset_id":"{id}","extra":1}}"#);
        assert!(serde_json::from_str::<CutoutMessage>(&json).is_err());
    }
}
