//! Filters: which entries a replay or a read takes, by their fields.
//!
//! ```text
//! filter  := or
//! or      := and ("or" and)*
//! and     := not ("and" not)*
//! not     := "not" not | "(" filter ")" | test
//! test    := operand op literal | operand "in" "(" literal ("," literal)* ")"
//! operand := fields.NAME | fields['any name'] | NAME (a typed column: the field of that name)
//!          | ts (the entry id's time) | id
//! op      := = | != | < | <= | > | >=
//! literal := 'text' | "text" | number | true | false
//! ```
//!
//! A field operand is the entry's first field of that name (as the Parquet `fields` map and a
//! typed column hold it). A number literal compares the value as a `float64` typed column reads
//! it, `true`/`false` as a `bool` column does, a text literal as text (byte order); `ts` takes an RFC 3339 time or
//! epoch milliseconds, `id` an entry id. As in SQL, a test on a field the entry lacks (or a
//! value that is not a number) is unknown: `not` and `!=` keep it unknown, and only entries for
//! which the filter is true are taken, so a filter selects what DuckDB selects with the same
//! predicate over `fields[…]` and typed columns.

use std::cmp::Ordering;

use streamtier_schemas::columns::{parse_value, TypedValue};
use streamtier_schemas::{parse_rfc3339_ms, ColumnType, Entry, StreamId};

use crate::{Error, Result};

/// What statistics may bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bounded<'a> {
    /// The numbers of the field of this name (as its `float64` typed column holds them).
    Field(&'a [u8]),
    /// The entries' times, in milliseconds.
    Ts,
}

/// The smallest and largest value some entries hold (`None`: unknown).
pub type Bounds<'a> = dyn Fn(Bounded<'_>) -> Option<(f64, f64)> + 'a;

/// A parsed filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// Every one holds (two or more; a chain of `and` is one node, so that its length never
    /// deepens the tree).
    And(Vec<Filter>),
    /// One of them holds (two or more).
    Or(Vec<Filter>),
    /// It does not hold.
    Not(Box<Filter>),
    /// A comparison.
    Test(Operand, Op, Literal),
    /// Membership in a set.
    In(Operand, Vec<Literal>),
}

/// What a test looks at.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// The first field of this name.
    Field(Vec<u8>),
    /// The entry id's time (milliseconds).
    Ts,
    /// The entry id.
    Id,
}

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A constant.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// Text.
    Text(String),
    /// A number.
    Number(f64),
    /// `true` or `false`.
    Bool(bool),
    /// A time (epoch milliseconds), for `ts`.
    Time(u64),
    /// An entry id, for `id`.
    Id(StreamId),
}

impl Op {
    fn holds(self, o: Ordering) -> bool {
        match self {
            Op::Eq => o == Ordering::Equal,
            Op::Ne => o != Ordering::Equal,
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Gt => o == Ordering::Greater,
            Op::Ge => o != Ordering::Less,
        }
    }
}

