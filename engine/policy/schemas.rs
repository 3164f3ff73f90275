//! The engine's own JSON Schemas, one per policy file kind, embedded in the binary.

use serde_json::Value;
use std::sync::OnceLock;

/// A kind of policy file and the schema that validates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Gateway,
    Product,
    Scopes,
    Tiers,
    Partner,
    Masking,
    /// catalogue/<domain>/legacy/*.toml
    Legacy,
    /// policies/pricing.toml
    Pricing,
}

impl FileKind {
    pub const ALL: [FileKind; 8] = [
        FileKind::Gateway,
        FileKind::Product,
        FileKind::Scopes,
        FileKind::Tiers,
        FileKind::Partner,
        FileKind::Masking,
        FileKind::Legacy,
        FileKind::Pricing,
    ];

    /// The name used in messages and for the schema file.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Gateway => "gateway",
            FileKind::Product => "product",
            FileKind::Scopes => "scopes",
            FileKind::Tiers => "tiers",
            FileKind::Partner => "partner",
            FileKind::Masking => "masking",
            FileKind::Legacy => "legacy",
            FileKind::Pricing => "pricing",
        }
    }

    /// Where files of this kind live, as a glob for editors (taplo).
    pub fn glob(self) -> &'static str {
        match self {
            FileKind::Gateway => "policies/gateway.toml",
            FileKind::Product => "catalogue/*/*.toml",
            FileKind::Scopes => "policies/scopes.toml",
            FileKind::Tiers => "policies/tiers.toml",
            FileKind::Partner => "policies/partners/*.toml",
            FileKind::Masking => "policies/masking.toml",
            FileKind::Legacy => "catalogue/*/legacy/*.toml",
            FileKind::Pricing => "policies/pricing.toml",
        }
    }

    /// The schema text as shipped.
    pub fn schema_text(self) -> &'static str {
        match self {
            FileKind::Gateway => include_str!("schemas/gateway.schema.json"),
            FileKind::Product => include_str!("schemas/product.schema.json"),
            FileKind::Scopes => include_str!("schemas/scopes.schema.json"),
            FileKind::Tiers => include_str!("schemas/tiers.schema.json"),
            FileKind::Partner => include_str!("schemas/partner.schema.json"),
            FileKind::Masking => include_str!("schemas/masking.schema.json"),
            FileKind::Legacy => include_str!("schemas/legacy.schema.json"),
            FileKind::Pricing => include_str!("schemas/pricing.schema.json"),
        }
    }

    pub fn schema_file_name(self) -> String {
        format!("{}.schema.json", self.name())
    }

    /// The parsed schema and its compiled validator, built once per process.
    pub fn compiled(self) -> &'static Compiled {
        static COMPILED: [OnceLock<Compiled>; FileKind::ALL.len()] = [const { OnceLock::new() }; FileKind::ALL.len()];
        let cell = &COMPILED[self as usize];
        cell.get_or_init(|| Compiled::new(self.schema_text()))
    }
}

/// A schema and its validator. The embedded schemas are tested; should one ever fail to
/// build, loading reports an internal error instead of panicking.
pub struct Compiled {
    pub schema: Value,
    pub validator: Option<jsonschema::Validator>,
}

impl Compiled {
    fn new(text: &str) -> Compiled {
        let schema: Value = serde_json::from_str(text).unwrap_or(Value::Bool(false));
        let validator = jsonschema::draft202012::new(&schema).ok();
        Compiled { schema, validator }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schemas_are_valid_2020_12() {
        for kind in FileKind::ALL {
            let schema: Value = serde_json::from_str(kind.schema_text()).unwrap();
            assert!(
                jsonschema::draft202012::meta::validator().is_valid(&schema),
                "{} schema is not valid 2020-12",
                kind.name()
            );
            jsonschema::draft202012::new(&schema).unwrap();
        }
    }
}
