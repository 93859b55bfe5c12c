//! A reader of PHP's literal syntax, for `config/*.php` and `version.php` when PHP cannot run.
//!
//! It reads what ownCloud writes (`<?php\n$CONFIG = array (\n  'key' => 'value', …);` from
//! `var_export`) and what admins write by hand: `[…]` arrays, single- and double-quoted strings
//! with their escapes, integers in every base, floats, `true`/`false`/`null` in any case, implicit
//! keys, comments, `?>`, a BOM or blank lines before `<?php`, `.` concatenation and `+ - * / %` of
//! literals, and assignments `$name = …;` or `$name['k'][] = …;`.
//!
//! It evaluates nothing it cannot evaluate exactly: a function call (`getenv(…)`), a constant, a
//! variable, `__DIR__`, `if`, `include`, … is an error that names the line, the column and the
//! construct, and says that ocmigrate needs PHP on that host to read the file
//! ([`ParseError::needs_php`]). It must never panic, never recurse deeper than [`MAX_DEPTH`] and
//! never read more than [`MAX_INPUT`] bytes: the input is a file from a machine we do not trust
//! to be tidy, and it is fuzzed. It never runs PHP and never touches the file system.

use super::value::{Key, PhpArray, PhpValue};
use std::fmt;

/// Larger files are refused: ownCloud's own config is a few KiB.
pub const MAX_INPUT: usize = 4 * 1024 * 1024;
/// Arrays, parentheses and unary signs nested deeper than this are refused.
pub const MAX_DEPTH: usize = 64;

