//! `tollgate billing invoice|usage`: invoices and raw usage, read from the usage ledger
//! named by `[billing]` in the policy set's gateway.toml.

use crate::meter::invoice::{self, csv_cell, Period};
use crate::meter::ledger::{self, Ledger, UsageQuery, UsageRow};
use crate::route::Environment;
use clap::{Subcommand, ValueEnum};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum BillingCommand {
    /// A partner's invoice for one month: line items per event and band, subscription,
    /// revenue share, commitment and total, with the policy versions prices came from.
    Invoice {
        #[arg(long)]
        partner: String,
        /// The month, YYYY-MM (UTC).
        #[arg(long)]
        period: String,
        #[arg(long, default_value = ".")]
        root: PathBuf,
        #[arg(long, value_enum, default_value_t = InvoiceFormat::Md)]
        format: InvoiceFormat,
    },
    /// Raw usage rows, in time order.
    Usage {
        #[arg(long)]
        partner: Option<String>,
        /// The month, YYYY-MM (UTC); all time when absent.
        #[arg(long)]
        period: Option<String>,
        /// production (billable) or sandbox (recorded apart, never billed).
        #[arg(long, value_enum, default_value_t = EnvArg::Production)]
        environment: EnvArg,
        #[arg(long, default_value = ".")]
        root: PathBuf,
        #[arg(long, value_enum, default_value_t = UsageFormat::Csv)]
        format: UsageFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InvoiceFormat {
    Md,
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UsageFormat {
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvArg {
    Production,
    Sandbox,
}

pub fn run(command: BillingCommand) -> ExitCode {
    match command {
        BillingCommand::Invoice {
            partner,
            period,
            root,
            format,
        } => invoice_command(&root, &partner, &period, format),
        BillingCommand::Usage {
            partner,
            period,
            environment,
            root,
            format,
        } => usage_command(&root, partner, period.as_deref(), environment, format),
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// Opens the ledger the policy set's gateway.toml names.
fn open_ledger(root: &Path) -> Result<Box<dyn Ledger>, String> {
    let (set, _) = crate::policy::load(root);
    if set.gateway.is_none() {
        return Err(format!(
            "cannot read {} under `{}`; run `tollgate check`",
            crate::policy::GATEWAY_FILE,
            root.display()
        ));
    }
    let mut diags = crate::diagnostics::Diagnostics::default();
    let settings = crate::compile::pricing::ledger_settings(&set, &mut diags);
    if diags.has_errors() {
        return Err(format!("[billing] in gateway.toml has errors:\n{}", diags.render()));
    }
    // Reading must not create an empty ledger where none was written.
    if let ledger::LedgerStore::Sqlite { path } = &settings.store {
        if !path.exists() {
            return Err(format!(
                "no usage ledger at `{}`: tollgate has not served this policy set with policies/pricing.toml",
                path.display()
            ));
        }
    }
    ledger::open(&settings).map_err(|e| e.to_string())
}

fn period_arg(text: &str) -> Result<Period, String> {
    Period::parse(text).ok_or_else(|| format!("`{text}` is not a month: write YYYY-MM, e.g. 2026-11"))
}

fn invoice_command(root: &Path, partner: &str, period: &str, format: InvoiceFormat) -> ExitCode {
    let period = match period_arg(period) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let mut ledger = match open_ledger(root) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let (from_ms, to_ms) = period.bounds_ms();
    let query = UsageQuery {
        environment: Environment::Production,
        partner: Some(partner.to_string()),
        from_ms,
        to_ms,
    };
    let (rows, books) = match (ledger.usage(&query), ledger.books()) {
        (Ok(rows), Ok(books)) => (rows, books),
        (Err(e), _) | (_, Err(e)) => return fail(e),
    };
    let latest = books.last().map(|b| b.version.clone());
    let books: HashMap<String, _> = books.into_iter().map(|b| (b.version, b.book)).collect();
    match invoice::invoice(partner, period, &rows, &books, latest.as_deref()) {
        Ok(inv) => {
            match format {
                InvoiceFormat::Md => print!("{}", inv.to_markdown()),
                InvoiceFormat::Csv => print!("{}", inv.to_csv()),
                InvoiceFormat::Json => match serde_json::to_string_pretty(&inv) {
                    Ok(text) => println!("{text}"),
                    Err(e) => return fail(e),
                },
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn usage_command(
    root: &Path,
    partner: Option<String>,
    period: Option<&str>,
    environment: EnvArg,
    format: UsageFormat,
) -> ExitCode {
    let (from_ms, to_ms) = match period.map(period_arg) {
        Some(Ok(p)) => p.bounds_ms(),
        Some(Err(e)) => return fail(e),
        None => (0, i64::MAX),
    };
    let mut ledger = match open_ledger(root) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let query = UsageQuery {
        environment: match environment {
            EnvArg::Production => Environment::Production,
            EnvArg::Sandbox => Environment::Sandbox,
        },
        partner,
        from_ms,
        to_ms,
    };
    let rows = match ledger.usage(&query) {
        Ok(rows) => rows,
        Err(e) => return fail(e),
    };
    match format {
        UsageFormat::Json => match serde_json::to_string_pretty(&rows) {
            Ok(text) => println!("{text}"),
            Err(e) => return fail(e),
        },
        UsageFormat::Csv => print!("{}", usage_csv(&rows)),
    }
    ExitCode::SUCCESS
}

/// Usage rows as CSV, times in RFC 3339.
pub fn usage_csv(rows: &[UsageRow]) -> String {
    let mut out = String::from(
        "id,time,partner,environment,product,route,event,outcome,units,revenue_amount,interaction_id,policy_version\n",
    );
    for r in rows {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(r.at_ms).unwrap_or(0));
        let cells = [
            r.id.clone(),
            humantime::format_rfc3339_millis(time).to_string(),
            r.partner.clone(),
            r.environment.clone(),
            r.product.clone(),
            r.route.clone(),
            r.event.clone(),
            r.outcome.to_string(),
            r.units.to_string(),
            r.revenue_amount.map(|a| a.to_string()).unwrap_or_default(),
            r.interaction_id.clone(),
            r.policy_version.clone(),
        ];
        let cells: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}
