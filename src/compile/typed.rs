//! Quantifier bodies over one command, compiled to read the command's fields directly.
//!
//! A list filter picks the commands a rule may hold on (`c.name == "git"`); the rest of the
//! rule's body then runs on each command picked. The reference walker (`Scope::expr`) reads
//! every `c.args`, `a contains "="` through the bound variables, a field's name and a `V`
//! built and dropped per read: ~1,500 instructions for `git-exec-config` on one `git add`, and
//! an agent's chain has dozens. When a body only compares a command's string fields and the
//! words of its lists with literals and regexes (the stdlib's bodies are), it is compiled here
//! to a `Body` whose leaves name the field (`CmdField`) and hold the literal as a `&str`.
//! Anything else — another variable, a number, a path, a glob, a list of redirections —
//! leaves the body to the reference walker, so a `Body` holds exactly where that would: its
//! results, errors and step count are the reference's (the differential tests run both).

use crate::eval::{CmdField, EvalError, Scope};
use crate::ir::{self, Atom, CmpOp, Value};
use crate::shell::Command;

/// A body compiled over the command bound to one variable.
#[derive(Debug)]
pub(crate) enum Body {
    Const(bool),
    And(Box<[Body]>),
    Or(Box<[Body]>),
    Not(Box<Body>),
    /// A string (a string field of the command, or a word bound by an inner quantifier)
    /// tested; a field the command does not have (`c.code` of `ls`) passes no test.
    Test(Text, Test),
    /// `c.recursive`.
    Recursive,
    /// `c.flags contains "f"`, `"f" in c.flags`: one of the list's words is the literal.
    Holds(CmdField, Box<str>),
    /// `any(a in c.args: ...)` / `all(...)` over one of the command's lists of words.
    Each {
        all: bool,
        list: CmdField,
        var: u32,
        body: Box<Body>,
    },
}

#[derive(Debug)]
pub(crate) enum Text {
    Field(CmdField),
    /// The word a quantifier of the body bound to this variable.
    Word(u32),
}

#[derive(Debug)]
pub(crate) enum Test {
    Eq(Box<str>),
    Ne(Box<str>),
    In(Box<[Box<str>]>),
    Contains(Box<str>),
    Matches(ir::Pattern<ir::Regex>),
    StartsWith(Box<str>),
    EndsWith(Box<str>),
}

/// The lists of words a command has (`Each` and `Holds` read them).
fn is_words(f: CmdField) -> bool {
    matches!(
        f,
        CmdField::Args
            | CmdField::Flags
            | CmdField::Operands
            | CmdField::Assigns
            | CmdField::Via
            | CmdField::Upstream
            | CmdField::Writes
    )
}

/// The words of list `f` of `c` (`f` one of `is_words`; none for another field).
#[inline]
fn list_of<'a>(c: Command<'a>, f: CmdField) -> Words<'a> {
    match f {
        CmdField::Args => Words::Short(c.args().iter()),
        CmdField::Flags => Words::Short(c.flags().iter()),
        CmdField::Operands => Words::Short(c.operands().iter()),
        CmdField::Assigns => Words::Short(c.assigns().iter()),
        CmdField::Via => Words::Short(c.via().iter()),
        CmdField::Upstream => Words::Short(c.upstream().iter()),
        CmdField::Writes => Words::Paths(c.writes().iter()),
        _ => Words::Paths([].iter()),
    }
}

/// A command's list of words, whichever kind of string it holds.
enum Words<'a> {
    Short(crate::shell::WordsIter<'a>),
    Paths(std::slice::Iter<'a, String>),
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        match self {
            Words::Short(i) => i.next(),
            Words::Paths(i) => i.next().map(String::as_str),
        }
    }
}

/// A string literal.
fn string(v: &Value) -> Option<Box<str>> {
    match v {
        Value::Lit(ir::Lit(serde_json::Value::String(s))) => Some(s.as_str().into()),
        _ => None,
    }
}

/// A list of string literals, written inline or named.
fn strings(v: &Value) -> Option<Box<[Box<str>]>> {
    match v {
        Value::Lit(ir::Lit(serde_json::Value::Array(items))) => {
            items.iter().map(|j| j.as_str().map(Box::from)).collect()
        }
        Value::List(items) => items.iter().map(string).collect(),
        _ => None,
    }
}

/// How a body names things: the command's variable and the words bound inside it.
struct Names<'n> {
    cmd: u32,
    words: &'n [u32],
}

