//! Colours and progress on a terminal, nothing extra anywhere else.
//!
//! Colour follows `--color`: `auto` colours when the output is a terminal
//! and `NO_COLOR` is not set (https://no-color.org), `always` and `never`
//! say so. Progress is drawn on stderr only when stderr is a terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::args::ColorChoice;

static STDOUT: AtomicBool = AtomicBool::new(false);
static STDERR: AtomicBool = AtomicBool::new(false);

/// Decides once, at start-up, whether stdout and stderr get colours.
pub fn init(choice: ColorChoice) {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    let (stdout, stderr) = match choice {
        ColorChoice::Always => (true, true),
        ColorChoice::Never => (false, false),
        ColorChoice::Auto => (
            !no_color && std::io::stdout().is_terminal(),
            !no_color && std::io::stderr().is_terminal(),
        ),
    };
    STDOUT.store(stdout, Ordering::Relaxed);
    STDERR.store(stderr, Ordering::Relaxed);
}

/// A colour of text.
#[derive(Clone, Copy, Debug)]
pub enum Paint {
    Red,
    Green,
    Yellow,
    Blue,
    Magenta,
    Cyan,
    Bold,
    Dim,
}

impl Paint {
    fn code(self) -> &'static str {
        match self {
            Paint::Red => "31",
            Paint::Green => "32",
            Paint::Yellow => "33",
            Paint::Blue => "34",
            Paint::Magenta => "35",
            Paint::Cyan => "36",
            Paint::Bold => "1",
            Paint::Dim => "2",
        }
    }

    /// `text` in this colour, for stdout.
    pub fn out(self, text: &str) -> String {
        paint(STDOUT.load(Ordering::Relaxed), self, text)
    }

    /// `text` in this colour, for stderr.
    pub fn err(self, text: &str) -> String {
        paint(STDERR.load(Ordering::Relaxed), self, text)
    }
}

fn paint(enabled: bool, paint: Paint, text: &str) -> String {
    if enabled && !text.is_empty() {
        format!("\x1b[{}m{text}\x1b[0m", paint.code())
    } else {
        text.to_string()
    }
}

/// A unified diff with added lines green, removed lines red and hunk
/// headers cyan (on a terminal).
pub fn diff(text: &str) -> String {
    if !STDOUT.load(Ordering::Relaxed) {
        return text.to_string();
    }
    text.lines()
        .map(|line| {
            if line.starts_with("+++") || line.starts_with("---") {
                Paint::Bold.out(line)
            } else if line.starts_with('+') {
                Paint::Green.out(line)
            } else if line.starts_with('-') {
                Paint::Red.out(line)
            } else if line.starts_with("@@") {
                Paint::Cyan.out(line)
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `work`, showing a spinner with `message` and the time elapsed on
/// stderr while it runs, when stderr is a terminal and the work lasts
/// more than a moment. The service does not report how far it is, so the
/// spinner says that it works, not how much is left.
pub fn progress<T>(message: &str, work: impl FnOnce() -> T) -> T {
    if !std::io::stderr().is_terminal() {
        return work();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(message.to_string());
    // Drawn once at once, then on every tick.
    bar.tick();
    bar.enable_steady_tick(Duration::from_millis(120));
    let outcome = work();
    bar.finish_and_clear();
    outcome
}
