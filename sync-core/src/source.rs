//! The [`Source`] trait: reads one stream's records for a cursor window.

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::error::ConnectorError;
use crate::value::Record;
use crate::window::Window;

/// One page of records from a source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// The records, in the order the source returned them.
    pub records: Vec<Record>,
    /// True when the page hit the source's row cap, so rows may be missing: the engine then
    /// splits the window and reads each half.
    pub truncated: bool,
}

/// A stream of pages for one window.
pub type PageStream<'a> = BoxStream<'a, Result<Page, ConnectorError>>;

/// A source of records for **one stream** (one query, one table).
///
/// The engine calls [`read`](Source::read) with half-open cursor windows `[from, to)`; the
/// source returns every record whose cursor is in the window, as a stream of pages. A source
/// must report truncation honestly ([`Page::truncated`]); it must not silently drop rows.
///
/// The trait is object-safe: pipelines hold `Arc<dyn Source>`.
#[async_trait]
pub trait Source: Send + Sync {
    /// A short identity for lineage and audit, e.g. `peoplesoft://erp.example.com:443/PSFT_EP/VENDORS`.
    /// Must not contain secrets.
    fn identity(&self) -> String;

    /// Reads the records whose cursor is in `window`.
    fn read(&self, window: Window) -> PageStream<'_>;

    /// Counts the records whose cursor is in `window`, for completeness checks. Sources that
    /// cannot count cheaply may read and count; `Ok(None)` means "cannot count".
    async fn count(&self, window: Window) -> Result<Option<u64>, ConnectorError> {
        let _ = window;
        Ok(None)
    }
}
