//! Named converters (CloudStack value -> EC2 value), context variables, and expression evaluation.
//! Converters are looked up by name when the table loads, so a typo is a load error.

use std::borrow::Cow;
use std::sync::Mutex;

use base64::Engine;
use serde_json::Value;

use super::expr::{Alt, Conv, Expr, Term, View};
use super::table::Table;
use crate::ec2::Params;
use crate::ids::{self, Kind};

/// Values an expression can read with `$name`.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub region: String,
    pub endpoint: String,
    /// The caller's 12-digit account number (`$account`, docs/accounts.md), when known.
    pub account: Option<String>,
    /// The caller's CloudStack account name (the `owner` converter maps it to `account`).
    pub account_name: Option<String>,
    /// CloudStack account name -> account uuid of other tenants' accounts, learned with the
    /// admin keys: how the `owner` converter numbers them (docs/accounts.md).
    pub accounts: std::sync::Arc<dashmap::DashMap<String, String>>,
    /// `[{name, endpoint}]` for DescribeRegions.
    pub regions: Value,
    pub version: String,
    pub params: Params,
}

pub fn var_known(name: &str) -> bool {
    matches!(name, "region" | "endpoint" | "account" | "regions" | "version" | "now")
        || name.strip_prefix("param.").is_some_and(|p| !p.is_empty())
}

impl Vars {
    pub fn get(&self, name: &str) -> Option<Value> {
        match name {
            "region" => Some(Value::String(self.region.clone())),
            "endpoint" => Some(Value::String(self.endpoint.clone())),
            "account" => self.account.clone().map(Value::String),
            "regions" => Some(self.regions.clone()),
            "version" => Some(Value::String(self.version.clone())),
            // The time of the answer, for required timestamps CloudStack has no value for.
            "now" => {
                let t = time::OffsetDateTime::now_utc();
                Some(Value::String(format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000Z",
                    t.year(),
                    t.month() as u8,
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                )))
            }
            _ => name.strip_prefix("param.").and_then(|p| self.params.get(p)).map(|v| Value::String(v.to_string())),
        }
    }
}

/// What converters may use while a response is rendered.
pub struct Env<'a> {
    pub table: &'a Table,
    pub vars: &'a Vars,
    /// Ids rendered so far, for the reverse cache.
    pub ids: &'a Mutex<ids::SeenIds>,
}

type ConvFn = fn(&Value, &str, &Env<'_>) -> Option<Value>;

/// name (or `name:` prefix) -> converter.
const CONVERTERS: &[(&str, ConvFn, &str)] = &[
    ("id:", conv_id, "CloudStack uuid -> EC2 id of the kind (id:instance, id:image, ...); records the id"),
    ("map:", conv_map, "look the value up in [map.NAME]; unmatched and no \"*\" -> no value"),
    ("iso8601", conv_iso8601, "CloudStack date -> 2016-11-15T12:00:00.000Z"),
    ("gib", conv_gib, "bytes -> whole GiB (rounded up)"),
    ("mib_to_gib", conv_mib_gib, "MiB -> GiB (rounded up)"),
    ("mhz_to_ghz", conv_mhz_ghz, "MHz -> GHz (two decimals at most: 2000 -> 2, 2400 -> 2.4)"),
    ("base64", conv_base64, "text -> base64"),
    ("lower", conv_lower, "lower case"),
    ("upper", conv_upper, "upper case"),
    ("bool", conv_bool, "true/\"true\" -> true, anything else -> false"),
    ("not", conv_not, "boolean negation"),
    ("arch", conv_arch, "OS type text -> i386 or x86_64"),
    ("platform", conv_platform, "OS type text -> windows, or no value"),
    ("nonempty", conv_nonempty, "empty string -> no value"),
    ("nospace", conv_nospace, "text without whitespace (the line breaks CloudStack puts in base64)"),
    ("string", conv_string, "any scalar -> its text"),
    ("owner", conv_owner, "CloudStack account name -> its 12-digit account number (docs/accounts.md)"),
    ("account_number", conv_account_number, "CloudStack account uuid -> its 12-digit account number"),
];

pub fn describe() -> Vec<(&'static str, &'static str)> {
    CONVERTERS.iter().map(|(n, _, d)| (*n, *d)).collect()
}

/// Find `name` in a registry of named functions: an entry `"x"` matches `x` exactly, an entry
/// `"x:"` matches `x:<arg>`. Answers (index in the registry, byte offset of the argument in
/// `name`). Shared by converters and resolvers.
pub(crate) fn registry_index<F>(registry: &[(&str, F, &str)], name: &str) -> Option<(usize, usize)> {
    for (i, (n, _, _)) in registry.iter().enumerate() {
        if let Some(pfx) = n.strip_suffix(':') {
            if name.strip_prefix(pfx).is_some_and(|r| r.starts_with(':')) {
                return Some((i, pfx.len() + 1));
            }
        } else if *n == name {
            return Some((i, name.len()));
        }
    }
    None
}

/// The function and argument that `name` means in a registry (see `registry_index`).
pub(crate) fn lookup_named<'n, F: Copy>(registry: &[(&str, F, &str)], name: &'n str) -> Option<(F, &'n str)> {
    registry_index(registry, name).map(|(i, at)| (registry[i].1, &name[at..]))
}

