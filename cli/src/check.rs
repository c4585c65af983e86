//! `rebound check`: validates policy files.

use std::path::PathBuf;

use clap::Args;
use tower_rebound::Policy;

use crate::{EXIT_SUCCESS, EXIT_USAGE};

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Policy files to validate.
    #[arg(required = true, value_name = "POLICY_FILE")]
    files: Vec<PathBuf>,
    /// Print the policy written out whole, its bases resolved, as a TOML
    /// file that loads to the same policy (one file only).
    #[arg(long)]
    effective: bool,
    /// Treat warnings as errors: exit status 2 when there are any.
    #[arg(long)]
    deny_warnings: bool,
}

/// Prints `FILE: ok` for each valid file (or, with `--effective`, the
/// resolved policy) and `FILE:LINE:COL: warning: ...` on stderr for what is
/// valid but probably wrong; stops at the first invalid file with
/// `FILE:LINE:COL: message` on stderr and exit status 2. Stdout that
/// cannot be written (closed, or a full disk) is one line on stderr and exit
/// status 1.
pub(crate) fn run(args: &CheckArgs) -> u8 {
    if args.effective && args.files.len() != 1 {
        eprintln!("rebound: --effective prints one policy: give one file");
        return EXIT_USAGE;
    }
    let mut warned = false;
    for file in &args.files {
        let loaded = match Policy::load(file) {
            Ok(loaded) => loaded,
            Err(error) => {
                eprintln!("{error}");
                return EXIT_USAGE;
            }
        };
        for warning in loaded.warnings() {
            eprintln!("{warning}");
            warned = true;
        }
        let written = if args.effective {
            crate::write_stdout(&loaded.effective_toml())
        } else {
            crate::write_stdout(&format!("{}: ok\n", file.display()))
        };
        if let Err(code) = written {
            return code;
        }
    }
    if warned && args.deny_warnings {
        return EXIT_USAGE;
    }
    EXIT_SUCCESS
}
