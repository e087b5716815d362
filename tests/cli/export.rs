//! `exo conversation export`: a conversation with real turns (the built-in
//! executor against the fake model server, writing a file in its
//! workspace), a rewind and hostile appended messages, exported as JSON
//! lines, Markdown and HTML; the HTML rendered by a real headless browser.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use exo_fake_model::{Completion, Wire};
use serde_json::{json, Value};

use crate::agent::{Fixture, TIMEOUT};
use crate::util::{assert_one_line_failure, Env};

const PROMPT: &str = "Please fix the second line of notes.txt";
const ANSWER: &str = "Fixed the second line.";
/// The new second line: a backtick run longer than a fence's three, so a
/// Markdown export must fence the diff with more.
const NEW_LINE: &str = "TWO ```` fenced";
const REWOUND_PROMPT: &str = "Say goodbye";
/// Appended messages that would run script if they were not escaped.
const SCRIPT: &str = "<script>document.title='pwned-by-script'</script>";
const IMG: &str = "<img src=x onerror=\"document.title='pwned-by-onerror'\">";

/// `coder/work` with one turn that rewrites a line of notes.txt (a tool
/// call, its approval and result, a file diff), a second turn rewound
/// away, and two appended messages holding markup.
fn recorded() -> Fixture {
    let fixture = Fixture::new(Wire::OpenAiChat, "auto");
    std::fs::write(fixture.workspace.join("notes.txt"), "one\ntwo\nthree\n").unwrap();
    fixture
        .model
        .push(Completion::text("I will edit it.").with_tool_call(
            "call_write",
            "write_file",
            json!({"path": "notes.txt", "content": format!("one\n{NEW_LINE}\nthree\n")}),
        ));
    fixture.model.push(Completion::text(ANSWER));
    fixture.send_ok("work", PROMPT);
    let first_turn_end = fixture.events("work").last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    fixture.model.push(Completion::text("Goodbye."));
    fixture.send_ok("work", REWOUND_PROMPT);
    fixture.ok(&[
        "conversation",
        "rewind",
        "coder",
        "work",
        "--to",
        &first_turn_end,
    ]);
    let lines = [
        json!({"kind": "message", "role": "user", "content": format!("{SCRIPT} and {IMG}")}),
        json!({"kind": "message", "role": "assistant", "content": "I will not run that."}),
    ];
    let input: String = lines.iter().map(|line| format!("{line}\n")).collect();
    let run = fixture.run_with(
        &["conversation", "append", "coder", "work"],
        input.as_bytes(),
    );
    assert_eq!(run.code, 0, "append failed: {}", run.stderr);
    fixture
}

fn export(fixture: &Fixture, format: &str) -> String {
    fixture
        .ok(&[
            "conversation",
            "export",
            "coder",
            "work",
            "--format",
            format,
        ])
        .stdout
}

#[test]
fn jsonl_holds_exactly_the_events_of_conversation_events() {
    let fixture = recorded();
    let jsonl = export(&fixture, "jsonl");
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON value"))
        .collect();
    assert_eq!(lines, fixture.events("work"));
    assert!(jsonl.ends_with('\n'));
    assert_eq!(jsonl.lines().count(), lines.len());
    // The history as of the head: the rewound turn is not in it.
    assert!(!jsonl.contains(REWOUND_PROMPT));
}