/// Which converter `name` means: (index in the list, byte offset of its argument in `name`).
pub fn resolve(name: &str) -> Option<(usize, usize)> {
    registry_index(CONVERTERS, name)
}

fn lookup(name: &str) -> Option<(ConvFn, &str)> {
    lookup_named(CONVERTERS, name)
}

/// The converter of a parsed `Conv` (resolved when the expression was parsed).
fn conv_fn(c: &Conv) -> Option<(ConvFn, &str)> {
    match c.resolved {
        Some((i, at)) => CONVERTERS.get(i).map(|(_, f, _)| (*f, c.name.get(at..).unwrap_or(""))),
        None => lookup(&c.name),
    }
}

/// Load-time check of a converter name.
pub fn check(name: &str, t: &Table) -> Result<(), String> {
    let Some((_, arg)) = lookup(name) else {
        let known: Vec<&str> = CONVERTERS.iter().map(|(n, _, _)| *n).collect();
        return Err(format!("unknown converter '{name}' (known: {})", known.join(", ")));
    };
    if name.starts_with("id:") && Kind::from_name(arg).is_none() {
        return Err(format!("unknown id kind '{arg}' in converter '{name}'"));
    }
    if name.starts_with("map:") && !t.maps.contains_key(arg) {
        return Err(format!("unknown map '{arg}' in converter '{name}' (declare [map.{arg}])"));
    }
    Ok(())
}

fn present(v: &Value) -> bool {
    !(v.is_null() || v.as_str() == Some(""))
}

/// Evaluate an expression against `item`: all values of the first alternative that has any.
pub fn eval(e: &Expr, item: &Value, env: &Env<'_>) -> Vec<Value> {
    eval_ref(e, item, env).into_iter().map(Cow::into_owned).collect()
}

/// `eval` without copying: values read straight from `item` are borrowed, only converter
/// results and variables are owned.
pub fn eval_ref<'v>(e: &Expr, item: &'v Value, env: &Env<'_>) -> Vec<Cow<'v, Value>> {
    eval_ref_in(e, item, None, env)
}

/// `eval_ref` reading the item's first-level fields from its `view` where the paths have slots.
pub fn eval_ref_in<'v>(e: &Expr, item: &'v Value, view: Option<&View<'v>>, env: &Env<'_>) -> Vec<Cow<'v, Value>> {
    let mut out = Vec::new();
    for alt in &e.alts {
        each_value(alt, item, view, env, &mut |v| {
            out.push(v);
            true
        });
        if !out.is_empty() {
            return out;
        }
    }
    out
}

/// `eval(..).first()` without building the list. Converters still run over every value of the
/// alternative that answers when one of them has side effects (`id:` records ids), exactly as
/// `eval` would.
pub fn eval_first<'v>(e: &Expr, item: &'v Value, env: &Env<'_>) -> Option<Cow<'v, Value>> {
    eval_first_in(e, item, None, env)
}

