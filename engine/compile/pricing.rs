//! policies/pricing.toml and the billing keys of routes, tiers and partners -> the price
//! tables of `meter` and each route's `RouteBilling`; then the checks that make a billing
//! gap a compile error: a billable event a partner can call with no price in its plan, a
//! plan named but not defined, money in another currency than its plan's, bands that
//! overlap or leave gaps, and a revenue share on an event no route gives an amount for.
//!
//! Without pricing.toml nothing is metered: billing is switched on by writing the file,
//! and from then on every check applies.

use crate::access::AccessTable;
use crate::diagnostics::{did_you_mean, Diagnostic, Diagnostics, Location};
use crate::meter::amount::AmountPath;
use crate::meter::ledger::{LedgerSettings, LedgerStore};
use crate::meter::price::{Band, Charge, EventPrice, Plan, PriceBook, RevenueShare, Rounding};
use crate::meter::{AmountSide, Pricing, RouteBilling};
use crate::pipeline::RoutePlan;
use crate::policy::document::{escape_pointer, Document};
use crate::policy::raw_pricing::{
    RawAmountSide, RawBandPricing, RawEventPrice, RawLedgerKind, RawPlan, RawPricing, RawRounding,
};
use crate::policy::{Loaded, PolicySet};
use crate::route::Environment;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Compiles billing: each route's `RouteBilling` (attached only when pricing.toml exists),
/// and the price book with the ledger settings. `None` when billing is off.
pub fn compile(
    set: &PolicySet,
    routes: &mut [RoutePlan],
    access: &AccessTable,
    diags: &mut Diagnostics,
) -> Option<Arc<Pricing>> {
    let billing = route_billing(set, diags);
    let loaded = set.pricing.as_ref()?;
    let mut events: BTreeMap<String, bool> = BTreeMap::new();
    for route in routes.iter_mut() {
        if let Some(b) = billing.get(&*route.id) {
            let has_amount = b.amount.is_some();
            *events.entry(b.event.to_string()).or_default() |= has_amount;
            route.billing = Some(Arc::new(b.clone()));
        }
    }
    let plans = compile_plans(loaded, &events, diags);
    let partners = assign(set, routes, access, loaded, diags);
    Some(Arc::new(Pricing {
        version: Arc::from(set.version.sha256.as_str()),
        book: PriceBook {
            rounding: rounding(loaded.raw.rounding),
            plans,
            partners,
        },
        ledger: ledger_settings(set, diags),
    }))
}

fn rounding(raw: Option<RawRounding>) -> Rounding {
    match raw {
        None | Some(RawRounding::HalfEven) => Rounding::HalfEven,
        Some(RawRounding::HalfUp) => Rounding::HalfUp,
        Some(RawRounding::Down) => Rounding::Down,
        Some(RawRounding::Up) => Rounding::Up,
    }
}

