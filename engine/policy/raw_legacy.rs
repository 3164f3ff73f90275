//! Raw types of legacy layout files (`catalogue/<domain>/legacy/<name>.toml`) and of a
//! route's `legacy` key, as serde reads them after schema validation. `compile::legacy`
//! turns them into `legacy::Codec`s; request code never sees them.

use serde::Deserialize;
use std::collections::BTreeMap;

/// catalogue/<domain>/legacy/<name>.toml: a fixed-width layout or an XML mapping.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLayout {
    pub format: RawLayoutFormat,
    pub description: Option<String>,
    /// fixed: the character set of text fields.
    pub charset: Option<RawCharset>,
    /// fixed, one record type: the record length in bytes.
    pub length: Option<u64>,
    /// fixed, several record types: the field that holds the record-type code.
    pub record_type: Option<String>,
    /// fixed, one record type; xml: the mapped fields.
    pub fields: Option<Vec<RawField>>,
    /// fixed, several record types.
    pub records: Option<Vec<RawRecord>>,
    /// xml: the document element (`Document`, or the SOAP body's element).
    pub root: Option<String>,
    /// xml: the default namespace of unprefixed names.
    pub namespace: Option<String>,
    /// xml: more namespaces by prefix.
    #[serde(default)]
    pub namespaces: BTreeMap<String, String>,
    /// xml: wrap in a SOAP 1.1 envelope.
    pub soap: Option<RawSoap>,
    /// Code tables by name: legacy code -> JSON value.
    #[serde(default)]
    pub codes: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawLayoutFormat {
    Fixed,
    Xml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RawCharset {
    #[serde(rename = "ascii")]
    Ascii,
    #[serde(rename = "ebcdic-cp037")]
    EbcdicCp037,
}

/// One record type of a multi-record layout.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecord {
    pub name: String,
    pub code: Option<String>,
    pub length: Option<u64>,
    pub repeat: Option<RawRepeat>,
    pub json: Option<String>,
    pub fields: Vec<RawField>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawRepeat {
    Once,
    Optional,
    Many,
}

/// `[soap]`: SOAP 1.1 envelope.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSoap {
    pub action: String,
    pub version: Option<String>,
}

/// A field, a group (with `fields`), a constant (`const`) or a join (`template`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    pub name: Option<String>,
    pub pic: Option<String>,
    pub usage: Option<RawUsage>,
    pub offset: Option<u64>,
    pub occurs: Option<u64>,
    pub depending_on: Option<String>,
    pub xml: Option<String>,
    pub json: Option<String>,
    pub json_type: Option<RawJsonType>,
    pub value: Option<String>,
    #[serde(rename = "const")]
    pub constant: Option<serde_json::Value>,
    pub template: Option<String>,
    pub codes: Option<RawCodes>,
    pub trim: Option<RawTrim>,
    pub date: Option<String>,
    pub currency: Option<String>,
    pub currency_code: Option<String>,
    pub indicator: Option<RawIndicator>,
    pub compute: Option<RawCompute>,
    pub of: Option<String>,
    pub required: Option<bool>,
    pub fields: Option<Vec<RawField>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RawUsage {
    #[serde(rename = "display")]
    Display,
    #[serde(rename = "comp-3")]
    Comp3,
    #[serde(rename = "comp")]
    Comp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RawJsonType {
    String,
    Integer,
    Decimal,
    Date,
    DateTime,
}

/// A code table by name, or inline.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawCodes {
    Named(String),
    Inline(BTreeMap<String, String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawTrim {
    None,
    Left,
    Right,
    Both,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIndicator {
    pub json: String,
    pub positive: String,
    pub negative: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawCompute {
    Count,
    Sum,
    Now,
}

/// A route's `legacy = { request = "...", response = "...", content_type = "..." }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteLegacy {
    pub request: Option<String>,
    pub response: Option<String>,
    pub content_type: Option<String>,
}
