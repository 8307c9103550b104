//! One captured change as it travels: what `sync_log` holds on the box, what the hub keeps per
//! school. The row is the whole row after the change (the receiver may lack the row, e.g. a
//! replacement box); `changed` names the columns an update changed, for per-field last writer
//! wins on shared tables.

use serde::{Deserialize, Serialize};

use crate::Hlc;

/// Insert, update or delete; on the wire `I`, `U`, `D`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "I")]
    Insert,
    #[serde(rename = "U")]
    Update,
    #[serde(rename = "D")]
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "I",
            Op::Update => "U",
            Op::Delete => "D",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        match s {
            "I" => Some(Op::Insert),
            "U" => Some(Op::Update),
            "D" => Some(Op::Delete),
            _ => None,
        }
    }
}

/// A change of one row of one table, at one position of its origin's log. The log it belongs
/// to is the segment's (all the changes of a segment come from one log).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    #[serde(rename = "s")]
    pub seq: u64,
    #[serde(rename = "h")]
    pub hlc: Hlc,
    #[serde(rename = "t")]
    pub table: String,
    /// The row key, lower-case hex of the 16-byte UUIDv7.
    #[serde(rename = "k")]
    pub key: String,
    #[serde(rename = "o")]
    pub op: Op,
    /// The row after the change, column → value (blobs as lower-case hex); `None` for a delete.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub row: Option<serde_json::Map<String, serde_json::Value>>,
    /// The columns an update changed.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
}

impl Change {
    /// The row's `scope` (`school:<code>`, `national`), which decides who may send it.
    pub fn scope(&self) -> Option<&str> {
        self.row.as_ref()?.get("scope")?.as_str()
    }
}
