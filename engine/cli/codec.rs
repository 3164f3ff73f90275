//! `tollgate codec decode|encode --layout FILE`: try a legacy layout on a sample.
//!
//! Decoding reads a record (or an XML document) and prints its JSON; encoding reads JSON and
//! writes the record's bytes to stdout. A layout with errors is reported like `check` does;
//! a record that does not match is reported with its offset, field, what was expected and
//! the offending bytes in hex.

use crate::compile::legacy::compile_file;
use crate::legacy::DecodeError;
use clap::Subcommand;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum CodecCommand {
    /// Read a legacy record (or XML document) and print it as JSON.
    Decode {
        /// The layout file (catalogue/<domain>/legacy/<name>.toml).
        #[arg(long)]
        layout: PathBuf,
        /// The record to read; `-` (the default) reads stdin.
        #[arg(long, default_value = "-")]
        input: PathBuf,
    },
    /// Read JSON and write the legacy record to stdout.
    Encode {
        #[arg(long)]
        layout: PathBuf,
        /// The JSON body; `-` (the default) reads stdin.
        #[arg(long, default_value = "-")]
        input: PathBuf,
    },
}

pub fn run(command: CodecCommand) -> ExitCode {
    let (layout, input, decode) = match command {
        CodecCommand::Decode { layout, input } => (layout, input, true),
        CodecCommand::Encode { layout, input } => (layout, input, false),
    };
    let text = match std::fs::read_to_string(&layout) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("error: cannot read layout `{}`: {error}", layout.display());
            return ExitCode::FAILURE;
        }
    };
    let codec = match compile_file(&layout, text) {
        Ok((codec, warnings)) => {
            eprint!("{}", warnings.render());
            codec
        }
        Err(diagnostics) => {
            let rendered = diagnostics.render();
            eprint!("{}", rendered.replace("the policy set has", "the layout has"));
            return ExitCode::FAILURE;
        }
    };
    let bytes = match read_input(&input) {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("error: cannot read `{}`: {error}", input.display());
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if decode {
        match codec.decode(&bytes) {
            Ok(value) => {
                let _ = writeln!(stdout, "{}", serde_json::to_string_pretty(&value).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Err(DecodeError::Record(e)) => {
                eprintln!(
                    "error[bad-record]: the record does not match layout `{}`\n  = at offset {}, field `{}`\n  = expected {}\n  = found {}",
                    codec.name, e.offset, e.field, e.expected, e.found
                );
                ExitCode::FAILURE
            }
            Err(DecodeError::Fault { code }) => {
                eprintln!("error[soap-fault]: the answer is a SOAP fault, faultcode `{code}`");
                ExitCode::FAILURE
            }
        }
    } else {
        let value: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(value) => value,
            Err(error) => {
                eprintln!("error[malformed-json]: the input is not JSON: {error}");
                return ExitCode::FAILURE;
            }
        };
        match codec.encode(&value) {
            Ok(record) => {
                let _ = stdout.write_all(&record);
                let _ = stdout.flush();
                ExitCode::SUCCESS
            }
            Err(e) => {
                let at = if e.pointer.is_empty() { "/" } else { &e.pointer };
                eprintln!(
                    "error[unsupported-value]: layout `{}` cannot carry the value at {at}\n  = {}",
                    codec.name, e.detail
                );
                ExitCode::FAILURE
            }
        }
    }
}

fn read_input(input: &Path) -> std::io::Result<Vec<u8>> {
    if input == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin().lock().read_to_end(&mut bytes)?;
        Ok(bytes)
    } else {
        std::fs::read(input)
    }
}
