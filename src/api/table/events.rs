//! The event table, for both `v1` events and `events.k8s.io/v1` events.
//!
//! Upstream serves both APIs from one storage and prints the internal (core) event, so both
//! get the same columns; only the field names differ (`involvedObject` vs `regarding`,
//! `message` vs `note`, `firstTimestamp` vs `deprecatedFirstTimestamp`, ...). LAST SEEN falls
//! back to the first timestamp, then to `eventTime`; an event series supplies its own last
//! observation and count; a singleton event without a count counts once.

use serde_json::Value;

use super::fields::{i64_at, name, opt_str, present, str_at};
use super::time::{Instant, human_duration};
use super::{Column, NAME, Printer, col, docs, wide};

/// Where one flavour of event keeps each printed field.
struct Layout {
    regarding: &'static str,
    message: &'static str,
    source: &'static str,
    first: &'static str,
    last: &'static str,
    count: &'static str,
    reporting_controller: &'static str,
}

const CORE: Layout = Layout {
    regarding: "involvedObject",
    message: "message",
    source: "source",
    first: "firstTimestamp",
    last: "lastTimestamp",
    count: "count",
    reporting_controller: "reportingComponent",
};

const EVENTS_K8S_IO: Layout = Layout {
    regarding: "regarding",
    message: "note",
    source: "deprecatedSource",
    first: "deprecatedFirstTimestamp",
    last: "deprecatedLastTimestamp",
    count: "deprecatedCount",
    reporting_controller: "reportingController",
};

const EVENT_COLUMNS: &[Column] = &[
    col("Last Seen", "string", docs::EVENT_LAST_TIMESTAMP),
    col("Type", "string", docs::EVENT_TYPE),
    col("Reason", "string", docs::EVENT_REASON),
    col("Object", "string", docs::EVENT_INVOLVED_OBJECT),
    wide("Subobject", docs::OBJECT_REFERENCE_FIELD_PATH),
    wide("Source", docs::EVENT_SOURCE),
    col("Message", "string", docs::EVENT_MESSAGE),
    wide("First Seen", docs::EVENT_FIRST_TIMESTAMP),
    wide("Count", docs::EVENT_COUNT),
    Column {
        priority: 1,
        ..NAME
    },
];

/// `kubectl get events` (core group).
pub(super) const CORE_EVENTS: Printer = Printer {
    columns: EVENT_COLUMNS,
    cells: core_cells,
};

/// `kubectl get events.events.k8s.io`.
pub(super) const EVENTS_V1: Printer = Printer {
    columns: EVENT_COLUMNS,
    cells: v1_cells,
};

fn core_cells(obj: &Value, now: Instant) -> Vec<Value> {
    event_cells(obj, now, &CORE)
}

fn v1_cells(obj: &Value, now: Instant) -> Vec<Value> {
    event_cells(obj, now, &EVENTS_K8S_IO)
}

/// A set, non-zero timestamp at `path`.
fn stamp(obj: &Value, path: &[&str]) -> Option<Instant> {
    opt_str(obj, path)
        .and_then(Instant::parse_rfc3339)
        .filter(|t| !t.is_zero())
}

fn since(t: Option<Instant>, now: Instant) -> String {
    t.map_or_else(|| "<unknown>".to_string(), |t| human_duration(now.since(t)))
}

fn event_cells(obj: &Value, now: Instant, layout: &Layout) -> Vec<Value> {
    let first = match stamp(obj, &[layout.first]) {
        Some(t) => since(Some(t), now),
        None => since(stamp(obj, &["eventTime"]), now),
    };
    let mut last = match stamp(obj, &[layout.last]) {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = i64_at(obj, &[layout.count]);
    if present(obj, &["series"]) {
        last = since(stamp(obj, &["series", "lastObservedTime"]), now);
        count = i64_at(obj, &["series", "count"]);
    } else if count == 0 {
        count = 1;
    }

    let kind = str_at(obj, &[layout.regarding, "kind"]).to_lowercase();
    let target = match str_at(obj, &[layout.regarding, "name"]) {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    // Falls back to the reporting fields newer clients fill instead of `source`.
    let pick = |in_source: &str, fallback: &str| match str_at(obj, &[layout.source, in_source]) {
        "" => str_at(obj, &[fallback]),
        s => s,
    };
    let component = pick("component", layout.reporting_controller);
    let instance = pick("host", "reportingInstance");
    let source = match instance {
        "" => component.to_string(),
        i => format!("{component}, {i}"),
    };

    vec![
        last.into(),
        str_at(obj, &["type"]).into(),
        str_at(obj, &["reason"]).into(),
        target.into(),
        str_at(obj, &[layout.regarding, "fieldPath"]).into(),
        source.into(),
        str_at(obj, &[layout.message]).trim().into(),
        first.into(),
        count.into(),
        name(obj).into(),
    ]
}
