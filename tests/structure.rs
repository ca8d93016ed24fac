//! The crate's shape, held where it was won: no module imports one that imports it back (a
//! circle makes every file in it load-bearing for every other), and the statics that coordinate
//! the page and its workers do not grow in number. Read from the sources, as a reader would: a
//! path `crate::a::b`, `super::a` or `self::a` names the deepest module it reaches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `thread_local!` blocks in src/, digits-lab/src/ and engine/src/ now: one page state and one engine
/// state is where they are going; a new one is a new place that coordinates by a global.
const STATICS_AT_MOST: usize = 14;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file of src/ defines, as `a::b` (`lib` for the crate's root).
fn module_of(file: &Path) -> String {
    let relative = file.strip_prefix("src").unwrap().with_extension("");
    let parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [only] if only == "lib" => String::new(),
        [init @ .., last] if last == "mod" => init.join("::"),
        all => all.join("::"),
    }
}

/// The code of a file without its comments (`//` to the end of the line).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Paths starting at `crate`, `super` or `self` in `code`, with `{a, b}` groups expanded one level.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let word_start =
        |i: usize| i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
    for root in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(root) {
            let start = from + at;
            from = start + root.len();
            if !word_start(start) {
                continue;
            }
            let rest = &code[start..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let head: Vec<String> = rest[..end]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if rest[end..].starts_with('{') {
                let group = &rest[end + 1..rest[end..].find('}').map_or(end + 1, |c| end + c)];
                for item in group.split(',') {
                    let item = item.trim().split([' ', ':']).next().unwrap_or("");
                    if !item.is_empty() && item != "self" {
                        let mut path = head.clone();
                        path.push(item.to_string());
                        out.push(path);
                    }
                }
            }
            out.push(head);
        }
    }
    out
}

/// The deepest known module `path`, written in module `from`, reaches.
fn resolve(from: &str, path: &[String], modules: &BTreeSet<String>) -> Option<String> {
    let mut base: Vec<&str> = if from.is_empty() {
        Vec::new()
    } else {
        from.split("::").collect()
    };
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => base.clear(),
        Some("self") => {}
        Some("super") => {
            base.pop();
        }
        _ => return None,
    }
    rest = &rest[1..];
    while rest.first().is_some_and(|s| s == "super") {
        base.pop();
        rest = &rest[1..];
    }
    let mut found = None;
    for take in 0..=rest.len() {
        let candidate: Vec<&str> = base
            .iter()
            .copied()
            .chain(rest[..take].iter().map(String::as_str))
            .collect();
        let name = candidate.join("::");
        if modules.contains(&name) {
            found = Some(name);
        }
    }
    found
}

/// The crate's modules and, for each, the modules it names (its own descendants and ancestors
/// left out: a parent declares its children, and a child's `super::` is its own module tree).
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(Path::new("src"), &mut files);
    let texts: BTreeMap<String, String> = files
        .iter()
        .map(|f| (module_of(f), code(&std::fs::read_to_string(f).unwrap())))
        .collect();
    let modules: BTreeSet<String> = texts.keys().cloned().collect();
    let nested = |a: &str, b: &str| {
        a.is_empty()
            || b.is_empty()
            || a.starts_with(&format!("{b}::"))
            || b.starts_with(&format!("{a}::"))
    };
    texts
        .iter()
        .map(|(module, text)| {
            let named = paths(text)
                .iter()
                .filter_map(|p| resolve(module, p, &modules))
                .filter(|t| t != module && !nested(module, t))
                .collect();
            (module.clone(), named)
        })
        .collect()
}

/// The groups of modules that reach each other (Tarjan's strongly connected components of more
/// than one module).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.stack.contains(&w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                group.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.found.push(group);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let graph = imports();
    // The reader sees real edges: the figures' driver and the compute layer are found.
    assert!(graph["web::figures::velocity_field"].contains("web::compute"));
    assert!(graph["web::compute"].contains("web::pool"));
    assert_eq!(circles(&graph), Vec::<Vec<String>>::new());
}

#[test]
fn the_circle_finder_finds_a_circle() {
    let mut graph = imports();
    // `pool` reading the address through `backend` again, as it once did: api -> compute -> pool
    // -> backend, and testing -> pool, backend -> testing closed the circle.
    graph
        .get_mut("web::pool")
        .unwrap()
        .insert("web::backend".into());
    graph
        .get_mut("web::backend")
        .unwrap()
        .insert("web::testing".into());
    let found = circles(&graph);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains(&"web::pool".to_string()), "{found:?}");
}

#[test]
fn the_statics_do_not_grow() {
    let mut files = Vec::new();
    sources(Path::new("src"), &mut files);
    sources(Path::new("digits-lab/src"), &mut files);
    sources(Path::new("engine/src"), &mut files);
    let blocks: usize = files
        .iter()
        .map(|f| {
            code(&std::fs::read_to_string(f).unwrap())
                .matches("thread_local!")
                .count()
        })
        .sum();
    assert!(blocks > 0, "no sources were read");
    assert!(
        blocks <= STATICS_AT_MOST,
        "{blocks} thread_local! blocks, at most {STATICS_AT_MOST}: hold the state in the page's or the engine's"
    );
}

/// The page hears its workers in one place: the ticketed port (`web/port.rs`). A second listener
/// on a worker's messages would be a second RPC beside it. (`turns.rs` listens on a
/// MessageChannel of its own, to yield to the page, not to a worker.)
#[test]
fn one_port_hears_the_workers() {
    let mut files = Vec::new();
    sources(Path::new("src"), &mut files);
    let listening: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = code(&std::fs::read_to_string(f).unwrap());
            text.contains("set_onmessage") && !text.contains("MessageChannel")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert_eq!(listening, ["src/web/port.rs"]);
}