/// Why a file could not be read. `line` and `column` count from 1; the column counts characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The file is (or may well be) valid PHP that only PHP itself can evaluate. When false, the
    /// file is broken or refused (too large, too deep) whoever reads it.
    pub needs_php: bool,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )?;
        if self.needs_php {
            f.write_str(
                "; ocmigrate cannot evaluate this without PHP, so it needs PHP (the `php` command) \
                 on that host to read this file",
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

/// What a PHP file leaves behind: the variables it assigned, in order of first assignment, and
/// whatever PHP would echo (text outside `<?php … ?>`, such as a BOM or blank lines before the
/// tag; Nextcloud refuses a config file with such "leading content").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PhpFile {
    pub vars: PhpArray,
    pub inline_output: Vec<u8>,
}

impl PhpFile {
    /// The value of `$name` at the end of the file.
    pub fn var(&self, name: &str) -> Option<&PhpValue> {
        self.vars.get(&Key::Str(name.as_bytes().to_vec()))
    }
}

/// Read a PHP file made of assignments of literals.
pub fn parse_php_file(src: &[u8]) -> Result<PhpFile, ParseError> {
    if src.len() > MAX_INPUT {
        return Err(ParseError {
            line: 1,
            column: 1,
            message: format!(
                "the file is {} bytes; ocmigrate reads PHP files of at most {} bytes",
                src.len(),
                MAX_INPUT
            ),
            needs_php: false,
        });
    }
    let mut p = Parser {
        src,
        pos: 0,
        depth: 0,
    };
    p.file().map_err(|f| f.into_error(src))
}

/// Read a config file and return its `$CONFIG` (`Null` if the file does not set it, which
/// ownCloud treats like an empty file).
pub fn parse_config(src: &[u8]) -> Result<PhpValue, ParseError> {
    let file = parse_php_file(src)?;
    Ok(file.var("CONFIG").cloned().unwrap_or(PhpValue::Null))
}

/// An error before it has a line and column.
struct Fail {
    at: usize,
    message: String,
    needs_php: bool,
}

impl Fail {
    fn into_error(self, src: &[u8]) -> ParseError {
        let at = self.at.min(src.len());
        let before = &src[..at];
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        // Count characters, not bytes: skip UTF-8 continuation bytes.
        let column = 1 + before[line_start..]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count();
        ParseError {
            line,
            column,
            message: self.message,
            needs_php: self.needs_php,
        }
    }
}

type PResult<T> = Result<T, Fail>;

fn syntax(at: usize, message: impl Into<String>) -> Fail {
    Fail {
        at,
        message: message.into(),
        needs_php: false,
    }
}

fn needs_php(at: usize, message: impl Into<String>) -> Fail {
    Fail {
        at,
        message: message.into(),
        needs_php: true,
    }
}

fn is_label_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_label_char(b: u8) -> bool {
    is_label_start(b) || b.is_ascii_digit()
}

fn is_php_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// One index of an assignment target: `['k']` or `[]`.
enum Index {
    Key(Key),
    Append,
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Concat,
    Arith(Arith),
}

#[derive(Clone, Copy, PartialEq)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Concat => ".",
            Op::Arith(Arith::Add) => "+",
            Op::Arith(Arith::Sub) => "-",
            Op::Arith(Arith::Mul) => "*",
            Op::Arith(Arith::Div) => "/",
            Op::Arith(Arith::Mod) => "%",
        }
    }
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<u8> {
        self.src.get(self.pos.saturating_add(n)).copied()
    }

    fn starts_with(&self, s: &[u8]) -> bool {
        self.src.get(self.pos..).is_some_and(|r| r.starts_with(s))
    }

    fn eof(&self) -> bool {
        self.pos >= self.src.len()
    }

    /// Text (as written) from `from` to the current position, shortened for messages.
    fn snippet(&self, from: usize) -> String {
        let end = self.pos.min(self.src.len()).min(from.saturating_add(60));
        let s = String::from_utf8_lossy(&self.src[from.min(end)..end]).into_owned();
        s.replace(['\n', '\r'], " ")
    }

    fn enter(&mut self, at: usize) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(syntax(
                at,
                format!("values are nested deeper than {MAX_DEPTH} levels; ocmigrate refuses to read further"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    // ---- file structure -------------------------------------------------------------------

    fn file(&mut self) -> PResult<PhpFile> {
        let mut out = PhpFile::default();
        loop {
            let start = self.pos;
            match self.find_open_tag()? {
                None => {
                    out.inline_output.extend_from_slice(&self.src[start..]);
                    return Ok(out);
                }
                Some(tag_at) => out
                    .inline_output
                    .extend_from_slice(&self.src[start..tag_at]),
            }
            self.statements(&mut out.vars)?;
            if self.eof() {
                return Ok(out);
            }
        }
    }

    /// In inline text: find the next `<?php`, step past it and return where it began; `None` at
    /// the end of the file.
    fn find_open_tag(&mut self) -> PResult<Option<usize>> {
        let from = self.pos.min(self.src.len());
        if let Some(off) = self.src[from..].windows(2).position(|w| w == b"<?") {
            let at = from + off;
            let rest = &self.src[at + 2..];
            if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"php") {
                match rest.get(3) {
                    None => {
                        self.pos = at + 5;
                        return Ok(Some(at));
                    }
                    Some(b' ' | b'\t' | b'\n') => {
                        self.pos = at + 6;
                        return Ok(Some(at));
                    }
                    Some(b'\r') => {
                        self.pos = at + if rest.get(4) == Some(&b'\n') { 7 } else { 6 };
                        return Ok(Some(at));
                    }
                    Some(_) => {}
                }
            }
            if rest.first() == Some(&b'=') {
                return Err(needs_php(at, "the short echo tag `<?=`"));
            }
            return Err(needs_php(
                at,
                "a short open tag `<?` (PHP reads it as code only when short_open_tag is on)",
            ));
        }
        self.pos = self.src.len();
        Ok(None)
    }

    /// Statements up to the end of the file or past the next `?>`.
    fn statements(&mut self, vars: &mut PhpArray) -> PResult<()> {
        loop {
            self.skip_trivia()?;
            let at = self.pos;
            match self.peek() {
                None => return Ok(()),
                Some(b'?') if self.starts_with(b"?>") => {
                    self.pos += 2;
                    // PHP swallows one newline right after `?>`.
                    if self.starts_with(b"\r\n") {
                        self.pos += 2;
                    } else if matches!(self.peek(), Some(b'\n' | b'\r')) {
                        self.pos += 1;
                    }
                    return Ok(());
                }
                Some(b';') => self.pos += 1,
                Some(b'$') => self.assignment(vars)?,
                Some(b) if is_label_start(b) || b == b'\\' => {
                    let name = self.qualified_name();
                    return Err(needs_php(
                        at,
                        format!(
                            "the statement `{}…`: only assignments of literal values can be read",
                            self.snippet(at).trim_end()
                        ),
                    )
                    .with_name(&name));
                }
                Some(_) => {
                    return Err(self.unexpected(at, "a statement such as `$CONFIG = array(…);`"))
                }
            }
        }
    }

    /// `$name = expr;` or `$name[k]…[] = expr;`.
    fn assignment(&mut self, vars: &mut PhpArray) -> PResult<()> {
        let at = self.pos;
        self.pos += 1; // '$'
        if !self.peek().is_some_and(is_label_start) {
            return Err(needs_php(at, "a variable variable (`$$…` or `${…}`)"));
        }
        let name = self.label();
        if name == b"this" {
            return Err(needs_php(at, "the variable `$this`"));
        }
        let mut indices: Vec<(usize, Index)> = Vec::new();
        loop {
            self.skip_trivia()?;
            if self.peek() != Some(b'[') {
                break;
            }
            let iat = self.pos;
            if indices.len() >= MAX_DEPTH {
                return Err(syntax(
                    iat,
                    format!("more than {MAX_DEPTH} indices in one assignment"),
                ));
            }
            self.pos += 1;
            self.skip_trivia()?;
            if self.peek() == Some(b']') {
                self.pos += 1;
                indices.push((iat, Index::Append));
                continue;
            }
            let k = self.expr()?;
            let k = Key::from_value(&k).map_err(|m| needs_php(iat, m))?;
            self.skip_trivia()?;
            if self.peek() != Some(b']') {
                return Err(self.unexpected(self.pos, "`]`"));
            }
            self.pos += 1;
            indices.push((iat, Index::Key(k)));
        }
        let op_at = self.pos;
        match (self.peek(), self.peek_at(1)) {
            (Some(b'='), Some(b'=')) => {
                return Err(needs_php(op_at, "a comparison `==` as a statement"))
            }
            (Some(b'='), _) => self.pos += 1,
            (Some(b'-'), Some(b'>')) => return Err(needs_php(op_at, "an object property `->`")),
            (Some(b':'), Some(b':')) => return Err(needs_php(op_at, "a static access `::`")),
            (Some(b'+'), Some(b'+')) | (Some(b'-'), Some(b'-')) => {
                return Err(needs_php(op_at, "an increment or decrement"))
            }
            (Some(c), Some(_)) if b".+-*/%|&^<>?".contains(&c) => {
                return Err(needs_php(
                    op_at,
                    format!("the compound assignment starting with `{}`", c as char),
                ))
            }
            _ => return Err(self.unexpected(op_at, "`=` after the variable name")),
        }
        self.skip_trivia()?;
        if self.peek() == Some(b'&') {
            return Err(needs_php(self.pos, "an assignment by reference `=&`"));
        }
        let value = self.expr()?;
        self.skip_trivia()?;
        match self.peek() {
            Some(b';') => self.pos += 1,
            Some(b'?') if self.starts_with(b"?>") => {} // `?>` ends the statement too
            None => {
                return Err(syntax(
                    self.pos,
                    "the file ends in the middle of a statement (a `;` is missing)",
                ))
            }
            Some(_) => return Err(self.unexpected(self.pos, "`;` after the value")),
        }
        let slot = vars.entry_or_null(Key::Str(name));
        assign_into(slot, &indices, value)
    }

    // ---- trivia ---------------------------------------------------------------------------

    fn skip_trivia(&mut self) -> PResult<()> {
        loop {
            match self.peek() {
                Some(b) if is_php_space(b) => self.pos += 1,
                Some(b'#') => {
                    if self.peek_at(1) == Some(b'[') {
                        return Err(needs_php(
                            self.pos,
                            "`#[`: an attribute in PHP 8 but a comment in PHP 7",
                        ));
                    }
                    self.line_comment();
                }
                Some(b'/') if self.peek_at(1) == Some(b'/') => self.line_comment(),
                Some(b'/') if self.peek_at(1) == Some(b'*') => {
                    let at = self.pos;
                    match self.src[at + 2..].windows(2).position(|w| w == b"*/") {
                        Some(off) => self.pos = at + 2 + off + 2,
                        None => return Err(syntax(at, "a `/*` comment that is never closed")),
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// A `//` or `#` comment ends at a newline or just before `?>`.
    fn line_comment(&mut self) {
        while let Some(b) = self.peek() {
            if b == b'\n' || b == b'\r' || self.starts_with(b"?>") {
                return;
            }
            self.pos += 1;
        }
    }

    // ---- expressions ----------------------------------------------------------------------

    /// Additive level: `.`, `+`, `-` (PHP 8 binds `+`/`-` tighter than `.`, PHP 7 does not, so a
    /// chain that mixes them without parentheses is refused).
    fn expr(&mut self) -> PResult<PhpValue> {
        let mut left = self.term()?;
        let (mut concat, mut add) = (false, false);
        loop {
            self.skip_trivia()?;
            let at = self.pos;
            let op = match (self.peek(), self.peek_at(1)) {
                (Some(b'.'), Some(b'=')) | (Some(b'+' | b'-'), Some(b'=')) => {
                    return Err(needs_php(at, "a compound assignment inside a value"))
                }
                (Some(b'.'), Some(b'.')) => return Err(needs_php(at, "the spread operator `...`")),
                (Some(b'.'), Some(d)) if d.is_ascii_digit() => {
                    return Err(syntax(at, "a number right after a value (missing `,`?)"))
                }
                (Some(b'.'), _) => Op::Concat,
                (Some(b'+'), Some(b'+')) | (Some(b'-'), Some(b'-')) => {
                    return Err(needs_php(at, "an increment or decrement"))
                }
                (Some(b'-'), Some(b'>')) => return Err(needs_php(at, "an object access `->`")),
                (Some(b'+'), _) => Op::Arith(Arith::Add),
                (Some(b'-'), _) => Op::Arith(Arith::Sub),
                _ => return Ok(left),
            };
            if op == Op::Concat {
                concat = true;
            } else {
                add = true;
            }
            if concat && add {
                return Err(needs_php(
                    at,
                    "`.` mixed with `+` or `-` without parentheses (PHP 7 and PHP 8 evaluate \
                     this differently)",
                ));
            }
            self.pos += 1;
            let right = self.term()?;
            left = binary(op, left, right, at)?;
        }
    }

    /// Multiplicative level: `*`, `/`, `%`.
    fn term(&mut self) -> PResult<PhpValue> {
        let mut left = self.unary()?;
        loop {
            self.skip_trivia()?;
            let at = self.pos;
            let op = match (self.peek(), self.peek_at(1)) {
                (Some(b'*'), Some(b'*')) => return Err(needs_php(at, "the power operator `**`")),
                (Some(b'*' | b'/' | b'%'), Some(b'=')) => {
                    return Err(needs_php(at, "a compound assignment inside a value"))
                }
                (Some(b'*'), _) => Op::Arith(Arith::Mul),
                (Some(b'/'), _) => Op::Arith(Arith::Div),
                (Some(b'%'), _) => Op::Arith(Arith::Mod),
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.unary()?;
            left = binary(op, left, right, at)?;
        }
    }

    fn unary(&mut self) -> PResult<PhpValue> {
        self.skip_trivia()?;
        let at = self.pos;
        match (self.peek(), self.peek_at(1)) {
            (Some(b'+'), Some(b'+')) | (Some(b'-'), Some(b'-')) => {
                Err(needs_php(at, "an increment or decrement"))
            }
            (Some(c @ (b'+' | b'-')), _) => {
                self.enter(at)?;
                self.pos += 1;
                let v = self.unary();
                self.leave();
                sign(c == b'-', v?, at)
            }
            (Some(b'!'), _) => Err(needs_php(at, "the operator `!`")),
            (Some(b'~'), _) => Err(needs_php(at, "the operator `~`")),
            (Some(b'@'), _) => Err(needs_php(at, "the error suppression operator `@`")),
            (Some(b'('), _) => {
                if let Some(cast) = self.cast_at() {
                    return Err(needs_php(at, format!("the type cast `({cast})`")));
                }
                self.enter(at)?;
                self.pos += 1;
                let v = self.expr();
                self.leave();
                let v = v?;
                self.skip_trivia()?;
                if self.peek() != Some(b')') {
                    return Err(self.unexpected(self.pos, "`)`"));
                }
                self.pos += 1;
                Ok(v)
            }
            _ => self.primary(),
        }
    }

    /// `(int)`, `( string )`, …: PHP's casts.
    fn cast_at(&self) -> Option<String> {
        let mut i = self.pos + 1;
        while matches!(self.src.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        let start = i;
        while self.src.get(i).is_some_and(|b| b.is_ascii_alphabetic()) {
            i += 1;
        }
        let word = String::from_utf8_lossy(&self.src[start..i]).to_ascii_lowercase();
        while matches!(self.src.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        let casts = [
            "int", "integer", "bool", "boolean", "float", "double", "real", "string", "binary",
            "array", "object", "unset",
        ];
        (self.src.get(i) == Some(&b')') && casts.contains(&word.as_str())).then_some(word)
    }

    fn primary(&mut self) -> PResult<PhpValue> {
        self.skip_trivia()?;
        let at = self.pos;
        match self.peek() {
            None => Err(syntax(at, "the file ends where a value was expected")),
            Some(b'\'') => self.single_quoted(),
            Some(b'"') => self.double_quoted(),
            Some(b'`') => Err(needs_php(at, "a shell command in backticks")),
            Some(b'[') => {
                self.enter(at)?;
                self.pos += 1;
                let v = self.array_body(b']', at);
                self.leave();
                v
            }
            Some(b'0'..=b'9') => self.number(),
            Some(b'.') if self.peek_at(1).is_some_and(|b| b.is_ascii_digit()) => self.number(),
            Some(b'$') => {
                self.pos += 1;
                let name = String::from_utf8_lossy(&self.label()).into_owned();
                Err(needs_php(at, format!("the variable `${name}`")))
            }
            Some(b'<') if self.starts_with(b"<<<") => {
                Err(needs_php(at, "a heredoc or nowdoc string (`<<<`)"))
            }
            Some(b'&') => Err(needs_php(at, "a reference `&`")),
            Some(b) if is_label_start(b) || b == b'\\' => self.named(at),
            Some(_) => Err(self.unexpected(at, "a value")),
        }
    }

    /// A bare name: `true`, `false`, `null`, `array(`, or something only PHP can evaluate.
    fn named(&mut self, at: usize) -> PResult<PhpValue> {
        let name = self.qualified_name();
        let lower = name.to_ascii_lowercase();
        let bare = lower.strip_prefix('\\').unwrap_or(&lower);
        self.skip_trivia()?;
        let next = self.peek();
        let call = next == Some(b'(');
        let static_access = self.starts_with(b"::");
        if !call && !static_access {
            match bare {
                "true" => return Ok(PhpValue::Bool(true)),
                "false" => return Ok(PhpValue::Bool(false)),
                "null" => return Ok(PhpValue::Null),
                _ => {}
            }
            match name.strip_prefix('\\').unwrap_or(&name) {
                "INF" => return Ok(PhpValue::Float(f64::INFINITY)),
                "NAN" => return Ok(PhpValue::Float(f64::NAN)),
                _ => {}
            }
        }
        if lower == "array" && call {
            self.enter(at)?;
            self.pos += 1;
            let v = self.array_body(b')', at);
            self.leave();
            return v;
        }
        if bare.starts_with("__") && bare.ends_with("__") && !call {
            return Err(needs_php(
                at,
                format!("the magic constant `{name}`, whose value depends on where the file lies"),
            ));
        }
        const CONSTRUCTS: &[&str] = &[
            "new",
            "function",
            "fn",
            "static",
            "list",
            "isset",
            "empty",
            "include",
            "include_once",
            "require",
            "require_once",
            "print",
            "echo",
            "eval",
            "exit",
            "die",
            "clone",
            "match",
            "yield",
            "throw",
            "if",
            "else",
            "elseif",
            "for",
            "foreach",
            "while",
            "do",
            "switch",
            "return",
            "declare",
            "namespace",
            "use",
            "class",
            "global",
            "unset",
            "define",
            "const",
        ];
        if CONSTRUCTS.contains(&lower.as_str()) {
            return Err(needs_php(at, format!("the PHP construct `{name}`")));
        }
        if call {
            Err(needs_php(at, format!("the function call `{name}(…)`")))
        } else if static_access {
            Err(needs_php(
                at,
                format!("the class constant or static access `{name}::…`"),
            ))
        } else {
            Err(needs_php(
                at,
                format!("the constant `{name}` (a string must be quoted: '{name}')"),
            ))
        }
    }

    /// `array(…)` or `[…]` after the opening bracket.
    fn array_body(&mut self, close: u8, open_at: usize) -> PResult<PhpValue> {
        let mut arr = PhpArray::new();
        loop {
            self.skip_trivia()?;
            let at = self.pos;
            match self.peek() {
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok(PhpValue::Array(arr));
                }
                Some(b',') => return Err(syntax(at, "an empty array element (`,,` or `(,`)")),
                Some(b'.') if self.starts_with(b"...") => {
                    return Err(needs_php(at, "the spread operator `...`"))
                }
                Some(b'&') => return Err(needs_php(at, "a reference `&`")),
                None => return Err(self.unclosed(open_at)),
                _ => {}
            }
            let first = self.expr()?;
            self.skip_trivia()?;
            if self.starts_with(b"=>") {
                self.pos += 2;
                self.skip_trivia()?;
                if self.peek() == Some(b'&') {
                    return Err(needs_php(self.pos, "a reference `&`"));
                }
                let value = self.expr()?;
                let key = Key::from_value(&first).map_err(|m| needs_php(at, m))?;
                arr.insert(key, value);
            } else {
                arr.push(first)
                    .map_err(|e| needs_php(at, format!("an implicit array key: {e}")))?;
            }
            self.skip_trivia()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {}
                None => return Err(self.unclosed(open_at)),
                Some(_) => {
                    let want = if close == b')' {
                        "`,` or `)`"
                    } else {
                        "`,` or `]`"
                    };
                    return Err(self.unexpected(self.pos, want));
                }
            }
        }
    }

    fn unclosed(&self, open_at: usize) -> Fail {
        let open = Fail {
            at: open_at,
            message: String::new(),
            needs_php: false,
        }
        .into_error(self.src);
        syntax(
            self.src.len(),
            format!(
                "the file ends inside the array opened at line {}, column {}",
                open.line, open.column
            ),
        )
    }

    /// An error for something we did not expect, naming operators PHP has and we do not.
    fn unexpected(&self, at: usize, wanted: &str) -> Fail {
        let rest = &self.src[at.min(self.src.len())..];
        let ops: &[(&[u8], &str)] = &[
            (b"??", "the operator `??`"),
            (b"?", "the ternary operator `? :`"),
            (b"||", "the operator `||`"),
            (b"&&", "the operator `&&`"),
            (b"==", "a comparison"),
            (b"!=", "a comparison"),
            (b"<", "a comparison or shift"),
            (b">", "a comparison or shift"),
            (b"|", "the operator `|`"),
            (b"&", "the operator `&`"),
            (b"^", "the operator `^`"),
            (b"[", "an array index inside a value"),
            (b"->", "an object access `->`"),
            (b"::", "a static access `::`"),
        ];
        for (tok, what) in ops {
            if rest.starts_with(tok) {
                return needs_php(at, format!("{what} where {wanted} was expected"));
            }
        }
        let word_end = rest
            .iter()
            .position(|&b| !is_label_char(b))
            .unwrap_or(rest.len());
        let word = String::from_utf8_lossy(&rest[..word_end]).to_ascii_lowercase();
        if ["and", "or", "xor", "instanceof"].contains(&word.as_str()) {
            return needs_php(
                at,
                format!("the operator `{word}` where {wanted} was expected"),
            );
        }
        match rest.first() {
            None => syntax(at, format!("the file ends where {wanted} was expected")),
            Some(b'\'' | b'"') => syntax(at, format!("unexpected string, expected {wanted}")),
            Some(&c) => {
                let shown = if word_end > 0 {
                    String::from_utf8_lossy(&rest[..word_end.min(40)]).into_owned()
                } else if c.is_ascii_graphic() {
                    (c as char).to_string()
                } else {
                    format!("byte 0x{c:02x}")
                };
                syntax(at, format!("unexpected `{shown}`, expected {wanted}"))
            }
        }
    }

    // ---- tokens ---------------------------------------------------------------------------

    fn label(&mut self) -> Vec<u8> {
        let start = self.pos;
        while self.peek().is_some_and(is_label_char) {
            self.pos += 1;
        }
        self.src[start..self.pos].to_vec()
    }

    /// A name, possibly namespaced (`\OC\Memcache\APCu`).
    fn qualified_name(&mut self) -> String {
        let start = self.pos;
        loop {
            if self.peek() == Some(b'\\') {
                self.pos += 1;
            }
            if !self.peek().is_some_and(is_label_start) {
                break;
            }
            self.label();
            if self.peek() != Some(b'\\') {
                break;
            }
        }
        String::from_utf8_lossy(&self.src[start..self.pos]).into_owned()
    }

    fn single_quoted(&mut self) -> PResult<PhpValue> {
        let at = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(syntax(at, "a string that is never closed")),
                Some(b'\'') => {
                    self.pos += 1;
                    return Ok(PhpValue::Str(out));
                }
                Some(b'\\') if matches!(self.peek_at(1), Some(b'\\' | b'\'')) => {
                    out.push(self.src[self.pos + 1]);
                    self.pos += 2;
                }
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    fn double_quoted(&mut self) -> PResult<PhpValue> {
        let at = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let here = self.pos;
            let Some(b) = self.peek() else {
                return Err(syntax(at, "a string that is never closed"));
            };
            self.pos += 1;
            match b {
                b'"' => return Ok(PhpValue::Str(out)),
                b'$' if self.peek().is_some_and(is_label_start) => {
                    let name = String::from_utf8_lossy(&self.label()).into_owned();
                    return Err(needs_php(
                        here,
                        format!("the variable `${name}` inside a double-quoted string (write `\\$` for a dollar sign)"),
                    ));
                }
                b'$' if self.peek() == Some(b'{') => {
                    return Err(needs_php(
                        here,
                        "`${…}` interpolation inside a double-quoted string",
                    ))
                }
                b'{' if self.peek() == Some(b'$') => {
                    return Err(needs_php(
                        here,
                        "`{$…}` interpolation inside a double-quoted string",
                    ))
                }
                b'\\' => self.escape(here, &mut out)?,
                _ => out.push(b),
            }
        }
    }

    /// After a backslash in a double-quoted string.
    fn escape(&mut self, at: usize, out: &mut Vec<u8>) -> PResult<()> {
        let Some(c) = self.peek() else {
            return Err(syntax(at, "a string that is never closed"));
        };
        let simple = match c {
            b'n' => Some(b'\n'),
            b't' => Some(b'\t'),
            b'r' => Some(b'\r'),
            b'v' => Some(0x0B),
            b'e' => Some(0x1B),
            b'f' => Some(0x0C),
            b'\\' => Some(b'\\'),
            b'$' => Some(b'$'),
            b'"' => Some(b'"'),
            _ => None,
        };
        if let Some(s) = simple {
            self.pos += 1;
            out.push(s);
            return Ok(());
        }
        match c {
            b'0'..=b'7' => {
                let mut v: u32 = 0;
                for _ in 0..3 {
                    match self.peek() {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xFF) as u8); // PHP warns and keeps the low byte for \400 and up
            }
            b'x' if self.peek_at(1).is_some_and(|d| d.is_ascii_hexdigit()) => {
                self.pos += 1;
                let mut v: u32 = 0;
                for _ in 0..2 {
                    match self.peek().and_then(|d| (d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            self.pos += 1;
                        }
                        None => break,
                    }
                }
                out.push(v as u8);
            }
            b'u' if self.peek_at(1) == Some(b'{') => {
                self.pos += 2;
                let start = self.pos;
                while self.peek().is_some_and(|d| d.is_ascii_hexdigit()) {
                    self.pos += 1;
                }
                let digits = &self.src[start..self.pos];
                if self.peek() != Some(b'}') || digits.is_empty() {
                    return Err(syntax(at, "an invalid `\\u{…}` escape"));
                }
                self.pos += 1;
                let trimmed: &[u8] = {
                    let z = digits.iter().take_while(|&&d| d == b'0').count();
                    &digits[z.min(digits.len())..]
                };
                let cp = if trimmed.len() > 6 {
                    u32::MAX
                } else {
                    trimmed
                        .iter()
                        .fold(0u32, |v, &d| v * 16 + (d as char).to_digit(16).unwrap_or(0))
                };
                if cp > 0x10FFFF {
                    return Err(syntax(at, "a `\\u{…}` escape past U+10FFFF"));
                }
                push_utf8(out, cp);
            }
            _ => out.push(b'\\'), // unknown escape: PHP keeps the backslash; `c` is read next
        }
        Ok(())
    }

    fn number(&mut self) -> PResult<PhpValue> {
        let at = self.pos;
        let radix = match (self.peek(), self.peek_at(1).map(|b| b.to_ascii_lowercase())) {
            (Some(b'0'), Some(b'x')) => 16,
            (Some(b'0'), Some(b'b')) => 2,
            (Some(b'0'), Some(b'o')) => 8,
            _ => 10,
        };
        let v = if radix != 10 {
            self.pos += 2;
            let digits = self.digits(at, |b| (b as char).is_digit(radix))?;
            if digits.is_empty() {
                return Err(syntax(at, "an invalid numeric literal"));
            }
            int_or_float(&digits, radix)
        } else {
            let int_part = self.digits(at, |b| b.is_ascii_digit())?;
            let mut float = false;
            let mut frac = Vec::new();
            if self.peek() == Some(b'.') && self.peek_at(1) != Some(b'.') {
                float = true;
                self.pos += 1;
                frac = self.digits(at, |b| b.is_ascii_digit())?;
            }
            let mut exp = String::new();
            if matches!(self.peek(), Some(b'e' | b'E')) {
                let sign_len = usize::from(matches!(self.peek_at(1), Some(b'+' | b'-')));
                if self
                    .peek_at(1 + sign_len)
                    .is_some_and(|b| b.is_ascii_digit())
                {
                    float = true;
                    if sign_len == 1 && self.peek_at(1) == Some(b'-') {
                        exp.push('-');
                    }
                    self.pos += 1 + sign_len;
                    let e = self.digits(at, |b| b.is_ascii_digit())?;
                    exp.push_str(std::str::from_utf8(&e).unwrap_or("0"));
                }
            }
            if float {
                let text = format!(
                    "{}.{}e{}",
                    if int_part.is_empty() {
                        "0"
                    } else {
                        std::str::from_utf8(&int_part).unwrap_or("0")
                    },
                    if frac.is_empty() {
                        "0"
                    } else {
                        std::str::from_utf8(&frac).unwrap_or("0")
                    },
                    if exp.is_empty() || exp == "-" {
                        "0"
                    } else {
                        &exp
                    }
                );
                PhpValue::Float(
                    text.parse::<f64>()
                        .map_err(|_| syntax(at, "an invalid float"))?,
                )
            } else if int_part.len() > 1 && int_part[0] == b'0' {
                if !int_part.iter().all(|b| (b'0'..=b'7').contains(b)) {
                    return Err(syntax(
                        at,
                        "an invalid octal literal (a digit 8 or 9 after a leading 0)",
                    ));
                }
                int_or_float(&int_part[1..], 8)
            } else {
                match std::str::from_utf8(&int_part)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                {
                    Some(i) => PhpValue::Int(i),
                    None => PhpValue::Float(
                        std::str::from_utf8(&int_part)
                            .ok()
                            .and_then(|s| s.parse::<f64>().ok())
                            .ok_or_else(|| syntax(at, "an invalid numeric literal"))?,
                    ),
                }
            }
        };
        if self.peek().is_some_and(is_label_char) {
            return Err(syntax(at, "an invalid numeric literal"));
        }
        Ok(v)
    }

    /// Digits with PHP's `_` separators (`1_000`; never leading, trailing or doubled).
    fn digits(&mut self, at: usize, is_digit: impl Fn(u8) -> bool) -> PResult<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            if is_digit(b) {
                out.push(b);
                self.pos += 1;
            } else if b == b'_' && !out.is_empty() && self.peek_at(1).is_some_and(&is_digit) {
                self.pos += 1;
            } else if b == b'_' {
                return Err(syntax(at, "an invalid numeric literal (misplaced `_`)"));
            } else {
                break;
            }
        }
        Ok(out)
    }
}

impl Fail {
    /// Name the construct once more if the message did not already.
    fn with_name(mut self, name: &str) -> Fail {
        if !self.message.contains(name) {
            self.message = format!("{} (`{name}`)", self.message);
        }
        self
    }
}

/// An integer in `radix`, or a float when it does not fit in `i64` (PHP's rule for literals;
/// like PHP, the float is built digit by digit).
fn int_or_float(digits: &[u8], radix: u32) -> PhpValue {
    let mut v: i64 = 0;
    let mut overflow = false;
    for &d in digits {
        let d = i64::from((d as char).to_digit(radix).unwrap_or(0));
        match v
            .checked_mul(i64::from(radix))
            .and_then(|x| x.checked_add(d))
        {
            Some(n) => v = n,
            None => {
                overflow = true;
                break;
            }
        }
    }
    if !overflow {
        return PhpValue::Int(v);
    }
    let mut f = 0f64;
    for &d in digits {
        f = f * f64::from(radix) + f64::from((d as char).to_digit(radix).unwrap_or(0));
    }
    PhpValue::Float(f)
}

/// UTF-8 bytes for a code point, surrogates included (PHP encodes `\u{D800}` too).
fn push_utf8(out: &mut Vec<u8>, cp: u32) {
    if cp < 0x80 {
        out.push(cp as u8);
    } else if cp < 0x800 {
        out.extend([0xC0 | (cp >> 6) as u8, 0x80 | (cp & 0x3F) as u8]);
    } else if cp < 0x10000 {
        out.extend([
            0xE0 | (cp >> 12) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]);
    } else {
        out.extend([
            0xF0 | (cp >> 18) as u8,
            0x80 | ((cp >> 12) & 0x3F) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]);
    }
}

/// Unary `-` / `+` (PHP compiles them as `* -1` / `* 1`).
fn sign(negate: bool, v: PhpValue, at: usize) -> PResult<PhpValue> {
    match v {
        PhpValue::Int(i) if negate => Ok(i
            .checked_neg()
            .map_or(PhpValue::Float(-(i as f64)), PhpValue::Int)),
        PhpValue::Float(f) if negate => Ok(PhpValue::Float(-f)),
        v @ (PhpValue::Int(_) | PhpValue::Float(_)) => Ok(v),
        other => Err(needs_php(
            at,
            format!(
                "a sign in front of a {} (only numbers are evaluated)",
                other.type_name()
            ),
        )),
    }
}

fn binary(op: Op, l: PhpValue, r: PhpValue, at: usize) -> PResult<PhpValue> {
    use PhpValue::{Float, Int};
    let arith = match op {
        Op::Concat => {
            let mut s = concat_operand(l, at)?;
            s.extend(concat_operand(r, at)?);
            return Ok(PhpValue::Str(s));
        }
        Op::Arith(a) => a,
    };
    let refuse = |l: &PhpValue, r: &PhpValue| {
        needs_php(
            at,
            format!(
                "`{}` between a {} and a {} (only numbers are evaluated)",
                op.symbol(),
                l.type_name(),
                r.type_name()
            ),
        )
    };
    match (&l, &r) {
        (Int(a), Int(b)) => {
            let (a, b) = (*a, *b);
            Ok(match arith {
                Arith::Add => a.checked_add(b).map_or(Float(a as f64 + b as f64), Int),
                Arith::Sub => a.checked_sub(b).map_or(Float(a as f64 - b as f64), Int),
                Arith::Mul => a.checked_mul(b).map_or(Float(a as f64 * b as f64), Int),
                Arith::Div => {
                    if b == 0 {
                        return Err(syntax(at, "a division by zero"));
                    }
                    match (a.checked_rem(b), a.checked_div(b)) {
                        (Some(0), Some(q)) => Int(q),
                        _ => Float(a as f64 / b as f64),
                    }
                }
                Arith::Mod => {
                    if b == 0 {
                        return Err(syntax(at, "a modulo by zero"));
                    }
                    Int(a.checked_rem(b).unwrap_or(0)) // i64::MIN % -1 is 0 in PHP
                }
            })
        }
        (Int(_) | Float(_), Int(_) | Float(_)) => {
            let as_f = |v: &PhpValue| match v {
                Int(i) => *i as f64,
                Float(f) => *f,
                _ => 0.0,
            };
            let (a, b) = (as_f(&l), as_f(&r));
            match arith {
                Arith::Add => Ok(Float(a + b)),
                Arith::Sub => Ok(Float(a - b)),
                Arith::Mul => Ok(Float(a * b)),
                Arith::Div if b == 0.0 => Err(syntax(at, "a division by zero")),
                Arith::Div => Ok(Float(a / b)),
                // PHP truncates float operands of `%` to integers, warning about lost fractions.
                Arith::Mod => Err(refuse(&l, &r)),
            }
        }
        _ => Err(refuse(&l, &r)),
    }
}

/// A value as `.` turns it into a string. Floats are refused: PHP 7 and 8 print them with
/// `precision`, an ini setting ocmigrate cannot know.
fn concat_operand(v: PhpValue, at: usize) -> PResult<Vec<u8>> {
    match v {
        PhpValue::Str(s) => Ok(s),
        PhpValue::Int(i) => Ok(i.to_string().into_bytes()),
        PhpValue::Bool(true) => Ok(b"1".to_vec()),
        PhpValue::Bool(false) | PhpValue::Null => Ok(Vec::new()),
        other => Err(needs_php(
            at,
            format!(
                "`.` with a {} (its text depends on PHP settings)",
                other.type_name()
            ),
        )),
    }
}

/// `$var[i1][i2]… = value` into `slot` (the variable), creating arrays where PHP would.
fn assign_into(slot: &mut PhpValue, indices: &[(usize, Index)], value: PhpValue) -> PResult<()> {
    let Some(((at, first), rest)) = indices.split_first() else {
        *slot = value;
        return Ok(());
    };
    if slot.is_null() {
        *slot = PhpValue::Array(PhpArray::new());
    }
    let PhpValue::Array(arr) = slot else {
        return Err(needs_php(
            *at,
            format!("writing an index into a {}", slot.type_name()),
        ));
    };
    let key = match first {
        Index::Key(k) => k.clone(),
        Index::Append => Key::Int(
            arr.next_key()
                .map_err(|e| needs_php(*at, format!("`[]`: {e}")))?,
        ),
    };
    assign_into(arr.entry_or_null(key), rest, value)
}

#[cfg(test)]
mod tests;
