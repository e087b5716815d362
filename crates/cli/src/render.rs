//! The JSON shapes `--json` prints (documented in spec/exoharness.md) and
//! the one-line text forms.
//!
//! These are the CLI's wire format: field names are stable, scripts rely on
//! them.

use exo_core::{Binding, Event, Timestamp};
use exo_store::{Agent, ArtifactVersion, BindingEntry, Conversation, SecretInfo};
use serde_json::{json, Map, Value};

/// RFC 3339 in UTC with microseconds, e.g. `2026-11-21T07:44:12.123456Z`.
pub fn time(timestamp: Timestamp) -> String {
    let nanos = i128::from(timestamp.as_micros()) * 1000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(at) => {
            let (year, month, day) = (at.year(), u8::from(at.month()), at.day());
            let (hour, minute, second, micro) =
                (at.hour(), at.minute(), at.second(), at.microsecond());
            format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{micro:06}Z")
        }
        Err(_) => timestamp.as_micros().to_string(),
    }
}

pub fn agent(agent: &Agent) -> Value {
    json!({
        "id": agent.id.to_string(),
        "slug": agent.slug,
        "name": agent.name,
        "config": Value::Object(agent.config.clone()),
        "created_at": time(agent.created_at),
    })
}

pub fn conversation(conversation: &Conversation) -> Value {
    json!({
        "id": conversation.id.to_string(),
        "agent": conversation.agent.to_string(),
        "slug": conversation.slug,
        "name": conversation.name,
        "head": conversation.head.to_string(),
        "length": conversation.len(),
        "forked_from": conversation.forked_from.map(|(from, at)| json!({
            "conversation": from.to_string(),
            "event": at.to_string(),
        })),
        "open_session": conversation.open_session.map(|s| s.to_string()),
        "open_turn": conversation.open_turn.map(|t| t.to_string()),
        "created_at": time(conversation.created_at),
    })
}

/// An event: the envelope, then `kind` and the kind's own fields.
pub fn event(event: &Event) -> Value {
    let mut object = Map::new();
    object.insert("id".into(), json!(event.id.to_string()));
    object.insert("conversation".into(), json!(event.conversation.to_string()));
    object.insert(
        "session".into(),
        json!(event.session.map(|s| s.to_string())),
    );
    object.insert("turn".into(), json!(event.turn.map(|t| t.to_string())));
    object.insert("created_at".into(), json!(time(event.created_at)));
    if let Ok(Value::Object(data)) = serde_json::to_value(&event.data) {
        object.extend(data);
    }
    Value::Object(object)
}

pub fn secret(info: &SecretInfo) -> Value {
    json!({
        "name": info.name,
        "scope": info.scope.key(),
        "kind": info.kind.as_str(),
        "created_at": time(info.created_at),
    })
}

pub fn binding(entry: &BindingEntry) -> Value {
    let mut object = match serde_json::to_value(&entry.binding) {
        Ok(Value::Object(object)) => object,
        _ => Map::new(),
    };
    object.insert("scope".into(), json!(entry.scope.key()));
    object.insert("created_at".into(), json!(time(entry.created_at)));
    Value::Object(object)
}

pub fn artifact(artifact: &ArtifactVersion) -> Value {
    json!({
        "path": artifact.path,
        "version": artifact.version,
        "sha256": artifact.sha256,
        "size": artifact.size,
        "media_type": artifact.media_type,
        "event": artifact.event.to_string(),
        "created_at": time(artifact.created_at),
    })
}

/// A short, one-line summary of an event's data for text output.
pub fn event_summary(event: &Event) -> String {
    use exo_core::{ContentPart, EventData};
    let summary = match &event.data {
        EventData::ConversationCreated { name, .. } => format!("{name:?}"),
        EventData::SessionStarted {} => String::new(),
        EventData::SessionEnded { reason } => format!("{reason:?}").to_lowercase(),
        EventData::TurnStarted {} => String::new(),
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
        } => format!("from {from_event} to {to_event}"),
        EventData::SecretSet { name, .. } => name.clone(),
        EventData::SecretDeleted { name } => name.clone(),
        EventData::BindingSet { binding } => format!("{} {}", binding.kind(), binding.name()),
        EventData::BindingDeleted { binding_kind, name } => format!("{binding_kind} {name}"),
        EventData::Custom {
            custom_type,
            payload,
        } => format!("{custom_type} {payload}"),
    };
    one_line(&summary, 120)
}

/// Collapses whitespace to single spaces and cuts at `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() > max {
        let cut: String = collapsed.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        collapsed
    }
}

/// A one-line description of a model binding.
pub fn model_line(entry: &BindingEntry) -> String {
    match &entry.binding {
        Binding::Model {
            name,
            provider,
            base_url,
            upstream,
            secret,
        } => format!(
            "{name}  {provider}  {upstream}  {base_url}  secret={}  ({})",
            secret.as_deref().unwrap_or("-"),
            entry.scope
        ),
        other => format!("{} {}", other.kind(), other.name()),
    }
}
