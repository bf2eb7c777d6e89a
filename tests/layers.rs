//! The layer rule of the shell (`src/`, the `milepost` crate), checked by `cargo test`.
//!
//! The nodes are the `.rs` files of `src/`; there is an edge from file A to file B when A
//! refers to a path that resolves into B. The checker reads the files as text (std only, no
//! parser crate) and sees:
//! - `use` declarations, with their trees expanded (`use crate::{a::b, c::{self, D}}` is
//!   `crate::a::b`, `crate::c`, `crate::c::D`), across lines, `pub use` and `use` in functions
//!   included;
//! - paths in code (`crate::store::log::list_segments(…)`, types, attributes, macro calls).
//!
//! Comments, doc comments, string, raw string and character literals are skipped, so an
//! intra-doc link (`[`crate::server`]`) or a string is not an edge.
//!
//! A path is made absolute when it starts with:
//! - `crate::` (or `milepost::`, which is how `main.rs`, a crate root of its own, reaches the
//!   library; both are looked up in the same `src/` tree);
//! - `self::` or `super::` (resolved from the module the path is written in, inline `mod tests
//!   { … }` blocks included, so `use super::*` in a test module is an edge to its own file, and
//!   ignored);
//! - a child module's name (`api::nearby` in `web/mod.rs` is `crate::web::api::nearby`);
//! - a name brought in by a `use` of this file (`use crate::web::api::{self}` then `api::X`).
//!
//! Any other path (`std::…`, `tokio::…`, `milepost_core::…`, a local type's `Foo::new`) is not
//! the shell's and is no edge. The absolute path then goes to the file of its longest prefix
//! that is a module with a file: `crate::x::y::Z` to `src/x/y.rs` or `src/x/y/mod.rs`, else
//! to `src/x.rs` or `src/x/mod.rs`. So `crate::web::WebConfig` (a re-export in `web/mod.rs`)
//! is an edge to `web/mod.rs`, not to `web/config.rs`: importing through a module's front is
//! depending on the front. A path to an item of a crate root (`crate::Foo`) is no edge.
//! Edges from a file to itself are dropped. Not seen: `#[path]` attributes, paths built by
//! macros, names that a glob import (`use x::*`) brings in.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

// ---------------------------------------------------------------------------------------------
// The layer rule.
// ---------------------------------------------------------------------------------------------

/// The shell's layers, highest first: a file may refer only to files of its own layer or of a
/// lower one. (The core, `milepost-core`, and the wire types, `milepost-proto`, are other
/// crates below all of these; Cargo already keeps them from referring up.)
///
/// An entry is either a module's name, which takes `name.rs`, `name/mod.rs` and every file
/// under `name/`; or `*/file.rs`, every file of that name directly in a top-level module's
/// folder (`web/config.rs`, not `replay/sim/config.rs`), which wins
/// over its module's entry. Every file of `src/` must fall in one layer: a new top-level
/// module gets a row here.
///
/// - top: the binary (`main.rs` and what the CLI split puts beside it: `cli`, `app`) and the
///   library's root, `lib.rs`, which only declares the modules.
/// - shell: the parts that run things: the QUIC server, the web listener, the cluster, the
///   replay and offline tools, the QUIC client. They may use each other (the cycle test keeps
///   that from going round in circles) and everything below.
/// - middle: the shared machinery: the assembled configuration, the fleet state, the log
///   store, the feeds, tokens, certificates, metrics, framing, UDP buffers. None of it knows
///   the server, the web listener or the cluster exist.
/// - parts' config: each part's own configuration section (`web/config.rs`,
///   `cluster/config.rs`, `server/limits.rs`). `config.rs` (middle) assembles them, so they
///   sit below it, and may refer to nothing of the shell above them. The carriers
///   (`tenancy`: who owns which depot, their brands) sit here too: the web's configuration
///   names a brand, and every layer above asks whose a depot is.
const LAYERS: &[(&str, &[&str])] = &[
    ("top", &["main", "lib", "cli", "app"]),
    (
        "shell",
        &["server", "web", "cluster", "replay", "tools", "client"],
    ),
    (
        "middle",
        &[
            "config",
            "state",
            "store",
            "history",
            "analytics",
            "proofs",
            "apikeys",
            "drivers",
            "feed",
            "notify",
            "selfservice",
            "auth",
            "certs",
            "metrics",
            "wire",
            "udp",
            "priority",
        ],
    ),
    ("parts' config", &["*/config.rs", "*/limits.rs", "tenancy"]),
];