impl Filter {
    /// Parses `text`.
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `filter`) naming the column and what was expected there;
    /// [`Error::Unacceptable`] for a literal that cannot be compared with its operand.
    pub fn parse(text: &str) -> Result<Filter> {
        let mut p = Parser {
            tokens: tokenize(text)?,
            at: 0,
            depth: 0,
        };
        let f = p.or()?;
        match p.tokens.get(p.at) {
            None => Ok(f),
            Some((col, t)) => Err(syntax(
                *col,
                format!("expected `and`, `or` or the end, found {}", t.show()),
            )),
        }
    }

    /// Whether the filter may take an entry whose numeric fields lie in the bounds `stats` gives
    /// for a field name (`None`: unknown); false only when no entry within them can match.
    pub fn may_match(&self, stats: &Bounds<'_>) -> bool {
        let within = |what: Bounded<'_>, n: f64, op: Op| {
            let Some((min, max)) = stats(what) else {
                return true;
            };
            match op {
                Op::Eq => min <= n && n <= max,
                Op::Ne => !(min == n && max == n),
                Op::Lt => min < n,
                Op::Le => min <= n,
                Op::Gt => max > n,
                Op::Ge => max >= n,
            }
        };
        match self {
            Filter::And(all) => all.iter().all(|f| f.may_match(stats)),
            Filter::Or(any) => any.iter().any(|f| f.may_match(stats)),
            // Statistics bound values, not their absence.
            Filter::Not(_) => true,
            Filter::Test(Operand::Field(name), op, Literal::Number(n)) => {
                within(Bounded::Field(name), *n, *op)
            }
            Filter::Test(Operand::Ts, op, Literal::Time(ms)) => within(Bounded::Ts, *ms as f64, *op),
            Filter::In(Operand::Field(name), lits) => lits.iter().any(|lit| match lit {
                Literal::Number(n) => within(Bounded::Field(name), *n, Op::Eq),
                _ => true,
            }),
            Filter::Test(..) | Filter::In(..) => true,
        }
    }

    /// Whether `entry` is taken: the filter is true for it (not false, not unknown).
    pub fn matches(&self, entry: &Entry) -> bool {
        self.eval(entry) == Some(true)
    }

    fn eval(&self, e: &Entry) -> Option<bool> {
        match self {
            Filter::And(all) => decided(all, e, false),
            Filter::Or(any) => decided(any, e, true),
            Filter::Not(a) => a.eval(e).map(|v| !v),
            Filter::Test(operand, op, lit) => compare(e, operand, lit).map(|o| op.holds(o)),
            Filter::In(operand, lits) => {
                let mut unknown = false;
                for lit in lits {
                    match compare(e, operand, lit) {
                        Some(Ordering::Equal) => return Some(true),
                        None => unknown = true,
                        Some(_) => {}
                    }
                }
                if unknown {
                    None
                } else {
                    Some(false)
                }
            }
        }
    }
}

/// SQL's three-valued `and` (`decisive` false) or `or` (`decisive` true) of `filters` for `e`:
/// one filter with the decisive value decides; else any unknown makes the whole unknown.
fn decided(filters: &[Filter], e: &Entry, decisive: bool) -> Option<bool> {
    let mut unknown = false;
    for f in filters {
        match f.eval(e) {
            Some(v) if v == decisive => return Some(decisive),
            None => unknown = true,
            Some(_) => {}
        }
    }
    (!unknown).then_some(!decisive)
}

/// How the operand of `e` compares with `lit`; `None` when unknown.
fn compare(e: &Entry, operand: &Operand, lit: &Literal) -> Option<Ordering> {
    match operand {
        Operand::Ts => match lit {
            Literal::Time(ms) => Some(e.id.ms.cmp(ms)),
            _ => None,
        },
        Operand::Id => match lit {
            Literal::Id(id) => Some(e.id.cmp(id)),
            _ => None,
        },
        Operand::Field(name) => {
            let value = &e.fields.iter().find(|(n, _)| n.as_ref() == name.as_slice())?.1;
            match lit {
                Literal::Text(t) => Some(value.as_ref().cmp(t.as_bytes())),
                // As a `float64` or `bool` typed column reads the value.
                Literal::Number(n) => {
                    match parse_value(ColumnType::Float64, std::str::from_utf8(value).ok()?)? {
                        TypedValue::Float64(v) => v.partial_cmp(n),
                        _ => None,
                    }
                }
                Literal::Bool(b) => match parse_value(ColumnType::Bool, std::str::from_utf8(value).ok()?)? {
                    TypedValue::Bool(v) => Some(v.cmp(b)),
                    _ => None,
                },
                Literal::Time(_) | Literal::Id(_) => None,
            }
        }
    }
}

