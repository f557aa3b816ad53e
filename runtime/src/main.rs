//! The `optc` command-line tool: glues the compiler and the runtime. Only this binary prints:
//! results to stdout, progress and diagnostics to stderr.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so a closed pipe (`optc explain --list | head -1`) would make the
    // next print fail and look like a crash: restore the default, which ends the process quietly.
    #[cfg(unix)]
    // SAFETY: called first in main, before any other thread exists; SIG_DFL is a valid action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // A panic is a bug in optc: say so plainly, without a raw backtrace unless asked for one.
    let show_backtrace = std::env::var_os("OPTC_BACKTRACE").is_some();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if show_backtrace {
            default_hook(info);
        }
    }));
    // Kernels run on one thread (faer would otherwise use every core for factorizations), so
    // timings are per core and results do not depend on the machine's thread count.
    faer::set_global_parallelism(faer::Par::Seq);
    let parsed = match cli::args::Cli::try_parse() {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { cli::EXIT_USAGE } else { 0 });
        }
    };
    match std::panic::catch_unwind(|| cli::dispatch(parsed)) {
        Ok(code) => ExitCode::from(code),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            eprintln!("internal error: optc crashed ({what}).");
            eprintln!(
                "This is a bug in optc; please report it with the model and command that triggered it \
                 (set OPTC_BACKTRACE=1 for a backtrace)."
            );
            ExitCode::from(cli::EXIT_INTERNAL)
        }
    }
}