impl Names<'_> {
    /// The command's field `v` reads (`c.args`).
    fn field(&self, v: &Value) -> Option<CmdField> {
        match v {
            Value::Var(id, path) if *id == self.cmd => match path.as_slice() {
                [key] => CmdField::of(key),
                _ => None,
            },
            _ => None,
        }
    }

    /// The string `v` reads: a string field of the command, or a bound word.
    fn text(&self, v: &Value) -> Option<Text> {
        match v {
            Value::Var(id, path) if path.is_empty() && self.words.contains(id) && *id != self.cmd => {
                Some(Text::Word(*id))
            }
            _ => self.field(v).filter(|f| f.is_str()).map(Text::Field),
        }
    }

    /// A list of words of the command.
    fn words(&self, v: &Value) -> Option<CmdField> {
        self.field(v).filter(|f| is_words(*f))
    }
}

impl Body {
    /// `e`, a body over the command bound to `cmd`, compiled; `None` when it reads something
    /// a `Body` does not (the reference walker runs it then).
    pub(crate) fn compile(e: &ir::Expr, cmd: u32) -> Option<Body> {
        Body::of(e, &Names { cmd, words: &[] })
    }

    fn of(e: &ir::Expr, n: &Names<'_>) -> Option<Body> {
        Some(match e {
            ir::Expr::True => Body::Const(true),
            ir::Expr::False => Body::Const(false),
            ir::Expr::And(items) => Body::And(items.iter().map(|i| Body::of(i, n)).collect::<Option<_>>()?),
            ir::Expr::Or(items) => Body::Or(items.iter().map(|i| Body::of(i, n)).collect::<Option<_>>()?),
            ir::Expr::Not(inner) => Body::Not(Box::new(Body::of(inner, n)?)),
            ir::Expr::Atom(a) => Body::atom(a, n)?,
            ir::Expr::Quant { all, var, list, body } => {
                let list = n.words(list)?;
                if *var == n.cmd || n.words.contains(var) {
                    return None; // shadowing: left to the reference
                }
                let mut words = n.words.to_vec();
                words.push(*var);
                let body = Body::of(body, &Names { cmd: n.cmd, words: &words })?;
                Body::Each { all: *all, list, var: *var, body: Box::new(body) }
            }
        })
    }

    fn atom(a: &Atom, n: &Names<'_>) -> Option<Body> {
        let test = |l: &Value, t: Test| n.text(l).map(|x| Body::Test(x, t));
        match a {
            Atom::Truthy(v) => (n.field(v)? == CmdField::Recursive).then_some(Body::Recursive),
            Atom::Cmp(CmpOp::Eq, l, r) => test(l, Test::Eq(string(r)?)),
            Atom::Cmp(CmpOp::Ne, l, r) => test(l, Test::Ne(string(r)?)),
            Atom::Cmp(..) => None,
            Atom::In(l, r) => match n.words(r) {
                Some(list) => Some(Body::Holds(list, string(l)?)),
                None => test(l, Test::In(strings(r)?)),
            },
            Atom::Contains(l, r) => match n.words(l) {
                Some(list) => Some(Body::Holds(list, string(r)?)),
                None => test(l, Test::Contains(string(r)?)),
            },
            Atom::Matches(l, re) => test(l, Test::Matches(re.clone())),
            Atom::StartsWith(l, r) => test(l, Test::StartsWith(string(r)?)),
            Atom::EndsWith(l, r) => test(l, Test::EndsWith(string(r)?)),
            Atom::Glob(..) => None,
        }
    }

