//! `rebound check`: validates policy files.

use std::path::PathBuf;

use clap::Args;
use rebound::Policy;

use crate::{EXIT_SUCCESS, EXIT_USAGE};

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Policy files to validate.
    #[arg(required = true, value_name = "POLICY_FILE")]
    files: Vec<PathBuf>,
}

/// Prints `FILE: ok` for each valid file; stops at the first invalid one with
/// `FILE:LINE:COL: message` on stderr and exit status 2.
pub(crate) fn run(args: &CheckArgs) -> u8 {
    for file in &args.files {
        match Policy::from_path(file) {
            Ok(_) => println!("{}: ok", file.display()),
            Err(error) => {
                eprintln!("{error}");
                return EXIT_USAGE;
            }
        }
    }
    EXIT_SUCCESS
}