/// Each billable route's facts by route id, from the product files.
fn route_billing(set: &PolicySet, diags: &mut Diagnostics) -> HashMap<String, RouteBilling> {
    let mut out = HashMap::new();
    for product in &set.products {
        let doc = &product.doc;
        for (i, route) in product.raw.routes.iter().enumerate() {
            let at = |key: &str| doc.value_location(&format!("/routes/{i}/{key}"));
            let Some(event) = &route.billable_event else {
                for (key, present) in [
                    ("bill_on", route.bill_on.is_some()),
                    ("revenue_amount", route.revenue_amount.is_some()),
                ] {
                    if present {
                        diags.push(
                            Diagnostic::error("billing-without-event", format!("`{key}` is set but `billable_event` is not"))
                                .at(doc.key_location(&format!("/routes/{i}/{key}")))
                                .help("name the event the route emits, e.g. billable_event = \"payments.initiated\", or remove the key"),
                        );
                    }
                }
                continue;
            };
            let mut bill_on = [true, false, false, false];
            if let Some(classes) = &route.bill_on {
                bill_on = [false; 4];
                for class in classes {
                    // The schema allows only "2xx".."5xx": the first digit picks the slot.
                    let slot = class.bytes().next().map(|d| usize::from(d.wrapping_sub(b'2')));
                    if let Some(flag) = slot.and_then(|slot| bill_on.get_mut(slot)) {
                        *flag = true;
                    }
                }
            }
            let amount = route
                .revenue_amount
                .as_ref()
                .and_then(|raw| match AmountPath::parse(&raw.path) {
                    Ok(path) => Some((
                        match raw.from {
                            RawAmountSide::Request => AmountSide::Request,
                            RawAmountSide::Response => AmountSide::Response,
                        },
                        path,
                    )),
                    Err(why) => {
                        diags.push(
                            Diagnostic::error(
                                "invalid-jsonpath",
                                format!("`{}` is not an amount path: {why}", raw.path),
                            )
                            .at(at("revenue_amount/path"))
                            .help("name one field from the root, e.g. \"$.instructed_amount.amount\""),
                        );
                        None
                    }
                });
            if let Some(raw) = &route.revenue_amount {
                if raw.from == RawAmountSide::Request && route.request_schema.is_none() {
                    diags.push(
                        Diagnostic::error(
                            "no-request-body",
                            "the revenue amount is read from a request body the route does not validate",
                        )
                        .at(at("revenue_amount/from"))
                        .help("give the route a request_schema that declares the amount, or read it from the response"),
                    );
                }
            }
            out.insert(
                route.id.clone(),
                RouteBilling {
                    event: Arc::from(event.as_str()),
                    product: Arc::from(product.raw.id.as_str()),
                    bill_on,
                    amount,
                },
            );
        }
    }
    out
}

/// Money as written: "0.05" or "GBP 0.05". Checks the currency and, for amounts that are
/// charged as they are (fees, floors, caps), that they fit the currency's minor unit.
struct MoneyCheck<'a> {
    doc: &'a Document,
    currency: &'a str,
    exponent: u32,
    diags: &'a mut Diagnostics,
}

impl MoneyCheck<'_> {
    fn read(&mut self, text: &str, pointer: &str, whole_minor_units: bool) -> Option<Decimal> {
        let (code, number) = match text.split_once(' ') {
            Some((code, number)) => (Some(code), number),
            None => (None, text),
        };
        if let Some(code) = code {
            if code != self.currency {
                self.diags.push(
                    Diagnostic::error(
                        "currency-mismatch",
                        format!("`{text}` is in {code}, but the plan's currency is {}", self.currency),
                    )
                    .at(self.doc.value_location(pointer))
                    .help(format!(
                        "a plan charges in one currency: write the amount in {}",
                        self.currency
                    )),
                );
                return None;
            }
        }
        let Ok(value) = Decimal::from_str(number) else {
            self.diags.push(
                Diagnostic::error("invalid-amount", format!("`{text}` is not a decimal amount"))
                    .at(self.doc.value_location(pointer))
                    .help("write a decimal string, e.g. \"0.05\" (at most 28 significant digits)"),
            );
            return None;
        };
        if whole_minor_units && value.normalize().scale() > self.exponent {
            self.diags.push(
                Diagnostic::error(
                    "invalid-amount",
                    format!(
                        "`{text}` has more decimals than {} has ({})",
                        self.currency, self.exponent
                    ),
                )
                .at(self.doc.value_location(pointer))
                .help("fees, commitments, floors and caps are charged as written: use the currency's minor unit"),
            );
            return None;
        }
        Some(value)
    }
}

/// Compiles every plan. `events` are the events routes emit (true: some route gives a
/// revenue amount).
fn compile_plans(
    loaded: &Loaded<RawPricing>,
    events: &BTreeMap<String, bool>,
    diags: &mut Diagnostics,
) -> BTreeMap<String, Plan> {
    let doc = &loaded.doc;
    let mut plans = BTreeMap::new();
    for (id, raw) in &loaded.raw.plans {
        let base = format!("/plans/{}", escape_pointer(id));
        if let Some(plan) = compile_plan(id, raw, &base, events, doc, diags) {
            plans.insert(id.clone(), plan);
        }
    }
    plans
}