/// The library crate's name: `main.rs` reaches the library as `milepost::…`.
const CRATE_NAME: &str = "milepost";

/// Crates the sans-IO core must not depend on.
const IO_CRATES: &[&str] = &[
    "tokio",
    "quinn",
    "axum",
    "toml",
    "ureq",
    "async-nats",
    "rustls",
];

/// Paths the core's code must not start with.
const IO_PATHS: &[&[&str]] = &[
    &["std", "fs"],
    &["std", "net"],
    &["std", "time", "SystemTime"],
    &["tokio"],
];

/// Calls the core's code must not make anywhere in a path (the clock is passed in).
const CLOCK_CALLS: &[&[&str]] = &[&["Instant", "now"], &["SystemTime", "now"]];

// ---------------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------------

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn no_import_cycles_in_the_shell() {
    let graph = Graph::of(&read_tree(&manifest_dir().join("src")));
    let cycles = graph.cycles();
    assert!(cycles.is_empty(), "{}", graph.cycles_report(&cycles));
}

#[test]
fn lower_layers_do_not_import_upper_layers() {
    let graph = Graph::of(&read_tree(&manifest_dir().join("src")));
    let violations = graph.layer_violations(LAYERS);
    assert!(violations.is_empty(), "{}", layers_report(&violations));
}

