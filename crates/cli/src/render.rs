//! Text output, from the protocol's types. (`--json` prints the results
//! themselves.)

use exo_core::{Binding, ContentPart, EventData};
use exo_protocol::{BindingEntry, Event};

/// Aligns rows into columns separated by two spaces.
pub fn table(rows: Vec<Vec<String>>) -> String {
    // Cells from the store (names, a call's id and arguments) may hold
    // anything: escaped, so one cannot hide the rest of its row.
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|row| {
            row.iter()
                .map(|cell| printable(cell).replace('\n', " "))
                .collect()
        })
        .collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(column, cell)| {
                    if column + 1 == row.len() {
                        cell.clone()
                    } else {
                        format!("{cell:width$}", width = widths[column])
                    }
                })
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One line per event: id, time, kind, summary.
pub fn event_line(event: &Event) -> String {
    format!(
        "{}  {}  {:<20} {}",
        event.id,
        event.created_at,
        event.data.kind_name(),
        event_summary(&event.data)
    )
    .trim_end()
    .to_string()
}

/// A short, one-line summary of an event's data.
pub fn event_summary(data: &EventData) -> String {
    let summary = match data {
        EventData::ConversationCreated { name, .. } => format!("{name:?}"),
        EventData::SessionStarted {} | EventData::TurnStarted {} => String::new(),
        EventData::SessionEnded { reason } => format!("{reason:?}").to_lowercase(),
        EventData::TurnEnded { status } => status.to_string(),
        EventData::Message { role, content, .. } => {
            let text: Vec<&str> = content
                .iter()
                .map(|part| match part {
                    ContentPart::Text { text } | ContentPart::Reasoning { text } => text.as_str(),
                    ContentPart::Image { .. } => "[image]",
                })
                .collect();
            format!("{}: {}", format!("{role:?}").to_lowercase(), text.join(" "))
        }
        EventData::ToolCall {
            call_id,
            name,
            arguments,
        } => format!("{name} {arguments} ({call_id})"),
        EventData::ToolResult {
            call_id,
            output,
            is_error,
        } => {
            format!(
                "{}{output} ({call_id})",
                if *is_error { "error: " } else { "" }
            )
        }
        EventData::ArtifactWritten {
            path,
            version,
            size,
            ..
        } => format!("{path} v{version} ({size} bytes)"),
        EventData::Error { message, .. } => message.clone(),
        EventData::Forked {
            from_conversation,
            from_event,
        } => format!("from {from_conversation} at {from_event}"),
        EventData::Rewound {
            from_event,
            to_event,
            snapshot,
        } => match snapshot {
            Some(snapshot) => format!(
                "from {from_event} to {to_event}; files at {}",
                short(snapshot)
            ),
            None => format!("from {from_event} to {to_event}"),
        },
        EventData::WorkspaceSnapshot {
            commit,
            reason,
            added,
            modified,
            deleted,
            skipped,
            conflicts,
            ..
        } => {
            let mut skipped = if skipped.is_empty() {
                String::new()
            } else {
                format!(", {} skipped", skipped.len())
            };
            if !conflicts.is_empty() {
                skipped.push_str(&format!(
                    ", {} left alone (changed during the restore)",
                    conflicts.len()
                ));
            }
            format!(
                "{} {}: +{added} ~{modified} -{deleted}{skipped}",
                format!("{reason:?}").to_lowercase(),
                short(commit)
            )
        }
        EventData::SecretSet { name, .. } | EventData::SecretDeleted { name } => name.clone(),
        EventData::BindingSet { binding } => format!("{} {}", binding.kind(), binding.name()),
        EventData::BindingDeleted { binding_kind, name } => format!("{binding_kind} {name}"),
        EventData::Custom {
            custom_type,
            payload,
        } => format!("{custom_type} {payload}"),
        EventData::Other(raw) => raw_summary(raw),
    };
    one_line(&summary, 120)
}

/// A raw event's fields but `kind` (shown beside it), as JSON.
fn raw_summary(raw: &exo_core::RawEvent) -> String {
    let fields = raw.fields().iter().filter(|(name, _)| *name != "kind");
    serde_json::Value::Object(fields.map(|(k, v)| (k.clone(), v.clone())).collect()).to_string()
}

/// The first 12 characters of a commit id.
pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// `text` safe to show on a terminal: every control character (C0 but
/// newline and tab, DEL, C1) written as an escape (`\u{1b}`), so text
/// from a model, a tool or a file cannot move the cursor, recolour, retitle
/// or hide the rest of a line.
pub fn printable(text: &str) -> String {
    if !text.chars().any(is_unsafe) {
        return text.to_string();
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            shown.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            shown.push(c);
        }
    }
    shown
}

fn is_unsafe(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// Collapses whitespace to single spaces and cuts at `max` characters,
/// control characters escaped.
pub fn one_line(text: &str, max: usize) -> String {
    let text = printable(text);
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() > max {
        let cut: String = collapsed.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        collapsed
    }
}

/// A one-line description of a binding.
pub fn binding_line(entry: &BindingEntry) -> String {
    match &entry.binding {
        Binding::Model {
            name,
            provider,
            base_url,
            upstream,
            secret,
            context_window,
        } => format!(
            "{name}  {provider}  {upstream}  {base_url}  secret={}{}  ({})",
            secret.as_deref().unwrap_or("-"),
            context_window.map_or_else(String::new, |tokens| format!("  window={tokens}")),
            entry.scope
        ),
        Binding::Env { name, secret } => format!("env {name} = secret {secret}  ({})", entry.scope),
        Binding::Mcp {
            name,
            url,
            command,
            secret,
            env,
            header,
        } => {
            let target = match url {
                Some(url) => url.clone(),
                None => format!("-- {}", command.join(" ")),
            };
            let handed = match (env, header) {
                (Some(env), _) => format!(" in ${env}"),
                (_, Some(header)) => format!(" in {header}:"),
                _ => String::new(),
            };
            format!(
                "mcp {name} {target}  secret={}{handed}  ({})",
                secret.as_deref().unwrap_or("-"),
                entry.scope
            )
        }
        Binding::Http {
            name,
            secret,
            plain_http,
            ..
        } => {
            let (header, value) = entry
                .binding
                .http_header("SECRET")
                .unwrap_or_else(|| ("authorization".to_owned(), "SECRET".to_owned()));
            format!(
                "http {name}  {header}: {}  secret={secret}{}  ({})",
                value.replace("SECRET", "<secret>"),
                if *plain_http { "  plain http" } else { "" },
                entry.scope
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(printable("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(
            printable("a\u{1b}[2Jb\u{7}c\u{9b}d\re"),
            "a\\u{1b}[2Jb\\u{7}c\\u{9b}d\\u{d}e"
        );
        assert_eq!(one_line("x\u{1b}]0;T\u{7} y", 80), "x\\u{1b}]0;T\\u{7} y");
        assert_eq!(
            table(vec![vec!["ok\u{1b}[8m".into(), "rm -rf".into()]]),
            "ok\\u{1b}[8m  rm -rf"
        );
    }
}