fn compile_plan(
    id: &str,
    raw: &RawPlan,
    base: &str,
    events: &BTreeMap<String, bool>,
    doc: &Document,
    diags: &mut Diagnostics,
) -> Option<Plan> {
    let Some(exponent) = crate::legacy::convert::currency_exponent(&raw.currency) else {
        diags.push(
            Diagnostic::error(
                "unknown-currency",
                format!("`{}` is not an ISO 4217 currency", raw.currency),
            )
            .at(doc.value_location(&format!("{base}/currency")))
            .help("write a three-letter ISO 4217 code, e.g. \"GBP\", \"EUR\""),
        );
        return None;
    };
    let errors_before = diags.error_count();
    let mut money = MoneyCheck {
        doc,
        currency: &raw.currency,
        exponent: u32::from(exponent),
        diags,
    };
    let fee = |key: &str, text: &Option<String>, money: &mut MoneyCheck<'_>| match text {
        Some(text) => money.read(text, &format!("{base}/{key}"), true).unwrap_or_default(),
        None => Decimal::ZERO,
    };
    let subscription = fee("subscription", &raw.subscription, &mut money);
    let minimum_commitment = fee("minimum_commitment", &raw.minimum_commitment, &mut money);
    let mut prices = BTreeMap::new();
    for (event, price) in &raw.events {
        let pointer = format!("{base}/events/{}", escape_pointer(event));
        match events.get(event) {
            None => {
                let mut d = Diagnostic::warning("unknown-event", format!("no route emits `{event}`"))
                    .at(money.doc.key_location(&pointer));
                d = match did_you_mean(event, events.keys().map(String::as_str)) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help("a route emits an event with billable_event in its product file"),
                };
                money.diags.push(d);
            }
            Some(false) if price.revenue_share.is_some() => money.diags.push(
                Diagnostic::error(
                    "no-revenue-amount",
                    format!("`{event}` has a revenue share, but no route emitting it gives an amount"),
                )
                .at(money.doc.key_location(&format!("{pointer}/revenue_share")))
                .help("add revenue_amount = { from = \"request\", path = \"$...\" } to the route, or remove the share"),
            ),
            Some(_) => {}
        }
        if let Some(compiled) = compile_event(event, price, &pointer, &mut money) {
            prices.insert(event.clone(), compiled);
        }
    }
    (diags.error_count() == errors_before).then(|| Plan {
        id: id.to_string(),
        name: raw.name.clone(),
        currency: raw.currency.clone(),
        exponent: u32::from(exponent),
        subscription,
        included_calls: raw.included_calls.unwrap_or(0),
        minimum_commitment,
        events: prices,
    })
}

fn compile_event(event: &str, raw: &RawEventPrice, pointer: &str, money: &mut MoneyCheck<'_>) -> Option<EventPrice> {
    let doc = money.doc;
    let given = [raw.price.is_some(), raw.free == Some(true), raw.bands.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        money.diags.push(
            Diagnostic::error(
                "ambiguous-price",
                format!("`{event}` needs exactly one of `price`, `bands` or `free = true`"),
            )
            .at(doc.key_location(pointer))
            .help("write price = \"0.05\" for one price per call, bands = [...] for volume bands, or free = true"),
        );
        return None;
    }
    if raw.pricing.is_some() && raw.bands.is_none() {
        money.diags.push(
            Diagnostic::error("unused-key", "`pricing` has no effect without `bands`")
                .at(doc.key_location(&format!("{pointer}/pricing")))
                .help("remove it, or give the event bands"),
        );
    }
    let charge = if let Some(price) = &raw.price {
        Charge::Flat(money.read(price, &format!("{pointer}/price"), false)?)
    } else if let Some(raw_bands) = &raw.bands {
        let bands = compile_bands(raw_bands, pointer, money)?;
        match raw.pricing {
            Some(RawBandPricing::Volume) => Charge::Volume(bands),
            _ => Charge::Graduated(bands),
        }
    } else {
        Charge::Free
    };
    let revenue_share = match &raw.revenue_share {
        None => None,
        Some(share) => {
            let at = |key: &str| format!("{pointer}/revenue_share/{key}");
            let percent = Decimal::from_str(share.percent.trim_end_matches('%')).ok();
            let Some(percent) = percent.filter(|p| *p <= Decimal::ONE_HUNDRED) else {
                money.diags.push(
                    Diagnostic::error(
                        "invalid-value",
                        format!("`{}` is not a percentage of at most 100%", share.percent),
                    )
                    .at(doc.value_location(&at("percent")))
                    .help("write e.g. \"0.1%\""),
                );
                return None;
            };
            let floor = share.floor.as_ref().map(|t| money.read(t, &at("floor"), true));
            let cap = share.cap.as_ref().map(|t| money.read(t, &at("cap"), true));
            let (floor, cap) = (floor.map(|f| f.unwrap_or_default()), cap.map(|c| c.unwrap_or_default()));
            if let (Some(f), Some(c)) = (floor, cap) {
                if f > c {
                    money.diags.push(
                        Diagnostic::error("invalid-value", format!("the floor ({f}) is above the cap ({c})"))
                            .at(doc.value_location(&at("floor")))
                            .help("a share is at least the floor and at most the cap: floor <= cap"),
                    );
                }
            }
            Some(RevenueShare { percent, floor, cap })
        }
    };
    Some(EventPrice { charge, revenue_share })
}