/// `eval_first` reading the item's first-level fields from its `view` where the paths have slots.
pub fn eval_first_in<'v>(e: &Expr, item: &'v Value, view: Option<&View<'v>>, env: &Env<'_>) -> Option<Cow<'v, Value>> {
    for alt in &e.alts {
        let effects = alt.convs.iter().any(|c| c.name.starts_with("id:"));
        let mut first = None;
        each_value(alt, item, view, env, &mut |v| {
            if first.is_none() {
                first = Some(v);
            }
            effects
        });
        if first.is_some() {
            return first;
        }
    }
    None
}

/// The present values of one alternative, converted, in order; `f` returns false to stop.
fn each_value<'v>(
    alt: &Alt,
    item: &'v Value,
    view: Option<&View<'v>>,
    env: &Env<'_>,
    f: &mut dyn FnMut(Cow<'v, Value>) -> bool,
) {
    let mut one = |v: Cow<'v, Value>| -> bool {
        let mut cur = v;
        for c in &alt.convs {
            cur = match conv_fn(c).and_then(|(func, arg)| func(&cur, arg, env)) {
                Some(v) => Cow::Owned(v),
                None => return true,
            };
        }
        if present(&cur) { f(cur) } else { true }
    };
    match &alt.term {
        Term::Const(c) => {
            one(Cow::Owned(Value::String(c.clone())));
        }
        Term::Var(v) => {
            if let Some(x) = env.vars.get(v) {
                one(Cow::Owned(x));
            }
        }
        Term::Path(p) => {
            p.visit_in(item, view, &mut |x| one(Cow::Borrowed(x)));
        }
    }
}

/// The first value as text.
pub fn eval_text(e: &Expr, item: &Value, env: &Env<'_>) -> Option<String> {
    eval_first(e, item, env).map(|v| super::expr::scalar_text(&v))
}

/// A scalar's text, borrowed when it is a string (most converter inputs).
fn text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

