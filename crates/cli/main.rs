//! The `exo` binary. All of its code lives in the `exo-cli` library.

fn main() -> std::process::ExitCode {
    exo_cli::main()
}
