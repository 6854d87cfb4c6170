//! The JSONL record format: one `log::Record` becomes one JSON object on one line.
//!
//! Kept free of any installed logger so it can be unit-tested directly: the writer in
//! [`init`](super::init) calls [`write_json_line`] with the wall-clock time and the calling
//! thread's name.
//!
//! # Secrets
//!
//! This module never formats application data itself: the message is whatever the caller's
//! format arguments produce and every key-value is rendered from the value the caller passed.
//! Callers must therefore pass only redacted values; perago's config `Secret` type displays as
//! `**********`, so logging it with `key:% = secret` is safe, while logging the exposed inner
//! string is not.

use std::io::{self, Write};

use chrono::{DateTime, FixedOffset, SecondsFormat};
use log::Record;
use log::kv::{self, Key, VisitSource, VisitValue};
use serde_json::{Map, Number, Value};

/// Keys perago writes on every line; a structured field with one of these names is written as
/// `kv.<name>` instead so it can never overwrite (or duplicate) a fixed field.
pub const RESERVED_KEYS: [&str; 8] = [
    "time",
    "level",
    "message",
    "thread",
    "worker_id",
    "target",
    "role",
    "module",
];

/// Which kind of perago process writes the log; recorded on every line as `role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogRole {
    /// A thread runtime process: `start --execution-mode thread` or a supervised child.
    ThreadRunner,
    /// The process-mode supervisor that re-executes children.
    Supervisor,
}

impl LogRole {
    /// The `role` value written on each line.
    pub fn as_str(self) -> &'static str {
        match self {
            LogRole::ThreadRunner => "thread_runner",
            LogRole::Supervisor => "supervisor",
        }
    }

    /// The exact startup record message (SPEC §11) a process of this role logs once its
    /// runtime is up: `thread runner started` or `process supervisor started`.
    pub fn startup_message(self) -> &'static str {
        match self {
            LogRole::ThreadRunner => "thread runner started",
            LogRole::Supervisor => "process supervisor started",
        }
    }
}

/// The per-process fields every line carries, fixed at [`init_logging`](super::init_logging).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineContext {
    /// The perago worker id of this process.
    pub worker_id: String,
    /// The perago target (CLI task target), not the `log` crate's module target.
    pub target: String,
    /// The kind of process writing.
    pub role: LogRole,
}

/// Renders one record as a JSON object (without the trailing newline).
///
/// Keys, in order: `time` (RFC 3339 with offset and milliseconds), `level`, `message`,
/// `thread`, `worker_id`, `target`, `role`, `module` (the `log` crate target, usually the
/// module path), then every structured key-value of the record. Integers, floats and booleans
/// stay JSON numbers and booleans; non-finite floats, 128-bit integers that do not fit 64 bits
/// and every other value (Display/Debug captures, errors) become strings.
pub fn record_to_json(
    ctx: &LineContext,
    time: DateTime<FixedOffset>,
    thread: &str,
    record: &Record<'_>,
) -> Map<String, Value> {
    let mut line = Map::new();
    line.insert(
        "time".to_owned(),
        Value::String(time.to_rfc3339_opts(SecondsFormat::Millis, false)),
    );
    line.insert(
        "level".to_owned(),
        Value::String(record.level().as_str().to_owned()),
    );
    let message = match record.args().as_str() {
        Some(static_message) => static_message.to_owned(),
        None => record.args().to_string(),
    };
    line.insert("message".to_owned(), Value::String(message));
    line.insert("thread".to_owned(), Value::String(thread.to_owned()));
    line.insert("worker_id".to_owned(), Value::String(ctx.worker_id.clone()));
    line.insert("target".to_owned(), Value::String(ctx.target.clone()));
    line.insert(
        "role".to_owned(),
        Value::String(ctx.role.as_str().to_owned()),
    );
    line.insert(
        "module".to_owned(),
        Value::String(record.target().to_owned()),
    );

    let mut fields = FieldCollector { line: &mut line };
    // The collector never fails; a source that reports an error just stops adding fields,
    // which is better than dropping the whole line.
    let _ = record.key_values().visit(&mut fields);
    line
}

/// Writes one record as a single JSON line (object plus `\n`) to `out`.
///
/// The line is assembled in memory first, so a writer that appends whole buffers (the log
/// file writer) never interleaves two records.
pub fn write_json_line(
    out: &mut impl Write,
    ctx: &LineContext,
    time: DateTime<FixedOffset>,
    thread: &str,
    record: &Record<'_>,
) -> io::Result<()> {
    let mut buf =
        serde_json::to_vec(&record_to_json(ctx, time, thread, record)).map_err(io::Error::other)?;
    buf.push(b'\n');
    out.write_all(&buf)
}