/// `hay.to_lowercase().contains(needle)` without the copy, for the needles used here (`windows`,
/// `i386`, `i686`, `32-bit`, `32 bit`). Only two non-ASCII characters lower-case to ASCII: the
/// Kelvin sign to `k` (no needle has one) and `İ` to `i` plus a combining dot (which would sit
/// inside a match, as no needle ends in `i`), so both forms match the same texts.
fn contains_lower(hay: &str, needle: &str) -> bool {
    hay.as_bytes().windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn conv_id(v: &Value, arg: &str, env: &Env<'_>) -> Option<Value> {
    let kind = Kind::from_name(arg)?;
    let uuid = text(v)?;
    let id = match env.ids.lock() {
        Ok(mut seen) => seen.id(kind, &uuid),
        Err(_) => ids::ec2_id(kind, &uuid),
    };
    Some(Value::String(id))
}

fn conv_account_number(v: &Value, _: &str, _: &Env<'_>) -> Option<Value> {
    let uuid = text(v)?;
    (!uuid.is_empty()).then(|| Value::String(ids::account_number(&uuid)))
}

fn conv_owner(v: &Value, _: &str, env: &Env<'_>) -> Option<Value> {
    let name = text(v)?;
    if name.is_empty() {
        return None;
    }
    Some(Value::String(owner_number(env.vars, &name)))
}

/// The account number of a CloudStack account known by name: the caller's own, else one whose
/// uuid the gateway has seen; else (an account the gateway has never seen a uuid of, e.g. the
/// owner of another tenant's security group named in a rule) the number of `name:<name>`
/// (docs/accounts.md "Accounts the gateway cannot see").
pub fn owner_number(vars: &Vars, name: &str) -> String {
    if let (Some(mine), Some(num)) = (&vars.account_name, &vars.account)
        && mine == name
    {
        return num.clone();
    }
    if ids::is_account_number(name) {
        return name.to_string();
    }
    match vars.accounts.get(name) {
        Some(uuid) if !uuid.value().is_empty() => ids::account_number(uuid.value()),
        _ => ids::account_number(&format!("name:{name}")),
    }
}

/// The CloudStack account name behind an account number (the caller's, or one the gateway has
/// seen); a value that is not a 12-digit number is taken as an account name, as before.
pub fn account_name_of(vars: &Vars, value: &str) -> Option<String> {
    if !ids::is_account_number(value) {
        return Some(value.to_string());
    }
    if vars.account.as_deref() == Some(value) {
        return vars.account_name.clone();
    }
    vars.accounts
        .iter()
        .find(|e| !e.value().is_empty() && ids::account_number(e.value()) == value)
        .map(|e| e.key().clone())
}

fn conv_map(v: &Value, arg: &str, env: &Env<'_>) -> Option<Value> {
    let m = env.table.maps.get(arg)?;
    m.get(&text(v)?).map(|s| Value::String(s.to_string()))
}

/// CloudStack dates (`2014-03-06T15:39:44-0600`, also `Z`, `+00:00` and fractions) -> EC2's
/// `2014-03-06T21:39:44.000Z`.
pub fn iso8601(s: &str) -> Option<String> {
    use time::{PrimitiveDateTime, UtcOffset, macros::format_description};
    let s = s.trim();
    if s.len() < 19 || !s.is_char_boundary(19) {
        return None;
    }
    let (head, mut rest) = s.split_at(19);
    let dt = match plain_head(head.as_bytes()) {
        Some(dt) => dt,
        None => {
            PrimitiveDateTime::parse(head, format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]")).ok()?
        }
    };
    let mut nanos: u32 = 0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
        rest = &r[digits.len()..];
        let mut d = digits.clone();
        d.truncate(9);
        while d.len() < 9 {
            d.push('0');
        }
        nanos = d.parse().ok()?;
    }
    let offset = match rest {
        "" | "Z" | "z" => UtcOffset::UTC,
        o => {
            let sign = match o.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = o[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let h: i8 = digits[..2].parse().ok()?;
            let m: i8 = digits[2..].parse().ok()?;
            UtcOffset::from_hms(sign * h, sign * m, 0).ok()?
        }
    };
    // Checked: a date at the end of the calendar (9999-12-31 with a negative offset) has no UTC
    // form, and `to_offset` would panic.
    let t = dt.replace_nanosecond(nanos).ok()?.assume_offset(offset).checked_to_offset(UtcOffset::UTC)?;
    if (0..=9999).contains(&t.year()) {
        // What the format! below writes, without its machinery (DescribeInstances converts
        // every listed VM's and volume's date).
        let mut out = String::with_capacity(24);
        push_digits(&mut out, t.year() as u32, 4);
        for (sep, n, width) in [
            ('-', u32::from(u8::from(t.month())), 2),
            ('-', u32::from(t.day()), 2),
            ('T', u32::from(t.hour()), 2),
            (':', u32::from(t.minute()), 2),
            (':', u32::from(t.second()), 2),
            ('.', u32::from(t.millisecond()), 3),
        ] {
            out.push(sep);
            push_digits(&mut out, n, width);
        }
        out.push('Z');
        return Some(out);
    }
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    ))
}

/// `n` in `width` decimal digits, zero-padded (`{:0width$}` for `n` < 10^width).
fn push_digits(out: &mut String, n: u32, width: u32) {
    for p in (0..width).rev() {
        out.push(char::from(b'0' + (n / 10u32.pow(p) % 10) as u8));
    }
}

/// `YYYY-MM-DDTHH:MM:SS` with digits where the digits go, read without a format description
/// (what `PrimitiveDateTime::parse` with `iso8601`'s description reads from it, at a fraction of
/// the cost); None for anything else, which that parse then reads as before.
fn plain_head(b: &[u8]) -> Option<time::PrimitiveDateTime> {
    const DIGITS: [usize; 14] = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !DIGITS.iter().all(|&i| b[i].is_ascii_digit()) {
        return None;
    }
    let n = |from: usize, to: usize| b[from..to].iter().fold(0u32, |acc, c| acc * 10 + u32::from(c - b'0'));
    let month = time::Month::try_from(n(5, 7) as u8).ok()?;
    let date = time::Date::from_calendar_date(n(0, 4) as i32, month, n(8, 10) as u8).ok()?;
    let t = time::Time::from_hms(n(11, 13) as u8, n(14, 16) as u8, n(17, 19) as u8).ok()?;
    Some(time::PrimitiveDateTime::new(date, t))
}