#[test]
fn markdown_holds_the_turn_its_tool_call_and_its_diff() {
    let fixture = recorded();
    let md = export(&fixture, "md");
    assert!(md.starts_with("# Work\n"), "{md}");
    assert!(md.contains("## Turn 1\n"), "{md}");
    assert!(md.contains(&format!("> {PROMPT}\n")), "{md}");
    assert!(md.contains(&format!("> {ANSWER}\n")), "{md}");
    assert!(
        md.contains("**Tool call** `write_file` (`call_write`)\n\n`````json\n"),
        "{md}"
    );
    assert!(md.contains("*Approval:* `write_file` allowed"), "{md}");
    assert!(md.contains("**Result** of `write_file`"), "{md}");
    assert!(md.contains("*Turn completed.*"), "{md}");
    // The diff, fenced with more backticks than the new line holds.
    let diff = fenced_block(&md, "`````diff\n").expect("a diff block");
    assert!(
        diff.contains("--- a/notes.txt\n+++ b/notes.txt\n"),
        "{diff}"
    );
    assert!(diff.contains("\n-two\n"), "{diff}");
    assert!(diff.contains(&format!("\n+{NEW_LINE}\n")), "{diff}");
    assert!(md.contains("- modified `notes.txt`"), "{md}");
    // The rewound turn is gone, the rewind is a note.
    assert!(!md.contains(REWOUND_PROMPT), "{md}");
    assert!(md.contains("*Rewound: the head moved from event"), "{md}");
    // Markup in a message is text for renderers that pass HTML through.
    assert!(
        md.contains("> \\<script>document.title='pwned-by-script'\\</script> and \\<img src=x"),
        "{md}"
    );
    // Deterministic: the same store, the same bytes.
    assert_eq!(export(&fixture, "md"), md);
}

/// The text of the fenced block opening with `open`, up to its fence.
fn fenced_block<'a>(md: &'a str, open: &str) -> Option<&'a str> {
    let start = md.find(open)? + open.len();
    let fence = &open[..open.find(|c| c != '`')?];
    let end = md[start..].find(&format!("\n{fence}\n"))?;
    Some(&md[start..start + end + 1])
}

#[test]
fn html_is_one_page_with_every_piece_of_content_escaped() {
    let fixture = recorded();
    let html = export(&fixture, "html");
    assert!(html.starts_with("<!DOCTYPE html>\n"), "{html}");
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(html.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'"
    ));
    // Nothing fetched, nothing run.
    for reference in [
        "http://", "https://", "<script", "<link", "<img", "<iframe", "src=\"", "href=\"", "url(",
        "@import",
    ] {
        assert!(!html.contains(reference), "{reference} in {html}");
    }
    // The markup of the appended message is text.
    assert!(html.contains(
        "&lt;script&gt;document.title=&#39;pwned-by-script&#39;&lt;/script&gt; and &lt;img src=x onerror=&quot;"
    ));
    assert!(html.contains(PROMPT) && html.contains(ANSWER));
    assert!(html.contains("<span class=\"del\">-two</span>"), "{html}");
    assert!(html.contains(&format!("<span class=\"add\">+{NEW_LINE}</span>")));
    assert!(!html.contains(REWOUND_PROMPT));
}

#[test]
fn html_rendered_by_a_headless_browser_shows_the_content_and_runs_nothing() {
    let Some(chromium) = find_in_path("chromium") else {
        eprintln!("skipped: chromium not installed (scripts/setup-chromium installs it)");
        return;
    };
    let fixture = recorded();
    let page = fixture.env.dir().join("export.html");
    fixture.ok(&[
        "conversation",
        "export",
        "coder",
        "work",
        "--format",
        "html",
        "-o",
        page.to_str().unwrap(),
    ]);
    let dom = dump_dom(&chromium, &fixture.env, &page);
    // The title is the page's own: neither injected handler ran.
    let title = between(&dom, "<title>", "</title>").expect("a title");
    assert_eq!(title, "Work \u{2014} exo conversation", "{dom}");
    // No element was made from a message: its markup is text in the DOM.
    assert!(!dom.contains("<script"), "{dom}");
    assert!(!dom.contains("<img"), "{dom}");
    assert!(
        dom.contains("&lt;script&gt;document.title='pwned-by-script'&lt;/script&gt;"),
        "{dom}"
    );
    assert!(dom.contains("&lt;img src=x onerror=\"document.title='pwned-by-onerror'\"&gt;"));
    // The messages, the tool call and the diff's lines are there.
    for text in [
        PROMPT,
        ANSWER,
        "I will not run that.",
        "Tool call <code>write_file</code>",
        "<span class=\"del\">-two</span>",
        &format!("<span class=\"add\">+{NEW_LINE}</span>"),
    ] {
        assert!(dom.contains(text), "{text} not in {dom}");
    }
}