/// Renders one record as one readable line (with the trailing newline) for stderr:
/// `<time> <LEVEL> <message> worker_id=<id> <key>=<value>…`, where the keys are the
/// record's structured fields in order. A value that is not a bare word is written as a JSON
/// string, so quotes, spaces and newlines stay on one line.
pub fn text_line(
    ctx: &LineContext,
    time: DateTime<FixedOffset>,
    thread: &str,
    record: &Record<'_>,
) -> String {
    let json = record_to_json(ctx, time, thread, record);
    let mut line = String::with_capacity(160);
    let field = |key: &str| json.get(key).and_then(Value::as_str).unwrap_or("");
    line.push_str(field("time"));
    line.push(' ');
    line.push_str(&format!("{:<5}", record.level().as_str()));
    line.push(' ');
    line.push_str(field("message"));
    line.push_str(" worker_id=");
    push_text_value(&mut line, &Value::String(ctx.worker_id.clone()));
    for (key, value) in json.iter().skip(RESERVED_KEYS.len()) {
        line.push(' ');
        line.push_str(key);
        line.push('=');
        push_text_value(&mut line, value);
    }
    line.push('\n');
    line
}

fn push_text_value(line: &mut String, value: &Value) {
    match value {
        Value::String(text)
            if !text.is_empty()
                && text.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || matches!(c, '.' | '_' | '-' | ':' | '/' | '+' | '@')
                }) =>
        {
            line.push_str(text);
        }
        other => line.push_str(&other.to_string()),
    }
}

/// Adds each structured key-value of a record to the line map.
struct FieldCollector<'a> {
    line: &'a mut Map<String, Value>,
}

impl<'kvs> VisitSource<'kvs> for FieldCollector<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        let key = key.as_str();
        let name = if RESERVED_KEYS.contains(&key) {
            format!("kv.{key}")
        } else {
            key.to_owned()
        };
        let mut json = JsonValue(Value::Null);
        value.visit(&mut json)?;
        self.line.insert(name, json.0);
        Ok(())
    }
}

/// Converts one `log` value into the JSON value of the same shape.
struct JsonValue(Value);

impl<'v> VisitValue<'v> for JsonValue {
    fn visit_any(&mut self, value: kv::Value<'_>) -> Result<(), kv::Error> {
        self.0 = Value::String(value.to_string());
        Ok(())
    }

    fn visit_null(&mut self) -> Result<(), kv::Error> {
        self.0 = Value::Null;
        Ok(())
    }

    fn visit_u64(&mut self, value: u64) -> Result<(), kv::Error> {
        self.0 = Value::Number(value.into());
        Ok(())
    }

    fn visit_i64(&mut self, value: i64) -> Result<(), kv::Error> {
        self.0 = Value::Number(value.into());
        Ok(())
    }

    fn visit_u128(&mut self, value: u128) -> Result<(), kv::Error> {
        self.0 = match u64::try_from(value) {
            Ok(small) => Value::Number(small.into()),
            Err(_) => Value::String(value.to_string()),
        };
        Ok(())
    }

    fn visit_i128(&mut self, value: i128) -> Result<(), kv::Error> {
        self.0 = match i64::try_from(value) {
            Ok(small) => Value::Number(small.into()),
            Err(_) => Value::String(value.to_string()),
        };
        Ok(())
    }

    fn visit_f64(&mut self, value: f64) -> Result<(), kv::Error> {
        self.0 = match Number::from_f64(value) {
            Some(number) => Value::Number(number),
            None => Value::String(value.to_string()),
        };
        Ok(())
    }

    fn visit_bool(&mut self, value: bool) -> Result<(), kv::Error> {
        self.0 = Value::Bool(value);
        Ok(())
    }

