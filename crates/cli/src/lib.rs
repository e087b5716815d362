//! The `exo` command line: argument parsing, dispatch and output.
//!
//! Thin by design: every command resolves its arguments, makes one or two
//! calls into `exo-store`, and prints the result as text or, with `--json`,
//! as one JSON document whose shape is documented in spec/exoharness.md.
//!
//! Exit status: 0 on success, 1 with a one-line `exo: ...` error on stderr
//! on failure, 2 on usage errors (from clap).

#![allow(clippy::print_stdout)]

mod args;
mod render;

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use exo_core::{Binding, BindingKind, EventData, SecretValue};
use exo_secrets::{Key, KeySource};
use exo_store::{EventQuery, ForkOptions, OpenMode, Store};
use serde_json::{json, Value};

use crate::args::{
    AgentCommand, ArtifactCommand, BindingCommand, Cli, Command, ConversationCommand, ModelCommand,
    ScopeArgs, SecretCommand, SecretKindArg,
};

/// The most `conversation append` and `artifact put` read from stdin.
const MAX_STDIN_BYTES: u64 = 64 << 20;

/// Runs the command line and returns the process's exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let message = format!("{err:#}").replace('\n', " ");
            let _ = writeln!(std::io::stderr(), "exo: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = std::env::var("EXO_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "warn".to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Where output goes, and in which form.
struct Out {
    json: bool,
}

impl Out {
    /// Prints `value` as JSON, or `text()` as text.
    fn emit(&self, value: Value, text: impl FnOnce() -> String) -> Result<()> {
        let mut stdout = std::io::stdout().lock();
        let result = if self.json {
            writeln!(stdout, "{}", serde_json::to_string_pretty(&value)?)
        } else {
            let text = text();
            if text.is_empty() {
                Ok(())
            } else {
                writeln!(stdout, "{text}")
            }
        };
        match result {
            // A closed pipe (`exo ... | head`) is not an error.
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => Ok(other?),
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let out = Out { json: cli.json };
    let writes = matches!(
        &cli.command,
        Command::Agent(AgentCommand::Create { .. })
            | Command::Secret(SecretCommand::Set { .. })
            | Command::Model(ModelCommand::Register { .. })
            | Command::Binding(BindingCommand::Env { .. } | BindingCommand::Mcp { .. })
    );
    let mode = if writes {
        OpenMode::Create
    } else {
        OpenMode::Existing
    };
    let store = Store::open(&cli.root, mode)?;
    match cli.command {
        Command::Agent(command) => agent(&store, &out, command),
        Command::Conversation(command) => conversation(&store, &out, command),
        Command::Secret(command) => secret(&store, &out, command),
        Command::Model(command) => model(&store, &out, command),
        Command::Binding(command) => binding(&store, &out, command),
        Command::Artifact(command) => artifact(&store, &out, command),
    }
}

fn table(rows: Vec<Vec<String>>) -> String {
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

fn agent(store: &Store, out: &Out, command: AgentCommand) -> Result<()> {
    match command {
        AgentCommand::Create {
            name,
            model,
            instructions,
            slug,
        } => {
            let mut config = serde_json::Map::new();
            if let Some(model) = model {
                config.insert("model".into(), json!(model));
            }
            if let Some(instructions) = instructions {
                config.insert("instructions".into(), json!(instructions));
            }
            let agent = store.create_agent(&name, slug.as_deref(), config).map_err(|err| match err {
                exo_store::Error::NotFound { what: "model", key } => {
                    anyhow!("model {key:?} not found; register it first with `exo model register {key}`")
                }
                other => other.into(),
            })?;
            out.emit(render::agent(&agent), || {
                format!("created agent {} ({})", agent.slug, agent.id)
            })
        }
        AgentCommand::List => {
            let agents = store.agents()?;
            out.emit(
                json!({ "agents": agents.iter().map(render::agent).collect::<Vec<_>>() }),
                || {
                    let mut rows = vec![vec![
                        "SLUG".into(),
                        "NAME".into(),
                        "MODEL".into(),
                        "ID".into(),
                    ]];
                    rows.extend(agents.iter().map(|a| {
                        vec![
                            a.slug.clone(),
                            a.name.clone(),
                            a.model().unwrap_or("-").to_string(),
                            a.id.to_string(),
                        ]
                    }));
                    table(rows)
                },
            )
        }
        AgentCommand::Show { agent } => {
            let agent = store.agent(&agent)?;
            out.emit(render::agent(&agent), || {
                format!(
                    "{} ({})\nname: {}\nconfig: {}\ncreated: {}",
                    agent.slug,
                    agent.id,
                    agent.name,
                    Value::Object(agent.config.clone()),
                    render::time(agent.created_at)
                )
            })
        }
        AgentCommand::Delete { agent } => {
            let agent = store.delete_agent(&agent)?;
            out.emit(render::agent(&agent), || {
                format!("deleted agent {}", agent.slug)
            })
        }
    }
}

fn conversation(store: &Store, out: &Out, command: ConversationCommand) -> Result<()> {
    match command {
        ConversationCommand::Create { agent, name, slug } => {
            let conv = store.create_conversation(&agent, &name, slug.as_deref())?;
            out.emit(render::conversation(&conv), || {
                format!("created conversation {} ({})", conv.slug, conv.id)
            })
        }
        ConversationCommand::List { agent } => {
            let conversations = store.conversations(&agent)?;
            out.emit(
                json!({ "conversations": conversations.iter().map(render::conversation).collect::<Vec<_>>() }),
                || {
                    let mut rows = vec![vec!["SLUG".into(), "NAME".into(), "EVENTS".into(), "HEAD".into()]];
                    rows.extend(conversations.iter().map(|c| {
                        vec![c.slug.clone(), c.name.clone(), c.len().to_string(), c.head.to_string()]
                    }));
                    table(rows)
                },
            )
        }
        ConversationCommand::Show(target) => {
            let conv = store.conversation(&target.agent, &target.conversation)?;
            out.emit(render::conversation(&conv), || {
                let mut lines = vec![
                    format!("{} ({})", conv.slug, conv.id),
                    format!("name: {}", conv.name),
                    format!("events: {}", conv.len()),
                    format!("head: {}", conv.head),
                ];
                if let Some((from, at)) = conv.forked_from {
                    lines.push(format!("forked from: {from} at {at}"));
                }
                if let Some(turn) = conv.open_turn {
                    lines.push(format!("turn in progress: {turn}"));
                }
                lines.push(format!("created: {}", render::time(conv.created_at)));
                lines.join("\n")
            })
        }
        ConversationCommand::Delete(target) => {
            let conv = store.delete_conversation(&target.agent, &target.conversation)?;
            out.emit(render::conversation(&conv), || {
                format!("deleted conversation {}", conv.slug)
            })
        }
        ConversationCommand::Events {
            target,
            kind,
            session,
            turn,
            after,
            before,
            desc,
            limit,
        } => {
            let mut query = EventQuery {
                after,
                before,
                desc,
                limit: limit.map_or(exo_store::MAX_PAGE, |n| n as usize),
                kind,
                session,
                turn,
            };
            let mut events = Vec::new();
            let next_cursor = loop {
                let page = store.events(&target.agent, &target.conversation, &query)?;
                events.extend(page.events);
                match page.next_cursor {
                    // One page when a limit was given; every page otherwise.
                    Some(cursor) if limit.is_none() => {
                        if desc {
                            query.before = Some(cursor);
                        } else {
                            query.after = Some(cursor);
                        }
                    }
                    cursor => break cursor,
                }
            };
            out.emit(
                json!({
                    "events": events.iter().map(render::event).collect::<Vec<_>>(),
                    "next_cursor": next_cursor.map(|c| c.to_string()),
                }),
                || {
                    let mut lines: Vec<String> = events
                        .iter()
                        .map(|e| {
                            format!(
                                "{}  {}  {:<20} {}",
                                e.id,
                                render::time(e.created_at),
                                e.kind().as_str(),
                                render::event_summary(e)
                            )
                            .trim_end()
                            .to_string()
                        })
                        .collect();
                    if let Some(cursor) = next_cursor {
                        lines.push(format!(
                            "(more: --{} {cursor})",
                            if desc { "before" } else { "after" }
                        ));
                    }
                    lines.join("\n")
                },
            )
        }
        ConversationCommand::Event { target, event } => {
            let event = store.event(&target.agent, &target.conversation, event)?;
            out.emit(render::event(&event), || {
                serde_json::to_string_pretty(&render::event(&event)).unwrap_or_default()
            })
        }
        ConversationCommand::Append {
            target,
            expected_head,
        } => {
            let input = read_stdin("events")?;
            let text =
                std::str::from_utf8(&input).map_err(|err| anyhow!("stdin is not UTF-8: {err}"))?;
            let mut events = Vec::new();
            for (index, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let value: Value = serde_json::from_str(line)
                    .map_err(|err| anyhow!("line {}: invalid JSON: {err}", index + 1))?;
                let data = EventData::from_input_json(value)
                    .map_err(|err| anyhow!("line {}: {err}", index + 1))?;
                events.push(data);
            }
            if events.is_empty() {
                bail!("no events on stdin: give one JSON object per line, e.g. {{\"kind\":\"message\",\"role\":\"user\",\"content\":\"hi\"}}");
            }
            let appended =
                store.append(&target.agent, &target.conversation, events, expected_head)?;
            let head = appended
                .last()
                .map(|e| e.id.to_string())
                .unwrap_or_default();
            out.emit(
                json!({ "events": appended.iter().map(render::event).collect::<Vec<_>>(), "head": head }),
                || format!("appended {} events; head is {head}", appended.len()),
            )
        }
        ConversationCommand::Fork {
            target,
            name,
            at,
            slug,
        } => {
            let fork = store.fork(
                &target.agent,
                &target.conversation,
                ForkOptions { at, name, slug },
            )?;
            out.emit(render::conversation(&fork), || {
                let (_, at) = fork.forked_from.expect("a fork records its source");
                format!(
                    "forked {} at {at} into {} ({})",
                    target.conversation, fork.slug, fork.id
                )
            })
        }
        ConversationCommand::Rewind {
            target,
            to,
            expected_head,
        } => {
            let outcome = store.rewind(&target.agent, &target.conversation, to, expected_head)?;
            out.emit(
                json!({
                    "conversation": render::conversation(&outcome.conversation),
                    "event": outcome.event.as_ref().map(render::event),
                }),
                || match &outcome.event {
                    Some(event) => format!(
                        "rewound {} to {to}; recorded {} (head)",
                        outcome.conversation.slug, event.id
                    ),
                    None => format!("{} is already at {to}", outcome.conversation.slug),
                },
            )
        }
    }
}

fn read_stdin(what: &str) -> Result<Vec<u8>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!("expected {what} on stdin; pipe them in");
    }
    let mut input = Vec::new();
    stdin
        .lock()
        .take(MAX_STDIN_BYTES + 1)
        .read_to_end(&mut input)
        .context("reading stdin")?;
    if input.len() as u64 > MAX_STDIN_BYTES {
        bail!(
            "stdin is larger than the {} MiB limit",
            MAX_STDIN_BYTES >> 20
        );
    }
    Ok(input)
}

fn scope(store: &Store, scope: &ScopeArgs) -> Result<exo_core::Scope> {
    Ok(store.scope(scope.agent.as_deref(), scope.conversation.as_deref())?)
}

/// Whether an `--env` argument looks like a secret value rather than the
/// name of a variable. Such an argument is refused and never echoed.
fn looks_like_secret(text: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "sk-",
        "sk_",
        "pk-",
        "rk-",
        "ghp_",
        "gho_",
        "ghs_",
        "github_pat_",
        "xox",
        "glpat-",
        "AKIA",
        "AIza",
        "hf_",
        "eyJ",
    ];
    let is_variable_name = !text.is_empty()
        && !text.starts_with(|c: char| c.is_ascii_digit())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    !is_variable_name || PREFIXES.iter().any(|prefix| text.starts_with(prefix)) || text.len() > 64
}

fn secret(store: &Store, out: &Out, command: SecretCommand) -> Result<()> {
    match command {
        SecretCommand::Set {
            name,
            env,
            value,
            kind,
            scope: scope_args,
        } => {
            // Check everything that can be checked before a key file may be
            // created: bad input leaves no trace.
            exo_core::validate_name("secret", &name)?;
            let target = scope(store, &scope_args)?;
            if let Some(var) = &env {
                if looks_like_secret(var) {
                    bail!("--env takes the NAME of an environment variable (like OPENAI_API_KEY), and this argument looks like a secret value; it was not stored or echoed");
                }
            }
            let raw = zeroize::Zeroizing::new(match (env, value) {
                (Some(var), _) => match std::env::var(&var) {
                    Ok(value) if !value.is_empty() => value,
                    Ok(_) => bail!("environment variable {var} is empty"),
                    Err(std::env::VarError::NotPresent) => {
                        bail!("environment variable {var} is not set")
                    }
                    Err(std::env::VarError::NotUnicode(_)) => {
                        bail!("environment variable {var} is not valid UTF-8")
                    }
                },
                (None, Some(value)) => value,
                (None, None) => {
                    let bytes = zeroize::Zeroizing::new(read_stdin(
                        "the secret value (or use --env VAR / --value V)",
                    )?);
                    let text = std::str::from_utf8(&bytes)
                        .map_err(|_| anyhow!("the secret on stdin is not UTF-8"))?;
                    text.trim_end_matches(['\n', '\r']).to_string()
                }
            });
            let value = match kind {
                SecretKindArg::ApiKey => SecretValue::ApiKey { value: raw.to_string() },
                SecretKindArg::Oauth => serde_json::from_str::<Value>(&raw)
                    .ok()
                    .and_then(|mut object| {
                        object.as_object_mut()?.insert("type".into(), json!("oauth"));
                        serde_json::from_value(object).ok()
                    })
                    .ok_or_else(|| anyhow!("an oauth secret must be a JSON object {{\"access_token\", \"refresh_token\"?, \"expires_at\"?}}"))?,
            };
            let (key, source) =
                Key::load(true)?.ok_or_else(|| anyhow!("no encryption key available"))?;
            if let KeySource::CreatedFile(path) = &source {
                let _ = writeln!(
                    std::io::stderr(),
                    "exo: created encryption key file {}",
                    path.display()
                );
            }
            let info = store.set_secret(target, &name, &value, &key)?;
            out.emit(render::secret(&info), || {
                format!("set secret {} ({})", info.name, info.scope)
            })
        }
        SecretCommand::List { scope: scope_args } => {
            let secrets = store.secrets(scope(store, &scope_args)?)?;
            out.emit(
                json!({ "secrets": secrets.iter().map(render::secret).collect::<Vec<_>>() }),
                || {
                    let mut rows = vec![vec![
                        "NAME".into(),
                        "KIND".into(),
                        "SCOPE".into(),
                        "SET".into(),
                    ]];
                    rows.extend(secrets.iter().map(|s| {
                        vec![
                            s.name.clone(),
                            s.kind.as_str().into(),
                            s.scope.key(),
                            render::time(s.created_at),
                        ]
                    }));
                    table(rows)
                },
            )
        }
        SecretCommand::Show {
            name,
            scope: scope_args,
        } => {
            let info = store
                .secrets(scope(store, &scope_args)?)?
                .into_iter()
                .find(|info| info.name == name)
                .ok_or_else(|| exo_store::Error::NotFound {
                    what: "secret",
                    key: name.clone(),
                })?;
            out.emit(render::secret(&info), || {
                format!(
                    "{} ({}, {}), set {}; value hidden",
                    info.name,
                    info.kind.as_str(),
                    info.scope,
                    render::time(info.created_at)
                )
            })
        }
        SecretCommand::Delete {
            name,
            scope: scope_args,
        } => {
            let info = store.delete_secret(scope(store, &scope_args)?, &name)?;
            out.emit(render::secret(&info), || {
                format!("deleted secret {} ({})", info.name, info.scope)
            })
        }
    }
}

fn model(store: &Store, out: &Out, command: ModelCommand) -> Result<()> {
    match command {
        ModelCommand::Register {
            name,
            provider,
            base_url,
            upstream,
            secret,
            scope: scope_args,
        } => {
            let binding = Binding::Model {
                upstream: upstream.unwrap_or_else(|| name.clone()),
                name,
                provider,
                base_url: base_url.unwrap_or_else(|| provider.default_base_url().to_string()),
                secret,
            };
            let entry = store.set_binding(scope(store, &scope_args)?, binding).map_err(|err| match err {
                exo_store::Error::NotFound { what: "secret", key } => {
                    anyhow!("secret {key:?} not found; set it first with `exo secret set {key} --env VAR`")
                }
                other => other.into(),
            })?;
            out.emit(render::binding(&entry), || {
                format!("registered model {}", render::model_line(&entry))
            })
        }
        ModelCommand::List { scope: scope_args } => {
            let models = store.bindings(scope(store, &scope_args)?, Some(BindingKind::Model))?;
            out.emit(
                json!({ "models": models.iter().map(render::binding).collect::<Vec<_>>() }),
                || {
                    let mut rows = vec![vec![
                        "NAME".into(),
                        "PROVIDER".into(),
                        "UPSTREAM".into(),
                        "BASE URL".into(),
                        "SECRET".into(),
                    ]];
                    rows.extend(models.iter().filter_map(|entry| match &entry.binding {
                        Binding::Model {
                            name,
                            provider,
                            base_url,
                            upstream,
                            secret,
                        } => Some(vec![
                            name.clone(),
                            provider.to_string(),
                            upstream.clone(),
                            base_url.clone(),
                            secret.clone().unwrap_or_else(|| "-".into()),
                        ]),
                        _ => None,
                    }));
                    table(rows)
                },
            )
        }
        ModelCommand::Show {
            name,
            scope: scope_args,
        } => {
            let entry =
                store.resolve_binding(scope(store, &scope_args)?, BindingKind::Model, &name)?;
            out.emit(render::binding(&entry), || render::model_line(&entry))
        }
        ModelCommand::Delete {
            name,
            scope: scope_args,
        } => {
            let entry =
                store.delete_binding(scope(store, &scope_args)?, BindingKind::Model, &name)?;
            out.emit(render::binding(&entry), || {
                format!("deleted model {name} ({})", entry.scope)
            })
        }
    }
}

fn binding(store: &Store, out: &Out, command: BindingCommand) -> Result<()> {
    let parse_kind = |kind: &str| kind.parse::<BindingKind>().map_err(|err| anyhow!(err.0));
    match command {
        BindingCommand::Env {
            var,
            secret,
            scope: scope_args,
        } => {
            let entry = store.set_binding(
                scope(store, &scope_args)?,
                Binding::Env { name: var, secret },
            )?;
            out.emit(render::binding(&entry), || {
                format!("bound env {} ({})", entry.binding.name(), entry.scope)
            })
        }
        BindingCommand::Mcp {
            name,
            url,
            secret,
            scope: scope_args,
        } => {
            let entry = store.set_binding(
                scope(store, &scope_args)?,
                Binding::Mcp { name, url, secret },
            )?;
            out.emit(render::binding(&entry), || {
                format!("bound mcp {} ({})", entry.binding.name(), entry.scope)
            })
        }
        BindingCommand::List {
            kind,
            scope: scope_args,
        } => {
            let kind = kind.as_deref().map(parse_kind).transpose()?;
            let entries = store.bindings(scope(store, &scope_args)?, kind)?;
            out.emit(
                json!({ "bindings": entries.iter().map(render::binding).collect::<Vec<_>>() }),
                || {
                    let mut rows = vec![vec![
                        "KIND".into(),
                        "NAME".into(),
                        "TARGET".into(),
                        "SECRET".into(),
                    ]];
                    rows.extend(entries.iter().map(|entry| {
                        let target = match &entry.binding {
                            Binding::Env { .. } => "-".to_string(),
                            Binding::Mcp { url, .. } => url.clone(),
                            Binding::Model {
                                provider, base_url, ..
                            } => format!("{provider} {base_url}"),
                        };
                        vec![
                            entry.binding.kind().to_string(),
                            entry.binding.name().to_string(),
                            target,
                            entry.binding.secret().unwrap_or("-").to_string(),
                        ]
                    }));
                    table(rows)
                },
            )
        }
        BindingCommand::Show {
            kind,
            name,
            scope: scope_args,
        } => {
            let entry =
                store.resolve_binding(scope(store, &scope_args)?, parse_kind(&kind)?, &name)?;
            out.emit(render::binding(&entry), || {
                render::binding(&entry).to_string()
            })
        }
        BindingCommand::Delete {
            kind,
            name,
            scope: scope_args,
        } => {
            let entry =
                store.delete_binding(scope(store, &scope_args)?, parse_kind(&kind)?, &name)?;
            out.emit(render::binding(&entry), || {
                format!(
                    "deleted {} {} ({})",
                    entry.binding.kind(),
                    name,
                    entry.scope
                )
            })
        }
    }
}

fn artifact(store: &Store, out: &Out, command: ArtifactCommand) -> Result<()> {
    match command {
        ArtifactCommand::Put {
            target,
            path,
            file,
            media_type,
        } => {
            let bytes = match file {
                Some(file) if file.as_os_str() != "-" => {
                    let size = std::fs::metadata(&file)
                        .with_context(|| format!("reading {}", file.display()))?
                        .len();
                    if size > exo_store::MAX_ARTIFACT_BYTES as u64 {
                        bail!(
                            "{} is {size} bytes, more than the {} MiB artifact limit",
                            file.display(),
                            exo_store::MAX_ARTIFACT_BYTES >> 20
                        );
                    }
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?
                }
                _ => read_stdin("the artifact's bytes")?,
            };
            let version = store.put_artifact(
                &target.agent,
                &target.conversation,
                &path,
                &bytes,
                media_type.as_deref(),
            )?;
            out.emit(render::artifact(&version), || {
                format!(
                    "wrote {} v{} ({} bytes, sha256 {})",
                    version.path, version.version, version.size, version.sha256
                )
            })
        }
        ArtifactCommand::Get {
            target,
            path,
            version,
            output,
        } => {
            let (artifact, bytes) =
                store.get_artifact(&target.agent, &target.conversation, &path, version)?;
            if let Some(output) = output {
                std::fs::write(&output, &bytes)
                    .with_context(|| format!("writing {}", output.display()))?;
                return out.emit(render::artifact(&artifact), || {
                    format!(
                        "wrote {} v{} to {}",
                        artifact.path,
                        artifact.version,
                        output.display()
                    )
                });
            }
            if out.json {
                use base64::Engine;
                let mut value = render::artifact(&artifact);
                value["content_base64"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(&bytes));
                return out.emit(value, String::new);
            }
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(&bytes).and_then(|()| stdout.flush()) {
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => Ok(other?),
            }
        }
        ArtifactCommand::List { target, path } => {
            let artifacts = match path {
                Some(path) => {
                    store.artifact_versions(&target.agent, &target.conversation, &path)?
                }
                None => store.list_artifacts(&target.agent, &target.conversation)?,
            };
            out.emit(
                json!({ "artifacts": artifacts.iter().map(render::artifact).collect::<Vec<_>>() }),
                || {
                    let mut rows = vec![vec![
                        "PATH".into(),
                        "VERSION".into(),
                        "SIZE".into(),
                        "SHA256".into(),
                    ]];
                    rows.extend(artifacts.iter().map(|a| {
                        vec![
                            a.path.clone(),
                            a.version.to_string(),
                            a.size.to_string(),
                            a.sha256[..16].to_string(),
                        ]
                    }));
                    table(rows)
                },
            )
        }
    }
}