#[test]
fn the_core_crate_does_no_io() {
    let core = manifest_dir().join("core");
    let manifest = std::fs::read_to_string(core.join("Cargo.toml")).expect("core/Cargo.toml");
    let mut problems: Vec<String> = dependencies(&manifest)
        .into_iter()
        .filter(|(_, name)| IO_CRATES.contains(&name.as_str()))
        .map(|(section, name)| format!("core/Cargo.toml [{section}]: depends on {name}"))
        .collect();
    problems.extend(io_uses(&read_tree(&core.join("src"))));
    assert!(
        problems.is_empty(),
        "the core crate must do no I/O and read no clock:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_checker_finds_cycles_and_upward_imports_in_synthetic_trees() {
    // A clean tree, with the forms the checker must read: a multi-line grouped `use`, `self`
    // in a group, a child module by its bare name, `super::`, an inline path, an alias, and
    // upward-looking paths that are not code (comments, doc links, strings, a raw string,
    // character literals with quotes, a lifetime).
    let clean: Vec<(&str, &str)> = vec![
        (
            "lib.rs",
            "pub mod config;\npub mod store;\npub mod web;\npub mod server;\n",
        ),
        (
            "main.rs",
            "use milepost::server::Gateway;\nfn main() { milepost::config::load(); }\n",
        ),
        (
            "config.rs",
            "//! Assembles [`crate::web::WebConfig`].\nuse crate::web::config::WebConfig;\n\
             use crate::store::log::LogConfig;\npub fn load() {}\n",
        ),
        (
            "store/mod.rs",
            "pub mod log;\npub use log::LogConfig;\nfn f() { let _ = log::open(); }\n",
        ),
        (
            "store/log.rs",
            "/* crate::server::Gateway /* nested */ crate::web::X */\n\
             fn f<'a>(s: &'a str) -> char { let _ = \"crate::server::Gateway\";\n\
             let _ = r#\"crate::web::start\"#; let _ = '\"'; let _ = b'\\''; '\\'' }\n\
             pub fn open() {}\npub struct LogConfig;\n\
             #[cfg(test)]\nmod tests { use super::*; use crate::store::log::open; }\n",
        ),
        ("web/config.rs", "pub struct WebConfig;\n"),
        (
            "web/mod.rs",
            "pub mod api;\npub mod config;\npub use config::WebConfig;\n\
             use crate::{\n    config::load,\n    store::{self, log::open},\n};\n\
             fn f() { api::get(); store::log::open(); }\n",
        ),
        (
            "web/api.rs",
            "use super::config::WebConfig;\nuse crate::server::{self};\n\
             pub fn get() { server::serve(); }\n",
        ),
        (
            "server/mod.rs",
            "pub struct Gateway;\npub fn serve() { crate::store::log::open(); }\n\
             pub(in crate::server) fn g() {}\n",
        ),
    ];
    let g = Graph::of(&owned(&clean));
    assert!(g.cycles().is_empty(), "{}", g.cycles_report(&g.cycles()));
    assert!(
        g.layer_violations(LAYERS).is_empty(),
        "{}",
        layers_report(&g.layer_violations(LAYERS))
    );
    let mut want = vec![
        ("config.rs", "store/log.rs", "crate::store::log::LogConfig"),
        (
            "config.rs",
            "web/config.rs",
            "crate::web::config::WebConfig",
        ),
        ("main.rs", "config.rs", "milepost::config::load"),
        ("main.rs", "server/mod.rs", "milepost::server::Gateway"),
        ("server/mod.rs", "store/log.rs", "crate::store::log::open"),
        ("store/mod.rs", "store/log.rs", "log::LogConfig"),
        ("web/api.rs", "server/mod.rs", "crate::server"),
        ("web/api.rs", "web/config.rs", "super::config::WebConfig"),
        ("web/mod.rs", "config.rs", "crate::config::load"),
        ("web/mod.rs", "store/log.rs", "crate::store::log::open"),
        ("web/mod.rs", "store/mod.rs", "crate::store"),
        ("web/mod.rs", "web/api.rs", "api::get"),
        ("web/mod.rs", "web/config.rs", "config::WebConfig"),
    ];
    want.sort();
    let got: Vec<(&str, &str, &str)> = g
        .edges
        .iter()
        .map(|((a, b), names)| (a.as_str(), b.as_str(), names[0].as_str()))
        .collect();
    assert_eq!(got, want, "the edges of the clean tree");

    // A cycle of three files, one edge of it through a multi-line group and one through
    // `super::`, and a separate two-file cycle through a child module's bare name.
    let mut cyclic = clean.clone();
    cyclic.push((
        "store/writer.rs",
        "use crate::{\n    auth::{\n        Key,\n    },\n};\n",
    ));
    cyclic.push(("auth.rs", "fn f() { crate::config::load(); }\n"));
    cyclic.push((
        "config.rs",
        "pub fn load() {}\nmod inner { fn g() { super::super::store::writer::go(); } }\n",
    ));
    cyclic.push(("web/config.rs", "use crate::web::api;\n"));
    let g = Graph::of(&owned(&cyclic));
    assert_eq!(
        g.cycles(),
        vec![
            vec!["auth.rs", "config.rs", "store/writer.rs"],
            vec!["web/api.rs", "web/config.rs"],
        ]
    );
    let report = g.cycles_report(&g.cycles());
    for line in [
        "store/writer.rs -> auth.rs: crate::auth::Key",
        "auth.rs -> config.rs: crate::config::load",
        "config.rs -> store/writer.rs: super::super::store::writer::go",
        "web/config.rs -> web/api.rs: crate::web::api",
        "web/api.rs -> web/config.rs: super::config::WebConfig",
    ] {
        assert!(
            report.contains(line),
            "{line:?} not in the report:\n{report}"
        );
    }

    // Lower files referring up: the middle to the shell, a part's config to its module's
    // front, the shell to the top, and a module no layer names.
    let mut upward = clean.clone();
    upward.push(("state.rs", "use crate::server::Gateway;\n"));
    upward.push(("web/config.rs", "fn f() { crate::web::api::get(); }\n"));
    upward.push(("server/mod.rs", "use crate::cli::Args;\n"));
    upward.push(("cli.rs", "pub struct Args;\n"));
    upward.push(("gizmo.rs", "use crate::config::load;\n"));
    let g = Graph::of(&owned(&upward));
    let v = g.layer_violations(LAYERS);
    let found: Vec<(&str, Option<&str>)> = v
        .iter()
        .map(|v| (v.from.as_str(), v.to.as_deref()))
        .collect();
    assert_eq!(
        found,
        vec![
            ("gizmo.rs", None),
            ("server/mod.rs", Some("cli.rs")),
            ("state.rs", Some("server/mod.rs")),
            ("web/config.rs", Some("web/api.rs")),
        ]
    );
    let report = layers_report(&v);
    for line in [
        "state.rs (middle) -> server/mod.rs (shell): crate::server::Gateway",
        "web/config.rs (parts' config) -> web/api.rs (shell): crate::web::api::get",
        "server/mod.rs (shell) -> cli.rs (top): crate::cli::Args",
        "gizmo.rs: in no layer",
    ] {
        assert!(
            report.contains(line),
            "{line:?} not in the report:\n{report}"
        );
    }
}

#[test]
fn the_core_check_sees_grouped_and_inline_io() {
    let tree = owned(&[
        (
            "lib.rs",
            "//! Never calls std::fs or Instant::now.\nuse std::{collections::BTreeMap, fs};\n",
        ),
        ("a.rs", "fn f() -> u64 { ::std::time::Instant::now(); 0 }\n"),
        (
            "b.rs",
            "#[tokio::test]\nasync fn t() { let _ = \"std::net\"; }\n",
        ),
        ("c.rs", "use std::time::{Duration, SystemTime};\n"),
        ("d.rs", "use std::time::Duration;\nfn f(now_ms: i64) {}\n"),
    ]);
    assert_eq!(
        io_uses(&tree),
        vec![
            "core/src/a.rs: ::std::time::Instant::now",
            "core/src/b.rs: tokio::test",
            "core/src/c.rs: std::time::SystemTime",
            "core/src/lib.rs: std::fs",
        ]
    );
    let manifest = "[package]\nname = \"x\"\n[dependencies]\nserde = \"1\"\n\
                    net = { package = \"async-nats\", version = \"0.46\" }\n\
                    [dev-dependencies]\ntokio = \"1\"\n[dependencies.quinn]\nversion = \"0.11\"\n\
                    [target.'cfg(unix)'.dependencies]\nrustls = \"0.23\"\n";
    let deps = dependencies(manifest);
    let names: Vec<&str> = deps.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["serde", "async-nats", "quinn", "rustls"]);
}