    /// Whether the body holds on `c`, counting steps as the reference does (one an atom, one
    /// an element of a quantifier's list).
    pub(crate) fn eval<'a>(&self, c: Command<'a>, scope: &mut Scope<'_>) -> Result<bool, EvalError> {
        let mut words = smallvec::SmallVec::<[(u32, &'a str); 2]>::new();
        self.run(c, &mut words, scope)
    }

    /// Whether every one of `items` holds (an `And`'s items).
    fn all<'a>(
        items: &[Body],
        c: Command<'a>,
        words: &mut smallvec::SmallVec<[(u32, &'a str); 2]>,
        scope: &mut Scope<'_>,
    ) -> Result<bool, EvalError> {
        for i in items {
            if !i.run(c, words, scope)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn run<'a>(
        &self,
        c: Command<'a>,
        words: &mut smallvec::SmallVec<[(u32, &'a str); 2]>,
        scope: &mut Scope<'_>,
    ) -> Result<bool, EvalError> {
        Ok(match self {
            Body::Const(b) => *b,
            Body::And(items) => Body::all(items, c, words, scope)?,
            Body::Or(items) => {
                for i in items.iter() {
                    if i.run(c, words, scope)? {
                        return Ok(true);
                    }
                }
                false
            }
            Body::Not(inner) => !inner.run(c, words, scope)?,
            Body::Test(text, test) => {
                scope.step()?;
                let s = match text {
                    Text::Field(f) => f.str_of(c).flatten(),
                    Text::Word(v) => words.iter().rev().find(|(id, _)| id == v).map(|(_, w)| *w),
                };
                match s {
                    Some(s) => test.holds(s)?,
                    None => false,
                }
            }
            Body::Recursive => {
                scope.step()?;
                c.recursive()
            }
            Body::Holds(list, lit) => {
                scope.step()?;
                match *list {
                    CmdField::Args => c.args().contains(lit),
                    CmdField::Flags => c.flags().contains(lit),
                    CmdField::Operands => c.operands().contains(lit),
                    f => list_of(c, f).any(|w| w == &**lit),
                }
            }
            Body::Each { all, list, var, body } => {
                // A body that first tests the element itself (`a contains "=" and a matches
                // ...`, the common shape): that test runs here on the word, and the rest only
                // when it holds, with the steps counted as the body would count them.
                let (head, rest) = match &**body {
                    Body::And(items) => match items.split_first() {
                        Some((Body::Test(Text::Word(v), t), rest)) if v == var => (Some(t), rest),
                        _ => (None, &[][..]),
                    },
                    _ => (None, &[][..]),
                };
                let mut result = *all;
                for w in list_of(c, *list) {
                    scope.step()?;
                    let r = match head {
                        Some(t) => {
                            scope.step()?;
                            if t.holds(w)? {
                                words.push((*var, w));
                                let r = Body::all(rest, c, words, scope);
                                words.pop();
                                r?
                            } else {
                                false
                            }
                        }
                        None => {
                            words.push((*var, w));
                            let r = body.run(c, words, scope);
                            words.pop();
                            r?
                        }
                    };
                    if r != *all {
                        result = !*all;
                        break;
                    }
                }
                result
            }
        })
    }
}

impl Test {
    fn holds(&self, s: &str) -> Result<bool, EvalError> {
        Ok(match self {
            Test::Eq(lit) => s == &**lit,
            Test::Ne(lit) => s != &**lit,
            Test::In(lits) => lits.iter().any(|l| s == &**l),
            Test::Contains(lit) => match lit.as_bytes() {
                // One character in a word (`a contains "="` on every argument): a plain loop;
                // memchr's setup costs more than it saves on a few bytes.
                [b] if b.is_ascii() && s.len() < 64 => has_byte(s.as_bytes(), *b),
                [b] if b.is_ascii() => memchr::memchr(*b, s.as_bytes()).is_some(),
                _ => s.contains(&**lit),
            },
            Test::Matches(re) => re.compiled.is_match(s).map_err(|e| EvalError::Pattern(e.to_string()))?,
            Test::StartsWith(lit) => s.starts_with(&**lit),
            Test::EndsWith(lit) => s.ends_with(&**lit),
        })
    }
}

/// Whether `hay` holds byte `b`, eight bytes a step (the zero-byte test of "Bit Twiddling
/// Hacks" on the bytes xor `b`): a word is a few dozen bytes, where core's `memchr` costs more
/// setting up than reading.
fn has_byte(hay: &[u8], b: u8) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(b);
    let mut chunks = hay.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(<[u8; 8]>::try_from(c).unwrap_or_default()) ^ pattern;
        if w.wrapping_sub(LO) & !w & HI != 0 {
            return true;
        }
    }
    chunks.remainder().contains(&b)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn has_byte_is_contains(hay in proptest::collection::vec(any::<u8>(), 0..80), b in any::<u8>()) {
            prop_assert_eq!(super::has_byte(&hay, b), hay.contains(&b));
        }
    }

    #[test]
    fn has_byte_at_every_place() {
        for len in 0..40 {
            for at in 0..len {
                let mut hay = vec![b'a'; len];
                hay[at] = b'=';
                assert!(super::has_byte(&hay, b'='), "{len} {at}");
                hay[at] = b'=' ^ 0x80;
                assert!(!super::has_byte(&hay, b'='), "{len} {at}");
            }
        }
    }
}
