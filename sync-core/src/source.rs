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

/// What the engine may assume about a source's pages and cursor, beyond [`Page::truncated`].
///
/// The default describes a source that announces every truncation, has no key paging and no
/// coarse cursor: every field is opt-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SourceCapabilities {
    /// The row cap the source asks for per page (e.g. PeopleSoft `maxrows`), if any.
    pub requested_row_cap: Option<u64>,
    /// True when the remote system may cut a page **below** the requested cap without saying
    /// so (PeopleSoft query profiles do). The engine then never trusts a short page on its
    /// own: it learns the cap from the largest page ever returned and probes ambiguous pages by
    /// splitting their window (see the engine's module docs, "unannounced row caps").
    pub silent_row_cap: bool,
    /// A cap the operator declared (e.g. the query profile's "Max Rows Fetched"): pages of this
    /// many rows or more are treated as truncated, shorter pages as complete, no probing.
    pub declared_row_cap: Option<u64>,
    /// Unannounced caps below this many rows are assumed not to exist: a shorter page is not
    /// probed. Without it, the first page a stream ever sees with rows tied on one cursor value
    /// (a journal's lines share its header's stamp) could never be proven complete.
    pub silent_cap_floor: u64,
    /// The smallest cursor step the source can filter on (one day for date prompts). Windows
    /// are never split below it, and ties are reported at this width.
    pub cursor_granularity: Option<chrono::Duration>,
    /// The smallest lookback that keeps every late row reachable (for example a day plus the
    /// zone offset for date cursors in a site's local calendar). The engine raises a stream's
    /// lookback to it, with a warning.
    pub min_lookback: Option<chrono::Duration>,
    /// True when [`Source::read_after`] can page through rows of one window by key, so rows
    /// tied on one cursor value beyond a page are loaded instead of failing the window.
    pub key_paging: bool,
}

impl SourceCapabilities {
    /// A source that may cut pages below `requested` rows without saying so.
    pub fn silent_cap(requested: u64) -> Self {
        Self {
            requested_row_cap: Some(requested),
            silent_row_cap: true,
            ..Self::default()
        }
    }

    /// Sets the declared cap.
    pub fn declared_cap(mut self, cap: Option<u64>) -> Self {
        self.declared_row_cap = cap;
        self
    }

    /// Sets [`silent_cap_floor`](Self::silent_cap_floor).
    pub fn silent_cap_floor(mut self, rows: u64) -> Self {
        self.silent_cap_floor = rows;
        self
    }

    /// Sets the cursor granularity.
    pub fn granularity(mut self, g: Option<chrono::Duration>) -> Self {
        self.cursor_granularity = g;
        self
    }

    /// Sets the minimum lookback.
    pub fn min_lookback(mut self, d: Option<chrono::Duration>) -> Self {
        self.min_lookback = d;
        self
    }

    /// Declares key paging support.
    pub fn key_paging(mut self, yes: bool) -> Self {
        self.key_paging = yes;
        self
    }
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

    /// What the engine may assume about this source (see [`SourceCapabilities`]). The
    /// default: truncation is always announced, no key paging.
    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::default()
    }

    /// The page of `window` that follows `last` (the last record of the previous page) in key
    /// order, for sources with [`SourceCapabilities::key_paging`]. Called only when a page of a
    /// window that cannot be split further was truncated. `Ok(None)`: not supported.
    async fn read_after(
        &self,
        window: Window,
        last: &Record,
    ) -> Result<Option<Page>, ConnectorError> {
        let _ = (window, last);
        Ok(None)
    }

    /// Counts records whose cursor is NULL (unreachable by cursor windows), if the source can.
    /// `Ok(None)`: cannot count.
    async fn count_null_cursors(&self) -> Result<Option<u64>, ConnectorError> {
        Ok(None)
    }
}

/// A shared source is a source: pipelines and callers can hold the same source in an `Arc`.
#[async_trait]
impl<T: Source + ?Sized> Source for std::sync::Arc<T> {
    fn identity(&self) -> String {
        (**self).identity()
    }

    fn read(&self, window: Window) -> PageStream<'_> {
        (**self).read(window)
    }

    async fn count(&self, window: Window) -> Result<Option<u64>, ConnectorError> {
        (**self).count(window).await
    }

    fn capabilities(&self) -> SourceCapabilities {
        (**self).capabilities()
    }

    async fn read_after(
        &self,
        window: Window,
        last: &Record,
    ) -> Result<Option<Page>, ConnectorError> {
        (**self).read_after(window, last).await
    }

    async fn count_null_cursors(&self) -> Result<Option<u64>, ConnectorError> {
        (**self).count_null_cursors().await
    }
}