// ---------------------------------------------------------------------------------------------
// Reading files: a lexer that drops comments and literals.
// ---------------------------------------------------------------------------------------------

/// The `.rs` files under `root`, as (path relative to `root` with `/`, text), sorted.
fn read_tree(root: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).unwrap();
                let rel: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push((rel.join("/"), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn owned(files: &[(&str, &str)]) -> Vec<(String, String)> {
    // A later entry for the same path replaces the earlier one.
    let map: BTreeMap<String, String> = files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    map.into_iter().collect()
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Sep,
    Punct(char),
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Identifiers, `::` and punctuation; comments, literals and numbers are dropped.
fn lex(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_string(&c, i + 1);
        } else if ch == '\'' {
            i = skip_quote(&c, i);
        } else if is_ident_start(ch) {
            let start = i;
            while i < c.len() && is_ident_continue(c[i]) {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            match (word.as_str(), at(i)) {
                ("b" | "c", '"') => i = skip_string(&c, i + 1),
                ("b", '\'') => i = skip_quote(&c, i),
                ("r" | "br" | "cr", '"' | '#') if raw_string_end(&c, i).is_some() => {
                    i = raw_string_end(&c, i).unwrap();
                }
                ("r", '#') => {
                    // A raw identifier, `r#type`.
                    let start = i + 1;
                    i = start;
                    while i < c.len() && is_ident_continue(c[i]) {
                        i += 1;
                    }
                    out.push(Tok::Ident(c[start..i].iter().collect()));
                }
                _ => out.push(Tok::Ident(word)),
            }
        } else if ch.is_ascii_digit() {
            while i < c.len() && is_ident_continue(c[i]) {
                i += 1;
            }
        } else if ch == ':' && at(i + 1) == ':' {
            out.push(Tok::Sep);
            i += 2;
        } else {
            out.push(Tok::Punct(ch));
            i += 1;
        }
    }
    out
}

/// Past the end of a string whose first character (after the quote) is at `i`.
fn skip_string(c: &[char], mut i: usize) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// Past a raw string whose `#`s or quote start at `i`, if one starts there.
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    let hashes = c[i..].iter().take_while(|&&ch| ch == '#').count();
    if c.get(i + hashes) != Some(&'"') {
        return None;
    }
    let mut j = i + hashes + 1;
    while j < c.len() {
        if c[j] == '"'
            && c[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&h| h == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(c.len())
}

/// Past a character literal or a lifetime/label starting with the quote at `i`.
fn skip_quote(c: &[char], i: usize) -> usize {
    if c.get(i + 1) == Some(&'\\') {
        let mut j = i + 3;
        while j < c.len() && c[j] != '\'' {
            j += 1;
        }
        j + 1
    } else if c.get(i + 2) == Some(&'\'') {
        i + 3
    } else {
        let mut j = i + 1;
        while j < c.len() && is_ident_continue(c[j]) {
            j += 1;
        }
        j
    }
}

// ---------------------------------------------------------------------------------------------
// Paths: every path a file writes, with the inline module it is written in.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct PathRef {
    /// The segments as written (`use` trees expanded; a leading `::` is an empty segment).
    segs: Vec<String>,
    /// The inline modules (`mod tests { … }`) around it, outermost first.
    inline: Vec<String>,
    /// From a `use`: the name it brings in (`None` for a glob or `as _`).
    binds: Option<String>,
    /// A `use …::*`.
    glob: bool,
}

impl PathRef {
    fn written(&self) -> String {
        let mut s = self.segs.join("::");
        if self.glob {
            s.push_str("::*");
        }
        s
    }
}

fn paths(toks: &[Tok]) -> Vec<PathRef> {
    let ident = |i: usize| match toks.get(i) {
        Some(Tok::Ident(s)) => Some(s.as_str()),
        _ => None,
    };
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut pending_mod: Option<String> = None;
    let mut i = 0;
    while i < toks.len() {
        let after_sep = i > 0 && toks[i - 1] == Tok::Sep;
        match &toks[i] {
            Tok::Punct('{') => {
                depth += 1;
                if let Some(m) = pending_mod.take() {
                    inline.push((m, depth));
                }
                i += 1;
            }
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Tok::Ident(k) if k == "mod" && !after_sep => {
                if let (Some(name), Some(Tok::Punct('{'))) = (ident(i + 1), toks.get(i + 2)) {
                    pending_mod = Some(name.to_string());
                }
                i += 2;
            }
            Tok::Ident(k) if k == "use" && !after_sep => {
                i += 1;
                let mut leaves = Vec::new();
                use_tree(toks, &mut i, Vec::new(), &mut leaves);
                let names: Vec<String> = inline.iter().map(|(m, _)| m.clone()).collect();
                out.extend(leaves.into_iter().map(|mut p| {
                    p.inline = names.clone();
                    p
                }));
            }
            Tok::Ident(_) | Tok::Sep if !after_sep => {
                let leading = toks[i] == Tok::Sep;
                // `pub(in crate::x)` names a visibility, not a dependency; `<T as X>::Y` and
                // `f()::` are not paths that start here.
                let visibility = ident(i.wrapping_sub(1)) == Some("in")
                    && i >= 2
                    && toks[i - 2] == Tok::Punct('(');
                let after_type = leading
                    && i > 0
                    && matches!(toks[i - 1], Tok::Ident(_) | Tok::Punct('>' | ')' | ']'));
                let mut segs = Vec::new();
                let mut j = i;
                if leading {
                    segs.push(String::new());
                } else {
                    segs.push(ident(i).unwrap().to_string());
                    j += 1;
                }
                while toks.get(j) == Some(&Tok::Sep) {
                    match ident(j + 1) {
                        Some(s) => segs.push(s.to_string()),
                        None => break,
                    }
                    j += 2;
                }
                if segs.len() > 1 && !visibility && !after_type {
                    out.push(PathRef {
                        segs,
                        inline: inline.iter().map(|(m, _)| m.clone()).collect(),
                        binds: None,
                        glob: false,
                    });
                }
                i = j.max(i + 1);
            }
            _ => i += 1,
        }
    }
    out
}

/// Reads a `use` tree starting at `i` under `prefix`, pushing its leaves.
fn use_tree(toks: &[Tok], i: &mut usize, prefix: Vec<String>, out: &mut Vec<PathRef>) {
    let mut segs = prefix;
    if toks.get(*i) == Some(&Tok::Sep) {
        *i += 1;
        if segs.is_empty() {
            segs.push(String::new());
        }
    }
    loop {
        match toks.get(*i) {
            Some(Tok::Punct('{')) => {
                *i += 1;
                while *i < toks.len() && toks[*i] != Tok::Punct('}') {
                    let before = *i;
                    use_tree(toks, i, segs.clone(), out);
                    if toks.get(*i) == Some(&Tok::Punct(',')) || *i == before {
                        *i += 1;
                    }
                }
                *i += 1;
                return;
            }
            Some(Tok::Punct('*')) => {
                *i += 1;
                out.push(PathRef {
                    segs,
                    inline: Vec::new(),
                    binds: None,
                    glob: true,
                });
                return;
            }
            Some(Tok::Ident(name)) => {
                segs.push(name.clone());
                *i += 1;
                if toks.get(*i) == Some(&Tok::Sep) {
                    *i += 1;
                    continue;
                }
                if segs.len() > 1 && segs.last().map(String::as_str) == Some("self") {
                    segs.pop();
                }
                let mut binds = segs.last().cloned();
                if toks.get(*i) == Some(&Tok::Ident("as".into())) {
                    binds = match toks.get(*i + 1) {
                        Some(Tok::Ident(a)) if a != "_" => Some(a.clone()),
                        _ => None,
                    };
                    *i += 2;
                }
                out.push(PathRef {
                    segs,
                    inline: Vec::new(),
                    binds,
                    glob: false,
                });
                return;
            }
            _ => return,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The graph.
// ---------------------------------------------------------------------------------------------

/// The module path of a file: `web/mod.rs` and `web.rs` are `web`; the crate roots are empty.
fn module_of(file: &str) -> Vec<String> {
    let stem = file.strip_suffix(".rs").unwrap_or(file);
    let mut m: Vec<String> = stem.split('/').map(String::from).collect();
    if m.last().map(String::as_str) == Some("mod")
        || (m.len() == 1 && (m[0] == "lib" || m[0] == "main"))
    {
        m.pop();
    }
    m
}

struct Graph {
    /// Every file.
    files: BTreeSet<String>,
    /// (from, to) to the distinct paths that make the edge, in the order first written.
    edges: BTreeMap<(String, String), Vec<String>>,
}

impl Graph {
    fn of(tree: &[(String, String)]) -> Graph {
        let files: BTreeSet<String> = tree.iter().map(|(p, _)| p.clone()).collect();
        let modules: BTreeMap<Vec<String>, String> = files
            .iter()
            .filter(|f| !module_of(f).is_empty())
            .map(|f| (module_of(f), f.clone()))
            .collect();
        let mut edges: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for (file, text) in tree {
            let here = module_of(file);
            let refs = paths(&lex(text));
            // Names `use` brings in, first, so that a later `name::x` can be followed.
            let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for r in refs.iter().filter(|r| r.binds.is_some()) {
                if let Some(abs) = absolute(r, &here, &aliases, &modules) {
                    aliases.insert(r.binds.clone().unwrap(), abs);
                }
            }
            for r in &refs {
                let Some(abs) = absolute(r, &here, &aliases, &modules) else {
                    continue;
                };
                let target = (1..=abs.len()).rev().find_map(|k| modules.get(&abs[..k]));
                if let Some(target) = target.filter(|t| *t != file) {
                    let names = edges.entry((file.clone(), target.clone())).or_default();
                    let written = r.written();
                    if !names.contains(&written) {
                        names.push(written);
                    }
                }
            }
        }
        Graph { files, edges }
    }

    /// The strongly connected components of more than one file, each sorted, in order.
    fn cycles(&self) -> Vec<Vec<String>> {
        let nodes: Vec<&String> = self.files.iter().collect();
        let index: BTreeMap<&String, usize> =
            nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let mut succ = vec![Vec::new(); nodes.len()];
        for (a, b) in self.edges.keys() {
            succ[index[a]].push(index[b]);
        }
        let mut t = Tarjan {
            succ: &succ,
            index: vec![None; nodes.len()],
            low: vec![0; nodes.len()],
            on_stack: vec![false; nodes.len()],
            stack: Vec::new(),
            next: 0,
            sccs: Vec::new(),
        };
        for v in 0..nodes.len() {
            if t.index[v].is_none() {
                t.visit(v);
            }
        }
        let mut out: Vec<Vec<String>> = t
            .sccs
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| {
                let mut files: Vec<String> = c.into_iter().map(|i| nodes[i].clone()).collect();
                files.sort();
                files
            })
            .collect();
        out.sort();
        out
    }

    /// One shortest way round a component, from its first file.
    fn shortest_round(&self, scc: &[String]) -> Vec<String> {
        let start = &scc[0];
        let mut prev: BTreeMap<&String, &String> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(a) = queue.pop_front() {
            for (_, b) in self.edges.keys().filter(|(x, b)| x == a && scc.contains(b)) {
                if b == start {
                    let mut round = vec![a.clone()];
                    let mut at = a;
                    while at != start {
                        at = prev[at];
                        round.push(at.clone());
                    }
                    round.reverse();
                    round.push(start.clone());
                    return round;
                }
                if !prev.contains_key(b) && b != start {
                    prev.insert(b, a);
                    queue.push_back(b);
                }
            }
        }
        Vec::new()
    }

    fn cycles_report(&self, cycles: &[Vec<String>]) -> String {
        let mut s = format!(
            "{} import cycle(s) among the files of src/ (each: the files that reach each other, \
             one way round, then every edge among them):\n",
            cycles.len()
        );
        for (n, scc) in cycles.iter().enumerate() {
            s.push_str(&format!("cycle {}: {}\n", n + 1, scc.join(", ")));
            s.push_str(&format!(
                "  e.g. {}\n",
                self.shortest_round(scc).join(" -> ")
            ));
            for ((a, b), names) in &self.edges {
                if scc.contains(a) && scc.contains(b) {
                    s.push_str(&format!("  {a} -> {b}: {}", names[0]));
                    if names.len() > 1 {
                        s.push_str(&format!(" (+{} more)", names.len() - 1));
                    }
                    s.push('\n');
                }
            }
        }
        s
    }

    fn layer_violations(&self, layers: &[(&str, &[&str])]) -> Vec<Violation> {
        let mut out = Vec::new();
        for f in &self.files {
            if layer_of(f, layers).is_none() {
                out.push(Violation {
                    from: f.clone(),
                    to: None,
                    what: format!("{f}: in no layer (add its module to the table)"),
                });
            }
        }
        for ((a, b), names) in &self.edges {
            let (Some(la), Some(lb)) = (layer_of(a, layers), layer_of(b, layers)) else {
                continue;
            };
            // Highest first: a smaller index is a higher layer.
            if lb < la {
                let mut what = format!(
                    "{a} ({}) -> {b} ({}): {}",
                    layers[la].0, layers[lb].0, names[0]
                );
                if names.len() > 1 {
                    what.push_str(&format!(
                        " (+{} more: {})",
                        names.len() - 1,
                        names[1..].join(", ")
                    ));
                }
                out.push(Violation {
                    from: a.clone(),
                    to: Some(b.clone()),
                    what,
                });
            }
        }
        out.sort_by(|x, y| (&x.from, &x.to).cmp(&(&y.from, &y.to)));
        out
    }
}

/// Makes a path absolute in the module tree, if it is the shell's (see the file's doc).
fn absolute(
    r: &PathRef,
    file_module: &[String],
    aliases: &BTreeMap<String, Vec<String>>,
    modules: &BTreeMap<Vec<String>, String>,
) -> Option<Vec<String>> {
    let mut here: Vec<String> = file_module.to_vec();
    here.extend(r.inline.iter().cloned());
    let segs = &r.segs;
    let first = segs[0].as_str();
    if first == "crate" || first == CRATE_NAME {
        return Some(segs[1..].to_vec());
    }
    if first == "self" {
        return Some([&here[..], &segs[1..]].concat());
    }
    if first == "super" {
        let ups = segs.iter().take_while(|s| *s == "super").count();
        let base = here.len().checked_sub(ups)?;
        return Some([&here[..base], &segs[ups..]].concat());
    }
    if let Some(abs) = aliases.get(first) {
        return Some([&abs[..], &segs[1..]].concat());
    }
    let child = [&here[..], &segs[..1]].concat();
    if modules.contains_key(&child) {
        return Some([&here[..], &segs[..]].concat());
    }
    None
}

struct Tarjan<'a> {
    succ: &'a [Vec<usize>],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    next: usize,
    sccs: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn visit(&mut self, v: usize) {
        self.index[v] = Some(self.next);
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for &w in &self.succ[v] {
            match self.index[w] {
                None => {
                    self.visit(w);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(self.low[v]) == self.index[v] {
            let mut scc = Vec::new();
            loop {
                let w = self.stack.pop().unwrap();
                self.on_stack[w] = false;
                scc.push(w);
                if w == v {
                    break;
                }
            }
            self.sccs.push(scc);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Layers.
// ---------------------------------------------------------------------------------------------

struct Violation {
    from: String,
    /// `None`: the file is in no layer.
    to: Option<String>,
    what: String,
}

/// The index (highest first) of the layer `file` is in.
fn layer_of(file: &str, layers: &[(&str, &[&str])]) -> Option<usize> {
    let name = file.rsplit('/').next().unwrap();
    // `*/file.rs` entries name a part's own file, directly in a top-level module's folder
    // (`web/config.rs`), not a file of that name deeper down (`replay/sim/config.rs`).
    let nested = file.matches('/').count() == 1;
    let by_file = layers.iter().position(|(_, entries)| {
        entries
            .iter()
            .any(|e| nested && e.strip_prefix("*/") == Some(name))
    });
    by_file.or_else(|| {
        let top = file.split('/').next().unwrap();
        let top = top.strip_suffix(".rs").unwrap_or(top);
        layers
            .iter()
            .position(|(_, entries)| entries.contains(&top))
    })
}

fn layers_report(violations: &[Violation]) -> String {
    let lines: Vec<&str> = violations.iter().map(|v| v.what.as_str()).collect();
    format!(
        "{} reference(s) against the layer rule (the table at the top of tests/layers.rs; \
         a file may refer only to its own layer or lower ones):\n  {}\n",
        violations.len(),
        lines.join("\n  ")
    )
}

// ---------------------------------------------------------------------------------------------
// The core.
// ---------------------------------------------------------------------------------------------

/// (section, crate name) of every dependency a manifest gives its code: `[dependencies]`,
/// `[build-dependencies]`, `[target.….dependencies]` and `[dependencies.name]` tables, a
/// `package = "…"` rename read through. `[dev-dependencies]` are the tests' own and left out.
fn dependencies(manifest: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut section = String::new();
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap().trim();
        if let Some(h) = line.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            section = h.trim().to_string();
            // `[dependencies.quinn]`: the table names the crate.
            let table = section
                .rsplit_once("dependencies.")
                .filter(|(pre, _)| !pre.ends_with("dev-"));
            if let Some((_, name)) = table {
                out.push((section.clone(), name.trim_matches('"').to_string()));
            }
            continue;
        }
        let deps = section == "dependencies"
            || section == "build-dependencies"
            || (section.starts_with("target.") && section.ends_with(".dependencies"))
            || section.ends_with(".build-dependencies");
        let Some((key, value)) = line.split_once('=').filter(|_| deps) else {
            continue;
        };
        let renamed = value.split_once("package").and_then(|(_, rest)| {
            let rest = rest.trim_start().strip_prefix('=')?.trim_start();
            rest.strip_prefix('"')?.split('"').next()
        });
        let name = renamed.unwrap_or(key.trim().trim_matches('"'));
        out.push((section.clone(), name.to_string()));
    }
    out
}

/// "core/src/file: path" for every path of the core that does I/O or reads the clock.
fn io_uses(tree: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (file, text) in tree {
        for r in paths(&lex(text)) {
            let segs: Vec<&str> = r
                .segs
                .iter()
                .map(String::as_str)
                .skip_while(|s| s.is_empty())
                .collect();
            let io = IO_PATHS.iter().any(|p| segs.starts_with(p))
                || CLOCK_CALLS
                    .iter()
                    .any(|c| segs.windows(c.len()).any(|w| w == *c));
            if io {
                out.push(format!("core/src/{file}: {}", r.written()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