/// Now, as CloudStack writes dates (for documents the gateway makes up itself).
pub use crate::base::util::cloudstack_now;

fn conv_iso8601(v: &Value, _: &str, _: &Env<'_>) -> Option<Value> {
    iso8601(v.as_str()?).map(Value::String)
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn conv_gib(v: &Value, _: &str, _: &Env<'_>) -> Option<Value> {
    let b = number(v)?;
    if b < 0.0 {
        return None;
    }
    Some(Value::from((b / (1u64 << 30) as f64).ceil() as u64))
}

fn conv_mhz_ghz(v: &Value, _: &str, _: &Env<'_>) -> Option<Value> {
    let m = number(v)?;
    if m <= 0.0 {
        return None;
    }
    let g = (m / 10.0).round() / 100.0;
    serde_json::Number::from_f64(g).map(Value::Number)
}

fn conv_mib_gib(v: &Value, _: &str, _: &Env<'_>) -> Option<Value> {
    let m = number(v)?;
    if m < 0.0 {
        return None;
    }
    Some(Value::from((m / 1024.0).ceil() as u64))
}

fn conv_base64(v: &Value, _: &str, _: &Env<'_>) -> Option<Value> {
    Some(Value::String(base64::engine::general_purpose::STANDARD.encode(text(v)?.as_bytes())))
}

fn conv_lower(v: &Value, _: &str, _: &Env<'_>) -> Option<Value> {
    Some(Value::String(text(v)?.to_lowercase()))
}

fn conv_upper(v: &Value, _: &str, _: &Env<'_>) -> Option<Value> {
    Some(Value::String(text(v)?.to_uppercase()))
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn conv_bool(v: &Value, _: &str, _: &Env<'_>) -> Option<Value> {
    Some(Value::String(truthy(v).to_string()))
}

fn conv_not(v: &Value, _: &str, _: &Env<'_>) -> Option<Value> {
    Some(Value::String((!truthy(v)).to_string()))
}

fn conv_arch(v: &Value, _: &str, _: &Env<'_>) -> Option<Value> {
    let t = text(v)?;
    let is32 = ["32-bit", "32 bit", "i386", "i686"].iter().any(|n| contains_lower(&t, n)) && !t.contains("64");
    Some(Value::String(if is32 { "i386" } else { "x86_64" }.into()))
}

fn conv_platform(v: &Value, _: &str, _: &Env<'_>) -> Option<Value> {
    contains_lower(&text(v)?, "windows").then(|| Value::String("windows".into()))
}

fn conv_nonempty(v: &Value, _: &str, _: &Env<'_>) -> Option<Value> {
    present(v).then(|| v.clone())
}

fn conv_nospace(v: &Value, _: &str, _: &Env<'_>) -> Option<Value> {
    Some(Value::String(text(v)?.chars().filter(|c| !c.is_whitespace()).collect()))
}

fn conv_string(v: &Value, _: &str, _: &Env<'_>) -> Option<Value> {
    text(v).map(|t| Value::String(t.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates() {
        assert_eq!(iso8601("2014-03-06T15:39:44-0600").unwrap(), "2014-03-06T21:39:44.000Z");
        assert_eq!(iso8601("2014-03-06T15:39:44+0000").unwrap(), "2014-03-06T15:39:44.000Z");
        assert_eq!(iso8601("2014-03-06T15:39:44Z").unwrap(), "2014-03-06T15:39:44.000Z");
        assert_eq!(iso8601("2014-03-06T15:39:44.5+01:30").unwrap(), "2014-03-06T14:09:44.500Z");
        assert_eq!(iso8601("2014-12-31T23:30:00-0100").unwrap(), "2015-01-01T00:30:00.000Z");
        assert!(iso8601("yesterday").is_none());
        // The plain-form reading and formatting answer what the format description and
        // `format!` answer.
        let reference = |s: &str| -> Option<String> {
            use time::{PrimitiveDateTime, UtcOffset, macros::format_description};
            let s = s.trim();
            let (head, rest) = s.split_at(19);
            let dt =
                PrimitiveDateTime::parse(head, format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"))
                    .ok()?;
            let offset = match rest {
                "" | "Z" => UtcOffset::UTC,
                "+0130" => UtcOffset::from_hms(1, 30, 0).ok()?,
                "-1200" => UtcOffset::from_hms(-12, 0, 0).ok()?,
                _ => unreachable!(),
            };
            let t = dt.assume_offset(offset).checked_to_offset(UtcOffset::UTC)?;
            Some(format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            ))
        };
        let heads = [
            "2014-03-06T15:39:44",
            "0000-01-01T00:00:00",
            "9999-12-31T23:59:59",
            "2016-02-29T12:00:00",
            "2015-02-29T12:00:00",
            "2014-13-01T00:00:00",
            "2014-00-10T00:00:00",
            "2014-01-00T00:00:00",
            "2014-04-31T00:00:00",
            "2014-01-01T24:00:00",
            "2014-01-01T23:60:00",
            "2014-01-01T23:59:60",
            "2014-1-01T00:00:000",
            "2014/01/01T00:00:00",
            "2014-01-01 00:00:00",
            "20a4-01-01T00:00:00",
            "+201-01-01T00:00:00",
            "2014-01-01t00:00:00",
            "1970-01-01T00:00:00",
            "2038-01-19T03:14:08",
        ];
        for h in heads {
            for tail in ["", "Z", "+0130", "-1200"] {
                let s = format!("{h}{tail}");
                assert_eq!(iso8601(&s), reference(&s), "{s}");
            }
        }
        assert!(iso8601("2014-03-06T15:39:44+06").is_none());
        assert!(iso8601("2014-03-06T15:39:4ü").is_none());
    }

    #[test]
    fn scalars() {
        let t = Table::default();
        let vars = Vars::default();
        let ids = Mutex::new(ids::SeenIds::default());
        let env = Env { table: &t, vars: &vars, ids: &ids };
        assert_eq!(conv_gib(&json!(1073741824u64), "", &env), Some(json!(1)));
        assert_eq!(conv_gib(&json!(1073741825u64), "", &env), Some(json!(2)));
        assert_eq!(conv_gib(&json!("21474836480"), "", &env), Some(json!(20)));
        assert_eq!(conv_base64(&json!("hello"), "", &env), Some(json!("aGVsbG8=")));
        assert_eq!(conv_bool(&json!("TRUE"), "", &env), Some(json!("true")));
        assert_eq!(conv_arch(&json!("CentOS 5.3 (32-bit)"), "", &env), Some(json!("i386")));
        assert_eq!(conv_arch(&json!("Ubuntu 20.04 (64-bit)"), "", &env), Some(json!("x86_64")));
        assert_eq!(conv_platform(&json!("Windows Server 2019"), "", &env), Some(json!("windows")));
        let id = conv_id(&json!("19253fbf-abb7-4013-a8a1-97df3b93f206"), "instance", &env).unwrap();
        assert!(id.as_str().unwrap().starts_with("i-"));
        assert_eq!(ids.lock().unwrap().len(), 1);
    }

    #[test]
    fn converter_names_are_checked() {
        let t = Table::default();
        assert!(check("iso8601", &t).is_ok());
        assert!(check("id:instance", &t).is_ok());
        assert!(check("id:bogus", &t).unwrap_err().contains("bogus"));
        assert!(check("map:nope", &t).unwrap_err().contains("[map.nope]"));
        assert!(check("iso8061", &t).unwrap_err().contains("unknown converter"));
    }
}
