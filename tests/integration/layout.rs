//! The shape of the source tree, kept as ARCHITECTURE.md states it: no file
//! over 500 lines of non-test code, no function over 80 lines unless its
//! doc says why (a paragraph starting `Long because`), and no import cycle
//! between the files (or sub-directories) of one module, the crate's
//! top-level modules included. Read from the text: rustfmt's layout makes
//! a function end at the first `}` at its own indentation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 500;
const MAX_FUNCTION_LINES: usize = 80;

fn source_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(source_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The lines of a file that are not tests: an inline `#[cfg(test)] mod
/// tests { ... }` is left out, and so is a whole `tests.rs`.
fn code_lines(path: &Path) -> Vec<String> {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return Vec::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut code = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        if lines[index] == "#[cfg(test)]"
            && lines
                .get(index + 1)
                .is_some_and(|l| l.starts_with("mod ") && l.ends_with('{'))
        {
            while index < lines.len() && lines[index] != "}" {
                index += 1;
            }
        } else {
            code.push(lines[index].to_owned());
        }
        index += 1;
    }
    code
}

fn relative(path: &Path) -> String {
    path.strip_prefix(src().parent().unwrap())
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn no_file_holds_more_than_500_lines_of_code() {
    let over: Vec<String> = source_files(&src())
        .iter()
        .filter_map(|path| {
            let lines = code_lines(path).len();
            (lines > MAX_FILE_LINES).then(|| format!("{} ({lines} lines)", relative(path)))
        })
        .collect();
    assert!(
        over.is_empty(),
        "split these by job: {over:#?} (at most {MAX_FILE_LINES} lines of non-test code)"
    );
}

/// A function's name and length, when it starts on `lines[index]`.
fn function_at(lines: &[String], index: usize) -> Option<(String, usize)> {
    let line = &lines[index];
    let indent = line.len() - line.trim_start().len();
    let mut words = line.split_whitespace().peekable();
    while let Some(word) = words.peek() {
        if word.starts_with("pub") || ["const", "async", "unsafe", "extern"].contains(word) {
            words.next();
        } else {
            break;
        }
    }
    if words.next() != Some("fn") {
        return None;
    }
    let name: String = words
        .next()?
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    // A declaration without a body (in a trait) ends at its `;` first.
    let opens = lines[index..]
        .iter()
        .find(|l| l.ends_with('{') || l.ends_with(';'))?;
    if opens.ends_with(';') {
        return None;
    }
    let close = format!("{}}}", " ".repeat(indent));
    let end = lines[index..].iter().position(|l| *l == close)?;
    Some((name, end + 1))
}

/// Whether the doc comment above `lines[index]` says why it is long.
fn says_why(lines: &[String], index: usize) -> bool {
    lines[..index]
        .iter()
        .rev()
        .take_while(|l| {
            let l = l.trim_start();
            l.starts_with("///") || l.starts_with("#[")
        })
        .any(|l| l.trim_start().starts_with("/// Long because"))
}

#[test]
fn no_function_runs_over_80_lines_without_saying_why() {
    let mut over = Vec::new();
    for path in source_files(&src()) {
        let lines = code_lines(&path);
        for index in 0..lines.len() {
            if let Some((name, length)) = function_at(&lines, index)
                && length > MAX_FUNCTION_LINES
                && !says_why(&lines, index)
            {
                over.push(format!("{}: {name} ({length} lines)", relative(&path)));
            }
        }
    }
    assert!(
        over.is_empty(),
        "split these, or say why in a doc paragraph starting `Long because`: {over:#?}"
    );
}

/// The files and sub-directories of the module in `dir`, by name, with the
/// names each refers to (`super::name`, `crate::path::name`).
fn module_graph(dir: &Path, is_root: bool) -> BTreeMap<String, BTreeSet<String>> {
    let mut members: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            members.entry(name).or_default().extend(source_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs")
            && !["mod", "lib", "main", "tests"].contains(&name.as_str())
        {
            members.entry(name).or_default().push(path);
        }
    }
    let module_path = if is_root {
        "crate".to_owned()
    } else {
        let relative = dir.strip_prefix(src()).unwrap();
        format!(
            "crate::{}",
            relative.display().to_string().replace('/', "::")
        )
    };
    let names: BTreeSet<String> = members.keys().cloned().collect();
    let mut graph = BTreeMap::new();
    for (name, files) in &members {
        let mut refers = BTreeSet::new();
        for file in files {
            // Only a file of this module's own level says `super::` of it.
            let own_level = file.parent() == Some(dir);
            let code = code_lines(file)
                .into_iter()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let mut mentioned = |prefix: &str| {
                for (at, _) in code.match_indices(prefix) {
                    let before = code[..at].chars().last();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                        continue;
                    }
                    let rest = &code[at + prefix.len()..];
                    let mut listed = Vec::new();
                    if let Some(group) = rest.strip_prefix('{') {
                        let group = group.split('}').next().unwrap_or_default();
                        listed.extend(group.split(',').map(|item| {
                            item.trim()
                                .split("::")
                                .next()
                                .unwrap_or_default()
                                .to_owned()
                        }));
                    } else {
                        listed.push(
                            rest.chars()
                                .take_while(|c| c.is_alphanumeric() || *c == '_')
                                .collect(),
                        );
                    }
                    for item in listed {
                        if names.contains(&item) && item != *name {
                            refers.insert(item);
                        }
                    }
                }
            };
            mentioned(&format!("{module_path}::"));
            if own_level && !is_root {
                mentioned("super::");
            }
        }
        graph.insert(name.clone(), refers);
    }
    graph
}

/// A cycle in `graph`, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut found = path[start..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_import_cycle_between_the_files_of_a_module() {
    let mut cycles = Vec::new();
    let mut dirs = vec![(src(), true)];
    while let Some((dir, is_root)) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push((path, false));
            }
        }
        if let Some(found) = cycle(&module_graph(&dir, is_root)) {
            cycles.push(format!("{}: {}", relative(&dir), found.join(" -> ")));
        }
    }
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

#[test]
fn the_checks_find_what_they_look_for() {
    let lines: Vec<String> = [
        "/// Short.",
        "pub(crate) async fn short() {",
        "}",
        "fn declared(&self) -> u32;",
    ]
    .iter()
    .map(|l| (*l).to_owned())
    .collect();
    assert_eq!(function_at(&lines, 1), Some(("short".to_owned(), 2)));
    assert_eq!(function_at(&lines, 3), None);
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"])]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
            .collect();
    assert_eq!(
        cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