/// Bands must start at call 1 and follow each other without overlap or gap; only the
/// last may be open-ended.
fn compile_bands(
    raw: &[crate::policy::raw_pricing::RawBand],
    pointer: &str,
    money: &mut MoneyCheck<'_>,
) -> Option<Vec<Band>> {
    let doc = money.doc;
    let mut bands = Vec::with_capacity(raw.len());
    let mut ok = true;
    let mut expected = 1u64;
    let mut open = false;
    for (i, band) in raw.iter().enumerate() {
        let at = |key: &str| doc.value_location(&format!("{pointer}/bands/{i}/{key}"));
        let price = money.read(&band.price, &format!("{pointer}/bands/{i}/price"), false);
        if open || band.from < expected {
            let covered = if open {
                "the open-ended band before it".to_string()
            } else {
                format!("calls up to {}", expected - 1)
            };
            money.diags.push(
                Diagnostic::error(
                    "band-overlap",
                    format!("this band starts at call {}, already covered by {covered}", band.from),
                )
                .at(at("from"))
                .help(format!("start it at {expected}, after the band before it ends")),
            );
            ok = false;
        } else if band.from > expected {
            money.diags.push(
                Diagnostic::error(
                    "band-gap",
                    if band.from - 1 == expected {
                        format!("call {expected} is in no band")
                    } else {
                        format!("calls {expected} to {} are in no band", band.from - 1)
                    },
                )
                .at(at("from"))
                .help(format!(
                    "start this band at {expected}, or end the band before it at {}",
                    band.from - 1
                )),
            );
            ok = false;
        }
        match band.to {
            Some(to) if to < band.from => {
                money.diags.push(
                    Diagnostic::error(
                        "band-overlap",
                        format!("the band ends ({to}) before it starts ({})", band.from),
                    )
                    .at(at("to"))
                    .help("write to >= from"),
                );
                ok = false;
            }
            Some(to) => expected = to.saturating_add(1),
            None => open = true,
        }
        match price {
            Some(price) => bands.push(Band {
                from: band.from,
                to: band.to,
                price,
            }),
            None => ok = false,
        }
    }
    if ok && !open {
        money.diags.push(
            Diagnostic::error("band-gap", format!("calls from {expected} on are in no band"))
                .at(doc.value_location(&format!("{pointer}/bands/{}/to", raw.len().saturating_sub(1))))
                .help("leave out `to` on the last band, so it covers every call after it"),
        );
        ok = false;
    }
    ok.then_some(bands)
}

