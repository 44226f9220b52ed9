use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::reason::{Reason, Rejection};

/// One output row: a text value (PostgreSQL input syntax) or NULL per column, in mapping order.
/// Reused across messages by [`crate::Transformer`], so a row costs no allocation once warm.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Row {
    pub(crate) cells: Vec<String>,
    pub(crate) nulls: Vec<bool>,
}

impl Row {
    pub(crate) fn reset(&mut self, columns: usize) {
        self.cells.resize_with(columns, String::new);
        self.nulls.resize(columns, true);
        self.cells.iter_mut().for_each(String::clear);
        self.nulls.iter_mut().for_each(|n| *n = true);
    }

    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    pub fn get(&self, column: usize) -> Option<&str> {
        (!*self.nulls.get(column)?).then(|| self.cells[column].as_str())
    }

    pub fn values(&self) -> impl Iterator<Item = Option<&str>> {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// One message's result, owned: what a host gets back from the module (decoded by
/// [`crate::wire`]) and hands to its sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Text (PostgreSQL input syntax) or NULL per column, in the module's column order.
    Row(Vec<Option<String>>),
    Rejected {
        reason: Reason,
        message: String,
        encrypted_body: String,
    },
}

impl Outcome {
    pub fn is_row(&self) -> bool {
        matches!(self, Outcome::Row(_))
    }
}

/// A row with its column names, or a rejection, as JSON: the shape that the golden vectors,
/// the `maskflow transform` command and the JavaScript binding share:
/// `{"row": {"user_id": "...", ...}}` or `{"rejection": {"reason": "...", ...}}`.
#[derive(Debug, Clone, PartialEq)]
pub enum OutcomeJson<'a> {
    Row { columns: &'a [String], row: &'a Row },
    Rejection(&'a Rejection),
}

impl Serialize for OutcomeJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut outer = s.serialize_map(Some(1))?;
        match self {
            OutcomeJson::Row { columns, row } => {
                outer.serialize_entry("row", &NamedRow { columns, row })?
            }
            OutcomeJson::Rejection(rejection) => outer.serialize_entry("rejection", rejection)?,
        }
        outer.end()
    }
}

struct NamedRow<'a> {
    columns: &'a [String],
    row: &'a Row,
}

impl Serialize for NamedRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.columns.len()))?;
        for (name, value) in self.columns.iter().zip(self.row.values()) {
            map.serialize_entry(name, &value)?;
        }
        map.end()
    }
}
