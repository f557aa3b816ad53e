//! Commands of the `optc` tool. Each returns the process exit code.

pub mod args;
mod bind;

use args::{Cli, Command};

/// Exit codes, documented in README.md and spec/cli.md.
pub const EXIT_OK: u8 = 0;
pub const EXIT_LIMIT: u8 = 1;
pub const EXIT_INFEASIBLE: u8 = 2;
pub const EXIT_USAGE: u8 = 64;
pub const EXIT_MODEL: u8 = 65;
pub const EXIT_NO_INPUT: u8 = 66;
pub const EXIT_INTERNAL: u8 = 70;

pub fn dispatch(cli: Cli) -> u8 {
    match cli.command {
        Command::Check(_)
        | Command::Emit(_)
        | Command::Eval(_)
        | Command::Run(_)
        | Command::Explain(_)
        | Command::Bench(_)
        | Command::Simulate(_) => {
            eprintln!("not wired yet");
            EXIT_INTERNAL
        }
    }
}