    fn visit_str(&mut self, value: &str) -> Result<(), kv::Error> {
        self.0 = Value::String(value.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use log::Level;
    use serde_json::json;

    fn ctx() -> LineContext {
        LineContext {
            worker_id: "featuresBuild0001".to_owned(),
            target: "app.workers.features_build".to_owned(),
            role: LogRole::ThreadRunner,
        }
    }

    fn time() -> DateTime<FixedOffset> {
        let Some(utc) = FixedOffset::east_opt(0) else {
            panic!("valid offset");
        };
        let Some(t) = utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).single() else {
            panic!("valid time");
        };
        (t + chrono::Duration::milliseconds(678)).with_timezone(&super::super::path::LOG_UTC_OFFSET)
    }

    fn render(record: &Record<'_>) -> Value {
        let mut out = Vec::new();
        if let Err(e) = write_json_line(&mut out, &ctx(), time(), "worker-1", record) {
            panic!("write failed: {e}");
        }
        assert_eq!(out.last(), Some(&b'\n'), "line ends with a newline");
        assert_eq!(
            out.iter().filter(|b| **b == b'\n').count(),
            1,
            "exactly one line"
        );
        match serde_json::from_slice(&out) {
            Ok(v) => v,
            Err(e) => panic!("invalid JSON line: {e}"),
        }
    }

    #[test]
    fn text_lines_are_one_readable_line_with_the_key_fields() {
        let kvs: [(&str, &str); 3] = [
            ("task_id", "t-1"),
            ("status", "FAILED"),
            ("reason", "lakeFS said \"no\"\nthen more"),
        ];
        let line = text_line(
            &ctx(),
            time(),
            "worker-1",
            &Record::builder()
                .level(Level::Warn)
                .args(format_args!("attempt finished"))
                .key_values(&kvs)
                .build(),
        );
        assert_eq!(
            line,
            "2025-01-02T11:04:05.678+08:00 WARN  attempt finished worker_id=featuresBuild0001 \
             task_id=t-1 status=FAILED reason=\"lakeFS said \\\"no\\\"\\nthen more\"\n"
        );
    }

    #[test]
    fn fixed_fields_and_order() {
        let args = format_args!("attempt {} finished", 3);
        let record = Record::builder()
            .level(Level::Info)
            .target("perago::runtime")
            .args(args)
            .build();
        let line = render(&record);
        assert_eq!(
            line,
            json!({
                "time": "2025-01-02T11:04:05.678+08:00",
                "level": "INFO",
                "message": "attempt 3 finished",
                "thread": "worker-1",
                "worker_id": "featuresBuild0001",
                "target": "app.workers.features_build",
                "role": "thread_runner",
                "module": "perago::runtime",
            })
        );
        let Some(map) = line.as_object() else {
            panic!("object")
        };
        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
        assert_eq!(keys, RESERVED_KEYS);
    }

    #[test]
    fn key_values_keep_their_json_types() {
        let task_id = String::from("task-1");
        let kvs: [(&str, kv::Value<'_>); 9] = [
            ("task_id", kv::Value::from(task_id.as_str())),
            ("duration_ms", kv::Value::from(12_u64)),
            ("delta", kv::Value::from(-3_i32)),
            ("ratio", kv::Value::from(0.5_f64)),
            ("nan", kv::Value::from(f64::NAN)),
            ("ok", kv::Value::from(true)),
            ("huge", kv::Value::from(u128::MAX)),
            ("path", kv::Value::from_display(&"/tmp/x y")),
            ("initial", kv::Value::from('c')),
        ];
        let record = Record::builder()
            .level(Level::Warn)
            .args(format_args!("attempt finished"))
            .key_values(&kvs)
            .build();
        let line = render(&record);
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["task_id"], "task-1");
        assert_eq!(line["duration_ms"], json!(12));
        assert_eq!(line["delta"], json!(-3));
        assert_eq!(line["ratio"], json!(0.5));
        assert_eq!(line["nan"], "NaN");
        assert_eq!(line["ok"], json!(true));
        assert_eq!(line["huge"], u128::MAX.to_string());
        assert_eq!(line["path"], "/tmp/x y");
        assert_eq!(line["initial"], "c");
    }

    #[test]
    fn reserved_key_values_do_not_overwrite_fixed_fields() {
        let kvs = [("target", "evil"), ("message", "other")];
        let record = Record::builder()
            .level(Level::Error)
            .args(format_args!("real message"))
            .key_values(&kvs)
            .build();
        let line = render(&record);
        assert_eq!(line["target"], "app.workers.features_build");
        assert_eq!(line["message"], "real message");
        assert_eq!(line["kv.target"], "evil");
        assert_eq!(line["kv.message"], "other");
    }

    #[test]
    fn message_with_newlines_stays_on_one_line() {
        let record = Record::builder()
            .level(Level::Info)
            .args(format_args!("line one\nline two \"quoted\""))
            .build();
        let line = render(&record);
        assert_eq!(line["message"], "line one\nline two \"quoted\"");
    }

    #[test]
    fn role_strings() {
        assert_eq!(LogRole::Supervisor.as_str(), "supervisor");
        assert_eq!(
            LogRole::Supervisor.startup_message(),
            "process supervisor started"
        );
        assert_eq!(
            LogRole::ThreadRunner.startup_message(),
            "thread runner started"
        );
    }
}
