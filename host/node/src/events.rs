//! The node's event stream: the domain events of every committed batch,
//! journaled beside the batch's commands in the same durable commit, one
//! event stream per shard.
//!
//! A shard writer derives the events of each command right after applying
//! it (`bazaar_kernel::event::derive_events`, which reads the new stock
//! levels and order totals from the state) and summarises refused checkout
//! attempts per store, SKU and reason. At the end of a batch the events go
//! to the journal as one record of the shard's event stream, in the same
//! append as the commands: an event exists exactly when its command is
//! durable. Replay does not need them (it rebuilds state from commands);
//! consumers read them with [`EventReader`].
//!
//! Event records are compacted when the shard snapshots: every record each
//! analytics consumer of the shard has passed is deleted (the journal's
//! snapshot mechanism with an empty payload, in the batch's own commit),
//! and none is kept beyond [`EVENT_RECORDS_RETAINED_MAX`].
//!
//! An event's sequence number is unique node-wide and increases within a
//! shard (so within a store): `record << 28 | index << 8 | shard`, where
//! `record` is the event record's position in its stream and `index` the
//! event's position in the record.

use std::sync::Arc;

use bazaar_kernel::event::{Event, EventKind};
use bazaar_kernel::model::StoreId;
use bazaar_kernel::money::Currency;
use bazaar_store::{Storage, StoreError};
use serde::{Deserialize, Serialize};

/// Event streams are numbered after the command streams: shard `i`'s events
/// are stream `EVENT_STREAM_OFFSET + i`. Far above any shard count.
pub const EVENT_STREAM_OFFSET: u32 = 1 << 20;
/// Most shards a node may have: the shard index takes 8 bits of a sequence.
pub const SHARDS_MAX: u32 = 256;
/// Most events in one record: the index takes 20 bits of a sequence. A
/// batch of `BATCH_REQUESTS_MAX` orders of at most `ORDER_LINES_MAX` lines
/// yields about 300,000 at worst.
pub const EVENTS_PER_RECORD_MAX: usize = 1 << 20;
/// Event records a shard keeps for a consumer that lags: about as many
/// batches as a busy shard writes in a day at a flash sale's pace. Beyond
/// it the oldest records are dropped at the next snapshot even if a
/// consumer has not read them, so a dead consumer cannot fill the disk;
/// that consumer skips what was dropped.
pub const EVENT_RECORDS_RETAINED_MAX: u64 = 4_000_000;
/// Event records one read returns at most, to bound a consumer's memory.
pub const RECORDS_PER_READ_MAX: usize = 256;

/// The event stream of shard `shard`.
pub fn event_stream(shard: u32) -> u32 {
    EVENT_STREAM_OFFSET + shard
}

/// The sequence number of event `index` of event record `record` of `shard`.
pub fn event_sequence(record: u64, index: usize, shard: u32) -> u64 {
    (record << 28) | ((index as u64) << 8) | u64::from(shard)
}

/// The highest sequence number event record `record` can hold.
pub fn last_sequence_of_record(record: u64) -> u64 {
    event_sequence(record + 1, 0, 0) - 1
}

/// The event record a sequence number belongs to.
pub fn record_of(sequence: u64) -> u64 {
    sequence >> 28
}

/// One store's events of a batch, as journaled: the store and its
/// currency once, then what happened, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreEvents {
    /// The store.
    pub store: StoreId,
    /// The store's currency.
    pub currency: Currency,
    /// What happened.
    pub events: Vec<EventKind>,
}

/// The payload of an event record, versioned like the command journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventRecord {
    /// Events of one batch, committed at `at_ms`, grouped by store. An
    /// event's index in the record counts through the groups in order.
    V1 {
        /// When the batch was committed, milliseconds since the epoch.
        at_ms: u64,
        /// Each store's events, each store once.
        stores: Vec<StoreEvents>,
    },
}

/// Why events could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record does not decode.
    #[error("event record {sequence} of shard {shard} is unreadable: {detail}")]
    Corrupt {
        /// The shard.
        shard: u32,
        /// The record.
        sequence: u64,
        /// What failed.
        detail: String,
    },
}

/// The marker that stops a read at [`RECORDS_PER_READ_MAX`] records.
fn read_window_full() -> StoreError {
    StoreError::Io {
        action: "ending a bounded read of events",
        path: String::new(),
        message: "read window full".to_string(),
    }
}

/// Reads committed events from storage.
#[derive(Clone)]
pub struct EventReader {
    storage: Arc<dyn Storage>,
}

impl EventReader {
    /// A reader of `storage`'s event streams.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self { storage }
    }

    /// The events of `shard` after event `after_sequence` (0: from the
    /// start), from at most [`RECORDS_PER_READ_MAX`] records, in order.
    pub fn read(&self, shard: u32, after_sequence: u64) -> Result<Vec<Event>, EventError> {
        let first_record = record_of(after_sequence);
        let mut events = Vec::new();
        let mut records = 0;
        let mut failure = None;
        // The record holding `after_sequence` is read again, and its events
        // up to that sequence skipped.
        let read = self.storage.read_journal(
            event_stream(shard),
            first_record.saturating_sub(1),
            &mut |record| {
                if records == RECORDS_PER_READ_MAX || failure.is_some() {
                    // The storage visits until the callback fails; this
                    // marker ends a read that has enough.
                    return Err(read_window_full());
                }
                records += 1;
                match postcard::from_bytes::<EventRecord>(&record.payload) {
                    Ok(EventRecord::V1 { at_ms, stores }) => {
                        let mut index = 0;
                        for group in stores {
                            for kind in group.events {
                                let sequence = event_sequence(record.sequence, index, shard);
                                index += 1;
                                if sequence > after_sequence {
                                    events.push(Event {
                                        sequence,
                                        store: group.store.clone(),
                                        currency: group.currency,
                                        at_ms,
                                        kind,
                                    });
                                }
                            }
                        }
                    }
                    Err(error) => {
                        failure = Some(EventError::Corrupt {
                            shard,
                            sequence: record.sequence,
                            detail: error.to_string(),
                        });
                    }
                }
                Ok(())
            },
        );
        match read {
            Err(error) if error == read_window_full() => {}
            other => other?,
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(events),
        }
    }

    /// The sequence of the last committed event record of `shard` (0: none).
    pub fn last_record(&self, shard: u32) -> u64 {
        self.storage.last_sequence(event_stream(shard))
    }
}