fn syntax(col: usize, reason: String) -> Error {
    Error::Invalid {
        field: "filter".into(),
        reason: format!("at column {col}: {reason}"),
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(f64),
    Sym(&'static str),
}

impl Token {
    fn show(&self) -> String {
        match self {
            Token::Word(w) => format!("`{w}`"),
            Token::Text(t) => format!("'{t}'"),
            Token::Number(n) => format!("`{n}`"),
            Token::Sym(s) => format!("`{s}`"),
        }
    }
}

const SYMBOLS: [&str; 11] = ["!=", "<=", ">=", "=", "<", ">", "(", ")", ",", "[", "]"];

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(syntax(col, format!("the text starting here has no closing {c}"))),
                    Some('\\') if chars.get(i + 1).is_some() => {
                        s.push(chars[i + 1]);
                        i += 2;
                    }
                    Some(d) if *d == c => {
                        i += 1;
                        break;
                    }
                    Some(d) => {
                        s.push(*d);
                        i += 1;
                    }
                }
            }
            out.push((col, Token::Text(s)));
        } else if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            i += 1;
            while chars
                .get(i)
                .is_some_and(|d| d.is_ascii_digit() || *d == '.' || *d == 'e' || *d == 'E')
            {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            let n = s
                .parse::<f64>()
                .map_err(|_| syntax(col, format!("`{s}` is not a number")))?;
            out.push((col, Token::Number(n)));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while chars
                .get(i)
                .is_some_and(|d| d.is_alphanumeric() || *d == '_' || *d == '.')
            {
                i += 1;
            }
            out.push((col, Token::Word(chars[start..i].iter().collect())));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let Some(sym) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) else {
                return Err(syntax(col, format!("`{c}` is not part of the filter language")));
            };
            i += sym.chars().count();
            out.push((col, Token::Sym(sym)));
        }
    }
    Ok(out)
}

/// The deepest nesting of `not` and parentheses a filter may have. The parser and the
/// evaluation recurse once a level, so without a bound a request of a few kilobytes
/// (`((((…` or `not not not …`) would overflow the stack of the whole process.
pub const MAX_DEPTH: usize = 64;

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    /// Levels of `not` and `(` open at `at`.
    depth: usize,
}