/// `<dir>/<name>` for the first directory of `PATH` holding an executable
/// `name`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| {
            std::fs::metadata(path)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// The DOM chromium builds from `page`, offline, with a fresh profile.
fn dump_dom(chromium: &Path, env: &Env, page: &Path) -> String {
    let profile = env.dir().join("chromium-profile");
    std::fs::create_dir(&profile).unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .current_dir(env.dir())
        .env("HOME", env.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    // Read stdout on a thread, so a full pipe never stalls the browser.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut dom = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut dom).map(|_| dom)
    });
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let dom = reader.join().unwrap().expect("chromium's stdout");
    let errors = errors.join().unwrap();
    assert!(status.success(), "chromium exited with {status}: {errors}");
    assert!(dom.contains("</html>"), "no DOM from chromium: {errors}");
    dom
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)?;
    Some(&text[from..from + to])
}

#[test]
fn an_output_file_is_written_whole_the_same_with_a_daemon() {
    let fixture = recorded();
    let out_dir = fixture.env.dir().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let file = out_dir.join("work.md");
    std::fs::write(&file, "old").unwrap();
    let run = fixture.ok(&[
        "conversation",
        "export",
        "coder",
        "work",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert_eq!(run.stdout, "");
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(written, export(&fixture, "md"));
    // Only the file: no temporary file left beside it.
    let names: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["work.md"]);

    // Through a daemon: the same bytes, and the same refusal of the root.
    let formats = ["md", "html", "jsonl"];
    let in_process: Vec<String> = formats.iter().map(|f| export(&fixture, f)).collect();
    let daemon = fixture.daemon();
    for (format, expected) in formats.iter().zip(&in_process) {
        assert_eq!(&export(&fixture, format), expected, "{format}");
    }
    let inside = fixture.root.join("work.md");
    let run = fixture.run(&[
        "conversation",
        "export",
        "coder",
        "work",
        "-o",
        inside.to_str().unwrap(),
    ]);
    assert_one_line_failure(&run, &["conversation", "export", "-o"]);
    assert!(run.stderr.contains("inside the exo root"), "{}", run.stderr);
    assert!(!inside.exists());
    fixture.stop(daemon);
}

#[test]
fn bad_exports_fail_in_one_line_or_as_usage_errors() {
    let env = Env::new();
    env.agent_and_conversation();
    // An unknown conversation.
    let stderr = env.fails(&["conversation", "export", "a", "nope"]);
    assert!(stderr.contains("nope"), "{stderr}");
    // An unknown format: a usage error naming the formats.
    let run = env.run(&["conversation", "export", "a", "c", "--format", "pdf"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    for format in ["md", "html", "jsonl"] {
        assert!(run.stderr.contains(format), "{}", run.stderr);
    }
    // A directory that does not exist: nothing written.
    let missing = env.dir().join("missing").join("out.md");
    let stderr = env.fails(&[
        "conversation",
        "export",
        "a",
        "c",
        "-o",
        missing.to_str().unwrap(),
    ]);
    assert!(stderr.contains("missing"), "{stderr}");
    assert!(!env.dir().join("missing").exists());
    // Inside the root: refused, nothing written.
    let inside = env.root().join("c.md");
    let stderr = env.fails(&[
        "conversation",
        "export",
        "a",
        "c",
        "-o",
        inside.to_str().unwrap(),
    ]);
    assert!(stderr.contains("inside the exo root"), "{stderr}");
    assert!(!inside.exists());
    // A conversation without turns still exports, in every format.
    for format in ["md", "html", "jsonl"] {
        let run = env.ok(&["conversation", "export", "a", "c", "--format", format]);
        assert!(!run.stdout.is_empty());
    }
}
