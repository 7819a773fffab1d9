//! Where and how `ferry` writes its log lines (stderr).
//!
//! Colour codes only help a person at a terminal; in a file, a pipe or a log collector
//! they are noise (`^[[2m…`), so they are written only when stderr is a terminal (and
//! `NO_COLOR` is unset). `FERRY_LOG_FORMAT=json` writes one JSON object per line for
//! log collectors: `timestamp`, `level`, `message`, the event's other fields under
//! `fields`, and the enclosing spans under `spans`.

use std::io::IsTerminal;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Whether log lines are JSON (then every stderr line must be too).
static JSON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Writes a command's final error to stderr: `error: …` as text, or as a JSON `ERROR`
/// line when the log is JSON (a collector parses every stderr line).
pub fn error(text: &str) {
    if JSON.get().copied().unwrap_or(false) {
        tracing::error!("{text}");
    } else {
        eprintln!("error: {text}");
    }
}

/// Writes a notice to stderr (a plain line, or a JSON `INFO` line).
pub fn notice(text: &str) {
    if JSON.get().copied().unwrap_or(false) {
        tracing::info!("{text}");
    } else {
        eprintln!("{text}");
    }
}

/// Installs the global subscriber: filter from `FERRY_LOG` (default `info`), format
/// from `FERRY_LOG_FORMAT` (`text`, the default, or `json`).
pub fn init() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| "info".into());
    let format = std::env::var("FERRY_LOG_FORMAT").unwrap_or_default();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format.trim().to_ascii_lowercase().as_str() {
        "json" => {
            let _ = JSON.set(true);
            builder.with_ansi(false).event_format(JsonLines).init()
        }
        other => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(colour).init();
            if !other.is_empty() && other != "text" {
                tracing::warn!("FERRY_LOG_FORMAT={other} is not known (text or json): using text");
            }
        }
    }
}

/// One JSON object per event.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut line = serde_json::Map::new();
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), event.metadata().level().as_str().into());
        line.insert(
            "message".into(),
            fields.message.take().unwrap_or_default().into(),
        );
        if !fields.other.is_empty() {
            line.insert("fields".into(), fields.other.into());
        }
        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<serde_json::Value> = scope
                .from_root()
                .map(|span| {
                    let ext = span.extensions();
                    let text = ext
                        .get::<FormattedFields<N>>()
                        .map(|f| f.fields.clone())
                        .unwrap_or_default();
                    serde_json::json!({ "name": span.name(), "fields": text })
                })
                .collect();
            if !spans.is_empty() {
                line.insert("spans".into(), spans.into());
            }
        }
        writeln!(writer, "{}", serde_json::Value::Object(line))
    }
}

/// An event's fields as JSON values; `message` apart.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    other: serde_json::Map<String, serde_json::Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                serde_json::Value::String(s) => s,
                v => v.to_string(),
            });
        } else {
            self.other.insert(field.name().to_string(), value);
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(
            field,
            serde_json::Number::from_f64(value).map_or(serde_json::Value::Null, Into::into),
        );
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
}