impl Parser {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.tokens.get(self.at), Some((_, Token::Word(x))) if x.eq_ignore_ascii_case(w))
    }

    fn peek_sym(&self, s: &str) -> bool {
        matches!(self.tokens.get(self.at), Some((_, Token::Sym(x))) if *x == s)
    }

    fn next(&mut self, expected: &str) -> Result<(usize, Token)> {
        let t = self.tokens.get(self.at).cloned().ok_or_else(|| {
            let col = self.tokens.last().map_or(1, |(c, _)| *c + 1);
            syntax(col, format!("expected {expected}, found the end"))
        })?;
        self.at += 1;
        Ok(t)
    }

    fn expect_sym(&mut self, s: &'static str) -> Result<()> {
        let (col, t) = self.next(&format!("`{s}`"))?;
        if t == Token::Sym(s) {
            Ok(())
        } else {
            Err(syntax(col, format!("expected `{s}`, found {}", t.show())))
        }
    }

    fn or(&mut self) -> Result<Filter> {
        let mut any = vec![self.and()?];
        while self.peek_word("or") {
            self.at += 1;
            any.push(self.and()?);
        }
        Ok(if any.len() == 1 {
            any.remove(0)
        } else {
            Filter::Or(any)
        })
    }

    fn and(&mut self) -> Result<Filter> {
        let mut all = vec![self.not()?];
        while self.peek_word("and") {
            self.at += 1;
            all.push(self.not()?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Filter::And(all)
        })
    }

    fn not(&mut self) -> Result<Filter> {
        let negated = self.peek_word("not");
        if !negated && !self.peek_sym("(") {
            return self.test();
        }
        if self.depth == MAX_DEPTH {
            let col = self.tokens[self.at].0;
            return Err(syntax(
                col,
                format!("nested too deeply (at most {MAX_DEPTH} levels of `not` and parentheses)"),
            ));
        }
        self.at += 1;
        self.depth += 1;
        let f = if negated {
            Filter::Not(Box::new(self.not()?))
        } else {
            let f = self.or()?;
            self.expect_sym(")")?;
            f
        };
        self.depth -= 1;
        Ok(f)
    }

    fn operand(&mut self) -> Result<(usize, Operand)> {
        let (col, t) = self.next("a field (`fields.name`, `fields['name']`, a column, `ts` or `id`)")?;
        let Token::Word(w) = t else {
            return Err(syntax(col, format!("expected a field, found {}", t.show())));
        };
        let operand = match w.as_str() {
            "ts" => Operand::Ts,
            "id" => Operand::Id,
            "fields" => {
                self.expect_sym("[")?;
                let (c, t) = self.next("a quoted field name")?;
                let Token::Text(name) = t else {
                    return Err(syntax(
                        c,
                        format!("expected a quoted field name, found {}", t.show()),
                    ));
                };
                self.expect_sym("]")?;
                Operand::Field(name.into_bytes())
            }
            w => match w.strip_prefix("fields.") {
                Some(name) if !name.is_empty() => Operand::Field(name.as_bytes().to_vec()),
                Some(_) => return Err(syntax(col, "`fields.` needs a field name".into())),
                None if w.contains('.') => {
                    return Err(syntax(
                        col,
                        format!("`{w}` is not a field: use `fields.name` or `fields['name']`"),
                    ))
                }
                None => Operand::Field(w.as_bytes().to_vec()),
            },
        };
        Ok((col, operand))
    }

    fn literal(&mut self, operand: &Operand) -> Result<Literal> {
        let (col, t) = self.next("a value ('text', a number, true or false)")?;
        let lit = match t {
            Token::Text(s) => Literal::Text(s),
            Token::Number(n) => Literal::Number(n),
            Token::Word(w) if w == "true" || w == "false" => Literal::Bool(w == "true"),
            other => return Err(syntax(col, format!("expected a value, found {}", other.show()))),
        };
        let unacceptable = |reason: String| Error::Unacceptable {
            field: "filter".into(),
            reason: format!("at column {col}: {reason}"),
        };
        Ok(match (operand, lit) {
            (Operand::Ts, Literal::Text(s)) => {
                let ms = parse_rfc3339_ms(&s)
                    .and_then(|ms| u64::try_from(ms).ok())
                    .ok_or_else(|| unacceptable(format!("`ts` compares with an RFC 3339 time, not '{s}'")))?;
                Literal::Time(ms)
            }
            (Operand::Ts, Literal::Number(n)) if n >= 0.0 && n.fract() == 0.0 => Literal::Time(n as u64),
            (Operand::Ts, other) => {
                return Err(unacceptable(format!(
                    "`ts` compares with a time or epoch milliseconds, not {other:?}"
                )))
            }
            (Operand::Id, Literal::Text(s)) => Literal::Id(
                s.parse()
                    .map_err(|_| unacceptable(format!("`id` compares with an entry id, not '{s}'")))?,
            ),
            (Operand::Id, other) => {
                return Err(unacceptable(format!(
                    "`id` compares with an entry id, not {other:?}"
                )))
            }
            (_, lit) => lit,
        })
    }

    fn test(&mut self) -> Result<Filter> {
        let (_, operand) = self.operand()?;
        if self.peek_word("in") {
            self.at += 1;
            self.expect_sym("(")?;
            let mut set = vec![self.literal(&operand)?];
            while self.peek_sym(",") {
                self.at += 1;
                set.push(self.literal(&operand)?);
            }
            self.expect_sym(")")?;
            return Ok(Filter::In(operand, set));
        }
        let (col, t) = self.next("a comparison (=, !=, <, <=, >, >=) or `in`")?;
        let op = match t {
            Token::Sym("=") => Op::Eq,
            Token::Sym("!=") => Op::Ne,
            Token::Sym("<") => Op::Lt,
            Token::Sym("<=") => Op::Le,
            Token::Sym(">") => Op::Gt,
            Token::Sym(">=") => Op::Ge,
            other => {
                return Err(syntax(
                    col,
                    format!(
                        "expected a comparison (=, !=, <, <=, >, >=) or `in`, found {}",
                        other.show()
                    ),
                ))
            }
        };
        let lit = self.literal(&operand)?;
        Ok(Filter::Test(operand, op, lit))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn entry(ms: u64, fields: &[(&str, &str)]) -> Entry {
        Entry::new(
            StreamId::new(ms, 0),
            fields
                .iter()
                .map(|(n, v)| (Bytes::from(n.to_string()), Bytes::from(v.to_string())))
                .collect(),
        )
    }

    fn takes(filter: &str, e: &Entry) -> bool {
        Filter::parse(filter)
            .unwrap_or_else(|err| panic!("{filter}: {err}"))
            .matches(e)
    }

    #[test]
    fn fields_compare_as_text_or_numbers_and_missing_ones_are_unknown() {
        let e = entry(
            1_700_000_000_000,
            &[
                ("customer", "42"),
                ("type", "refund"),
                ("amount", "12.5"),
                ("type", "other"),
            ],
        );
        assert!(takes("fields.customer = '42'", &e));
        assert!(
            takes("customer = 42", &e),
            "a number literal compares as a number"
        );
        assert!(
            takes("fields['type'] = 'refund'", &e),
            "the first field of a name"
        );
        assert!(!takes("fields.type = 'other'", &e));
        assert!(takes("amount > 10 and amount <= 12.5", &e));
        assert!(takes("fields.type in ('chargeback', 'refund')", &e));
        assert!(takes("type = 'x' or amount >= 12.5", &e));
        assert!(takes("not (type = 'x')", &e));
        // Unknown (a missing field, a value that is not a number) is never taken, negated or not.
        assert!(!takes("fields.missing = 'a'", &e));
        assert!(!takes("fields.missing != 'a'", &e));
        assert!(!takes("not (fields.missing = 'a')", &e));
        assert!(!takes("type > 3", &e));
        assert!(
            takes("fields.missing = 'a' or customer = '42'", &e),
            "unknown or true"
        );
        assert!(
            !takes("fields.missing = 'a' and customer = '42'", &e),
            "unknown and true"
        );
    }

    #[test]
    fn statistics_exclude_only_what_cannot_match() {
        let stats = |b: Bounded<'_>| (b == Bounded::Field(b"amount")).then_some((10.0, 20.0));
        let may = |f: &str| Filter::parse(f).unwrap().may_match(&stats);
        assert!(!may("amount > 20"));
        assert!(may("amount >= 20"));
        assert!(!may("amount < 10 or amount = 30"));
        assert!(may("amount in (5, 15)"));
        assert!(!may("amount in (5, 25) and fields.type = 'x'"));
        assert!(may("not (amount > 20)"), "a negation is never excluded");
        assert!(may("other > 1000"), "no statistics: kept");
        assert!(may("amount = 'text'"), "text literals are not bounded by numbers");
        let times = |b: Bounded<'_>| (b == Bounded::Ts).then_some((1000.0, 2000.0));
        let may = |f: &str| Filter::parse(f).unwrap().may_match(&times);
        assert!(!may("ts > 2000"));
        assert!(may("ts >= '1970-01-01T00:00:02Z'"));
        assert!(!may("ts < '1970-01-01T00:00:01Z' and amount > 1"));
        assert!(
            may("fields.ts > 5000"),
            "a field named ts is not the entry's time"
        );
    }

    #[test]
    fn ts_and_id_compare_with_times_and_ids() {
        let e = entry(1_700_000_000_000, &[]);
        assert!(takes("ts >= '2023-11-14T22:13:20Z'", &e));
        assert!(takes("ts < 1700000000001", &e));
        assert!(takes("id = '1700000000000-0'", &e));
        assert!(takes("id in ('1-0', '1700000000000-0')", &e));
    }

    #[test]
    fn errors_name_the_column_and_what_was_expected() {
        let cases = [
            ("fields.a = ", "column 11: expected a value"),
            ("fields.a == 'x'", "column 11: expected a value, found `=`"),
            ("(a = 1", "expected `)`, found the end"),
            (
                "a = 1 b = 2",
                "column 7: expected `and`, `or` or the end, found `b`",
            ),
            ("a ~ 1", "column 3: `~` is not part of the filter language"),
            ("a = 'open", "column 5: the text starting here has no closing '"),
            ("x.y = 1", "column 1: `x.y` is not a field"),
            ("a in 1", "column 6: expected `(`"),
        ];
        for (filter, want) in cases {
            let err = Filter::parse(filter).expect_err(filter);
            assert!(
                matches!(&err, Error::Invalid { field, .. } if field == "filter"),
                "{filter}: {err}"
            );
            assert!(err.to_string().contains(want), "{filter}: {err}");
        }
        for (filter, want) in [
            ("ts > 'yesterday'", "RFC 3339"),
            ("id = 5", "entry id"),
            ("id = 'x'", "entry id"),
        ] {
            let err = Filter::parse(filter).expect_err(filter);
            assert!(
                matches!(&err, Error::Unacceptable { field, .. } if field == "filter"),
                "{filter}: {err}"
            );
            assert!(err.to_string().contains(want), "{filter}: {err}");
        }
    }

    #[test]
    fn nesting_is_bounded_and_long_chains_stay_flat() {
        for (filter, col) in [
            (
                format!("{}a = 1{}", "(".repeat(3000), ")".repeat(3000)),
                MAX_DEPTH + 1,
            ),
            (format!("{}a = 1", "not ".repeat(15_000)), MAX_DEPTH * 4 + 1),
        ] {
            let err = Filter::parse(&filter).expect_err("nested too deeply");
            assert!(
                matches!(&err, Error::Invalid { field, .. } if field == "filter"),
                "{err}"
            );
            let want = format!("at column {col}: nested too deeply");
            assert!(err.to_string().contains(&want), "{err}");
        }
        let deepest = format!("{}a = 1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(takes(&deepest, &entry(1, &[("a", "1")])));
        // A chain of 20,000 tests is one node: parsing, evaluating and dropping it recurse once.
        let chain = vec!["a = 2"; 20_000].join(" or ") + " or a = 1";
        assert!(takes(&chain, &entry(1, &[("a", "1")])));
        let chain = vec!["a = 1"; 20_000].join(" and ");
        let f = Filter::parse(&chain).unwrap();
        assert!(matches!(&f, Filter::And(all) if all.len() == 20_000));
        assert!(f.matches(&entry(1, &[("a", "1")])));
        assert!(f.may_match(&|_: Bounded<'_>| None));
    }

    /// Pieces of the language and of what is not, so that random filters are often almost valid.
    fn piece() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            Just("(".to_string()),
            Just(")".to_string()),
            Just("not ".to_string()),
            Just(" and ".to_string()),
            Just(" or ".to_string()),
            Just("fields.a".to_string()),
            Just("fields['".to_string()),
            Just("']".to_string()),
            Just("ts".to_string()),
            Just("id".to_string()),
            Just(" in (".to_string()),
            Just(",".to_string()),
            prop::sample::select(vec!["=", "!=", "<", "<=", ">", ">=", "==", "~"]).prop_map(String::from),
            Just("'2026-01-01T00:00:00Z'".to_string()),
            Just("'1-0'".to_string()),
            any::<f64>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            "[\\PC]{0,6}",
            any::<String>(),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(512))]

        /// Whatever the text, parsing answers a filter or an error naming `filter` (never a
        /// panic), and a filter it answers evaluates without one.
        #[test]
        fn any_text_parses_or_is_refused_naming_the_filter(
            pieces in proptest::collection::vec(piece(), 0..40),
            repeat in 1usize..200,
        ) {
            let text = pieces.concat().repeat(repeat);
            match Filter::parse(&text) {
                Ok(f) => {
                    let e = entry(1_700_000_000_000, &[("a", "1"), ("b", "x")]);
                    let _ = f.matches(&e);
                    let _ = f.may_match(&|_: Bounded<'_>| Some((0.0, 1.0)));
                }
                Err(Error::Invalid { field, .. } | Error::Unacceptable { field, .. }) => {
                    proptest::prop_assert_eq!(field, "filter");
                }
                Err(other) => proptest::prop_assert!(false, "{other}"),
            }
        }
    }
}
