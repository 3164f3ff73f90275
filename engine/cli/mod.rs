//! The command line: `serve`, `check`, `schema`, `explain`, `partner`, `codec`, `billing`.

mod billing;
mod check;
mod codec;
mod explain;
mod partner;
mod schema;
mod serve;

use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "A declarative gateway for a bank's partner API platform"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the policy set, reloading it when the files change.
    Serve {
        /// Directory holding policies/ and catalogue/.
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// Override the address of the (single) public listener.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Override the admin listener's address.
        #[arg(long)]
        admin: Option<SocketAddr>,
        /// Do not watch the files; reload only on SIGHUP or POST /admin/reload.
        #[arg(long)]
        no_watch: bool,
    },
    /// Validate and compile the policy set; exit 1 if it has errors.
    Check {
        #[arg(long, default_value = ".")]
        root: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Reports for reviewers, derived from the compiled policy.
    Explain {
        #[command(subcommand)]
        command: ExplainCommand,
    },
    /// Helpers for onboarding partners: secrets, certificate thumbprints, what a partner may call.
    Partner {
        #[command(subcommand)]
        command: PartnerCommand,
    },
    /// Try a legacy layout on a sample: decode a record to JSON, or encode JSON to a record.
    Codec {
        #[command(subcommand)]
        command: codec::CodecCommand,
    },
    /// Invoices and raw usage from the usage ledger.
    Billing {
        #[command(subcommand)]
        command: billing::BillingCommand,
    },
    /// Write the JSON Schemas of the policy file kinds, for editors (taplo).
    Schema {
        /// Directory to write the schemas and a taplo configuration into.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print one kind's schema to stdout instead (gateway, product).
        kind: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ExplainCommand {
    /// For each partner and route: the response fields it receives and what happens to each.
    Exposure {
        #[arg(long)]
        partner: Option<String>,
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// md (Markdown, for reviewers) or json.
        #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
        format: ReportFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    Md,
    Json,
}

#[derive(Debug, Subcommand)]
enum PartnerCommand {
    /// Generate a client secret and print it with its Argon2id hash.
    Secret,
    /// Print the SHA-256 thumbprint of a PEM client certificate.
    Thumbprint { certificate: PathBuf },
    /// Show a partner's credentials and every route it may call.
    Show {
        id: String,
        #[arg(long, default_value = ".")]
        root: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
}

/// Parses the command line and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            root,
            listen,
            admin,
            no_watch,
        } => {
            init_logging(cli.log_format);
            serve::run(root, listen, admin, !no_watch)
        }
        Command::Check { root, format } => check::run(&root, format),
        Command::Schema { out, kind } => schema::run(out, kind),
        Command::Codec { command } => codec::run(command),
        Command::Billing { command } => billing::run(command),
        Command::Explain {
            command: ExplainCommand::Exposure { partner, root, format },
        } => {
            let format = match format {
                ReportFormat::Md => OutputFormat::Text,
                ReportFormat::Json => OutputFormat::Json,
            };
            explain::exposure(&root, partner.as_deref(), format)
        }
        Command::Partner { command } => match command {
            PartnerCommand::Secret => partner::secret(),
            PartnerCommand::Thumbprint { certificate } => partner::thumbprint(&certificate),
            PartnerCommand::Show { id, root, format } => partner::show(&root, &id, format),
        },
    }
}

/// Prints a line to stdout. A closed pipe (`tollgate check | head`) is not worth a panic.
fn out(text: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