/// Each partner's plan (contract, else tier), and the check that every billable event a
/// partner can call in production has a price in it.
fn assign(
    set: &PolicySet,
    routes: &[RoutePlan],
    access: &AccessTable,
    pricing: &Loaded<RawPricing>,
    diags: &mut Diagnostics,
) -> BTreeMap<String, String> {
    let declared: BTreeSet<&str> = pricing.raw.plans.keys().map(String::as_str).collect();
    let pricing_doc = &pricing.doc;
    let unknown_plan = |plan: &str, at: Location| {
        let mut d = Diagnostic::error("unknown-plan", format!("plan `{plan}` does not exist")).at(at);
        d = match did_you_mean(plan, declared.iter().copied()) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d.help("declare it under [plans] in policies/pricing.toml"),
        };
        d
    };
    let mut tier_plans: HashMap<&str, &str> = HashMap::new();
    // Tiers whose plan is misspelt: their partners get that error, not a second one.
    let mut misnamed: BTreeSet<&str> = BTreeSet::new();
    if let Some(tiers) = &set.tiers {
        for (id, tier) in &tiers.raw.tiers {
            if let Some(plan) = &tier.plan {
                if declared.contains(plan.as_str()) {
                    tier_plans.insert(id, plan);
                } else {
                    misnamed.insert(id);
                    diags.push(unknown_plan(
                        plan,
                        tiers.doc.value_location(&format!("/tiers/{}/plan", escape_pointer(id))),
                    ));
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    for loaded in &set.partners {
        let raw = &loaded.raw;
        let doc = &loaded.doc;
        let (plan_id, plan_at) = match &raw.contract.plan {
            Some(plan) if !declared.contains(plan.as_str()) => {
                diags.push(unknown_plan(plan, doc.value_location("/contract/plan")));
                continue;
            }
            Some(plan) => (Some(plan.as_str()), doc.value_location("/contract/plan")),
            None => (tier_plans.get(raw.tier.as_str()).copied(), doc.value_location("/tier")),
        };
        if let Some(plan) = plan_id {
            out.insert(raw.id.clone(), plan.to_string());
        }
        // Sandbox usage is never billed: only production needs prices.
        let Some(partner) = access.partners.iter().find(|p| *p.id == raw.id) else {
            continue;
        };
        if !partner.enabled_in(Environment::Production) {
            continue;
        }
        // A plan in a file that failed to load cannot be told from a missing one.
        if plan_id.is_none() && (set.incomplete || misnamed.contains(raw.tier.as_str())) {
            continue;
        }
        // Coverage is checked against the plan as written, so a plan with a bad price still
        // has its missing events reported.
        let plan = plan_id.and_then(|id| pricing.raw.plans.get(id));
        let mut missing: BTreeMap<usize, BTreeSet<&str>> = BTreeMap::new();
        for route in routes {
            let Some(billing) = &route.billing else { continue };
            if route.targets.get(Environment::Production).is_none() || !partner.granted_product(route.product) {
                continue;
            }
            let priced = plan.is_some_and(|p| p.events.contains_key(&*billing.event));
            if !priced {
                missing.entry(route.product).or_default().insert(&billing.event);
            }
        }
        for (product, events) in missing {
            let product_id = routes
                .iter()
                .find(|r| r.product == product)
                .and_then(|r| r.billing.as_ref())
                .map(|b| b.product.clone());
            let grant = product_id
                .as_ref()
                .and_then(|pid| raw.grants.products.iter().position(|g| g.as_str() == &**pid))
                .map(|i| doc.value_location(&format!("/grants/products/{i}")))
                .unwrap_or_else(|| plan_at.clone());
            let list = events.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ");
            let d = match plan_id {
                None => Diagnostic::error(
                    "no-price-plan",
                    format!(
                        "partner `{}` can make billable calls ({list}) but has no price plan",
                        raw.id
                    ),
                )
                .at(grant)
                .help(format!(
                    "give tier `{}` a plan, or set plan in the partner's [contract]",
                    raw.tier
                )),
                Some(plan) => Diagnostic::error(
                    "unpriced-event",
                    format!("plan `{plan}` of partner `{}` has no price for {list}", raw.id),
                )
                .at(grant)
                .help("add a price (or free = true) for it under the plan's [events] in policies/pricing.toml")
                .note(
                    format!("partner `{}` is on plan `{plan}`", raw.id),
                    Some(plan_at.clone()),
                )
                .note(
                    format!("plan `{plan}` is declared here"),
                    Some(pricing_doc.key_location(&format!("/plans/{}", escape_pointer(plan)))),
                ),
            };
            diags.push(d);
        }
    }
    out
}

/// Default `[billing] batch_size`: large enough that under full load the writer's commits
/// (one fsync each) stay few, small enough that one transaction stays short.
const DEFAULT_BATCH_SIZE: usize = 5000;

/// `[billing]` in gateway.toml.
pub fn ledger_settings(set: &PolicySet, diags: &mut Diagnostics) -> LedgerSettings {
    let raw = set
        .gateway
        .as_ref()
        .and_then(|g| g.raw.billing.clone())
        .unwrap_or_default();
    let doc = set.gateway.as_ref().map(|g| &g.doc);
    let batch_window = match &raw.batch_window {
        None => Duration::from_millis(200),
        Some(text) => {
            match crate::compile::units::duration(text).filter(|d| !d.is_zero() && *d <= Duration::from_secs(60)) {
                Some(d) => d,
                None => {
                    diags.push(
                        Diagnostic::error("invalid-duration", format!("`{text}` is not a usable batch window"))
                            .at_opt(doc.map(|d| d.value_location("/billing/batch_window")))
                            .help("write between \"1ms\" and \"60s\"; it is what a crash may lose"),
                    );
                    Duration::from_millis(200)
                }
            }
        }
    };
    let store = match raw.ledger {
        Some(RawLedgerKind::Postgres) => LedgerStore::Postgres {
            url: raw
                .url
                .clone()
                .unwrap_or_else(|| crate::meter::ledger::DEFAULT_POSTGRES_URL.to_string()),
            schema: raw
                .schema
                .clone()
                .unwrap_or_else(|| crate::meter::ledger::DEFAULT_POSTGRES_SCHEMA.to_string()),
        },
        _ => LedgerStore::Sqlite {
            path: set
                .root
                .join(raw.path.as_deref().unwrap_or(crate::meter::ledger::DEFAULT_SQLITE_PATH)),
        },
    };
    if let (Some(url), Some(doc)) = (&raw.url, doc) {
        if url
            .parse::<tokio_postgres::Config>()
            .is_ok_and(|c| c.get_password().is_some())
        {
            diags.push(
                Diagnostic::error("secret-in-policy", "the PostgreSQL URL holds a password")
                    .at(doc.value_location("/billing/url"))
                    .help(format!(
                        "policy files are kept in git: remove it and set {} in tollgate's environment",
                        crate::meter::ledger::POSTGRES_PASSWORD_ENV
                    )),
            );
        } else if url.parse::<tokio_postgres::Config>().is_err() {
            diags.push(
                Diagnostic::error("invalid-url", format!("`{url}` is not a usable PostgreSQL URL"))
                    .at(doc.value_location("/billing/url"))
                    .help("write postgres://user@host:port/database"),
            );
        }
    }
    LedgerSettings {
        store,
        batch_window,
        batch_size: raw.batch_size.map_or(DEFAULT_BATCH_SIZE, |n| n as usize),
        queue: raw.queue.map_or(262_144, |n| n as usize),
    }
}

/// Compiles a pricing.toml on its own into a price book, with `partners` (partner id ->
/// plan id) as the assignment: for tests, fixtures and tools that price usage without a
/// whole policy set. Event names are not checked against a catalogue.
pub fn book_from_toml(path: &str, text: &str, partners: BTreeMap<String, String>) -> Result<PriceBook, Diagnostics> {
    let source = crate::diagnostics::SourceFile::new(std::path::PathBuf::from(path), text.to_string());
    let (loaded, mut diags) = crate::policy::load_file::<RawPricing>(source, crate::policy::schemas::FileKind::Pricing);
    let Some(loaded) = loaded else {
        return Err(diags);
    };
    // Every event is taken as emitted by a route with an amount.
    let events = loaded
        .raw
        .plans
        .values()
        .flat_map(|p| p.events.keys())
        .map(|e| (e.clone(), true))
        .collect();
    let plans = compile_plans(&loaded, &events, &mut diags);
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(PriceBook {
        rounding: rounding(loaded.raw.rounding),
        plans,
        partners,
    })
}
