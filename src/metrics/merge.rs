//! Process mode's one `/metrics`: the supervisor scrapes each child's loopback admin listener
//! and merges the texts into one exposition.
//!
//! Every child serves the same families with the same label sets (labels never name a
//! child), so merging is summing: samples with the same name and labels are added up —
//! counters, histogram buckets, `_sum` and `_count` exactly, gauges as the total over
//! children (busy slots of the whole set). Metadata lines (`# HELP`, `# TYPE`, `# UNIT`) are
//! kept once per family, in first-seen order; the result ends with one `# EOF`.

use std::collections::BTreeMap;

/// One family while merging: its metadata lines and its samples, in first-seen order.
type Family = (Vec<String>, Vec<(String, f64)>);

/// Merges OpenMetrics texts (as [`Metrics::render_prometheus`](super::Metrics::render_prometheus)
/// writes them). Lines that are neither metadata nor a `name{labels} value` sample are
/// dropped.
pub fn merge_texts<'a>(texts: impl IntoIterator<Item = &'a str>) -> String {
    // family name → (metadata lines, samples in first-seen order)
    let mut order: Vec<String> = Vec::new();
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current = String::new();
    for text in texts {
        for line in text.lines() {
            if line == "# EOF" || line.is_empty() {
                continue;
            }
            if let Some(meta) = line.strip_prefix("# ") {
                let mut parts = meta.splitn(3, ' ');
                let (Some(_kind), Some(name)) = (parts.next(), parts.next()) else {
                    continue;
                };
                current = name.to_owned();
                let entry = families.entry(current.clone()).or_insert_with(|| {
                    order.push(current.clone());
                    (Vec::new(), Vec::new())
                });
                if !entry.0.iter().any(|l| l == line) {
                    entry.0.push(line.to_owned());
                }
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let entry = families.entry(current.clone()).or_insert_with(|| {
                order.push(current.clone());
                (Vec::new(), Vec::new())
            });
            match entry.1.iter_mut().find(|(s, _)| s == series) {
                Some((_, total)) => *total += value,
                None => entry.1.push((series.to_owned(), value)),
            }
        }
    }
    let mut out = String::new();
    for name in order {
        let Some((meta, samples)) = families.get(&name) else {
            continue;
        };
        for line in meta {
            out.push_str(line);
            out.push('\n');
        }
        for (series, value) in samples {
            out.push_str(series);
            out.push(' ');
            out.push_str(&format_value(*value));
            out.push('\n');
        }
    }
    out.push_str("# EOF\n");
    out
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_series_are_summed_and_metadata_kept_once() {
        let a = "# HELP task_poll Polls.\n# TYPE task_poll counter\ntask_poll_total{taskType=\"e\"} 2\n# EOF\n";
        let b = "# HELP task_poll Polls.\n# TYPE task_poll counter\ntask_poll_total{taskType=\"e\"} 3\n# HELP active_workers A.\n# TYPE active_workers gauge\nactive_workers{taskType=\"e\"} 1\n# EOF\n";
        assert_eq!(
            merge_texts([a, b]),
            "# HELP task_poll Polls.\n# TYPE task_poll counter\ntask_poll_total{taskType=\"e\"} 5\n# HELP active_workers A.\n# TYPE active_workers gauge\nactive_workers{taskType=\"e\"} 1\n# EOF\n"
        );
    }
}
