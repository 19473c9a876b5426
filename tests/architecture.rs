//! The shape of the house, checked: no crate depends on a crate above it, the contract crate
//! depends on no framework, and inside the server no module imports a module of a higher floor
//! or takes part in an import circle.
//!
//! The floors are the ones `README.md` ("How it is built") draws. A change that needs an upward
//! import is a change of the drawing: move the shared piece down, or update the table below
//! together with the README, on purpose.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

/// The server's top-level modules by floor: a module may import from its own floor and below
/// (and never in a circle, which `no_modules_import_each_other_in_a_circle` checks at every
/// level).
const MODULE_FLOORS: &[(&str, u8)] = &[
    // Building blocks that know only the contract.
    ("telemetry", 20),
    ("rules", 20),
    ("redis", 21),
    ("store", 22),
    ("auth", 22),
    ("limits", 22),
    ("events", 22),
    ("cluster", 22),
    ("idempotency", 22),
    // The one implementation of the operations.
    ("handlers", 30),
    // What every transport shares.
    ("edge", 40),
    // Transports.
    ("rest", 50),
    ("ws", 50),
    ("mcp", 50),
    // Wiring.
    ("config", 60),
    ("server", 60),
];

/// The workspace's crates by floor; `beside` crates may use the floors they need but nothing may
/// depend on them except as a dev-dependency.
const CRATE_FLOORS: &[(&str, u8)] = &[
    ("petstore-codegen", 0),
    ("petstore-api", 1),
    ("petstore-client", 2),
    ("petstore-ws", 2),
    ("petstore-testkit", 3),
];

/// What the contract may depend on: serde and small data crates.
const CONTRACT_DEPENDENCIES: &[&str] = &[
    "base64",
    "bytes",
    "chrono",
    "regex",
    "serde",
    "serde_json",
    "thiserror",
    "tracing",
    "uuid",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// Every workspace package: its name, and its dependencies as (name, kind) where kind is
/// `normal`, `dev` or `build`.
fn packages(metadata: &Value) -> BTreeMap<String, Vec<(String, String)>> {
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|package| {
            let name = package["name"].as_str().expect("name").to_owned();
            let dependencies = package["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .map(|dependency| {
                    (
                        dependency["name"].as_str().expect("name").to_owned(),
                        dependency["kind"].as_str().unwrap_or("normal").to_owned(),
                    )
                })
                .collect();
            (name, dependencies)
        })
        .collect()
}

fn crate_floor(name: &str) -> Option<u8> {
    CRATE_FLOORS
        .iter()
        .find(|(candidate, _)| *candidate == name)
        .map(|(_, floor)| *floor)
}

#[test]
fn every_workspace_crate_has_a_floor() {
    for name in packages(&metadata()).keys() {
        assert!(
            crate_floor(name).is_some(),
            "{name} is not in CRATE_FLOORS: give it a floor here and in the README"
        );
    }
}

#[test]
fn no_crate_depends_on_a_crate_above_it() {
    let packages = packages(&metadata());
    for (name, dependencies) in &packages {
        let Some(floor) = crate_floor(name) else {
            continue;
        };
        for (dependency, kind) in dependencies {
            let Some(dependency_floor) = crate_floor(dependency) else {
                continue;
            };
            // Tests may use anything; a library or build script only what is below it (the
            // client and the server share a floor but neither uses the other).
            if kind == "dev" {
                continue;
            }
            assert!(
                dependency_floor < floor,
                "{name} (floor {floor}) depends on {dependency} (floor {dependency_floor}) as a \
                 {kind} dependency"
            );
        }
    }
}

#[test]
fn the_contract_depends_on_no_framework() {
    let packages = packages(&metadata());
    let contract = packages
        .get("petstore-api")
        .expect("the contract crate is in the workspace");
    for (dependency, kind) in contract {
        match kind.as_str() {
            "build" => assert_eq!(dependency, "petstore-codegen", "build-dependency"),
            "dev" => {}
            _ => assert!(
                CONTRACT_DEPENDENCIES.contains(&dependency.as_str()),
                "petstore-api depends on {dependency}: the contract is the ground floor (serde \
                 and small data crates only; no web framework, Redis client or WebSocket library)"
            ),
        }
    }
}

/// A source file of the server: its module path (`ws::control`) and the module paths it refers
/// to (`crate::x::y`, `super::x`, `self::x`, `use` groups included). Test code is left out
/// (`#[cfg(test)]` blocks and the files only tests compile): tests may reach anywhere.
struct SourceFile {
    module: Vec<String>,
    references: BTreeSet<Vec<String>>,
}

fn source_files() -> Vec<SourceFile> {
    let src = root().join("src");
    let mut files = Vec::new();
    for file in rust_files(&src) {
        let relative = file.strip_prefix(&src).expect("under src");
        if is_test_file(relative) {
            continue;
        }
        let mut module: Vec<String> = relative
            .with_extension("")
            .components()
            .filter_map(|component| component.as_os_str().to_str().map(str::to_owned))
            .collect();
        if module.last().is_some_and(|last| last == "mod") {
            module.pop();
        }
        if module == ["lib"] || module == ["main"] {
            continue;
        }
        let text = fs::read_to_string(&file).expect("readable");
        let references = paths(&without_test_blocks(&text))
            .into_iter()
            .filter_map(|path| resolve(&module, &path))
            .collect();
        files.push(SourceFile { module, references });
    }
    files
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files
}

/// Files that only tests compile: `tests.rs`, the `*conformance.rs` suites.
fn is_test_file(relative: &Path) -> bool {
    relative
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name == "tests.rs" || name.ends_with("conformance.rs"))
}

/// The text without the items marked `#[cfg(test)]`: a `mod x;` declaration, or an item with a
/// `{ … }` body (braces counted; the source is formatted code, so braces inside strings are
/// rare enough not to matter here).
fn without_test_blocks(text: &str) -> String {
    let mut kept = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("#[cfg(test)]") {
        kept.push_str(&rest[..start]);
        let item = &rest[start + "#[cfg(test)]".len()..];
        let semicolon = item.find(';');
        let brace = item.find('{');
        let end = match (semicolon, brace) {
            (Some(semicolon), Some(brace)) if semicolon < brace => semicolon + 1,
            (Some(semicolon), None) => semicolon + 1,
            (_, Some(brace)) => {
                let mut depth = 0usize;
                let mut end = item.len();
                for (offset, character) in item[brace..].char_indices() {
                    match character {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = brace + offset + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (None, None) => item.len(),
        };
        rest = &item[end..];
    }
    kept.push_str(rest);
    kept
}

/// Every path starting at `crate::`, `super::` or `self::`, with `use` groups expanded:
/// `use crate::{a::{b, c}, d}` gives `crate::a::b`, `crate::a::c` and `crate::d`.
fn paths(text: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for root in ["crate", "super", "self"] {
        let needle = format!("{root}::");
        for (index, _) in text.match_indices(&needle) {
            // `super::super::` and a `self::` inside a longer path start elsewhere.
            let before = text[..index].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            expand(
                vec![root.to_owned()],
                &text[index + needle.len()..],
                &mut found,
            );
        }
    }
    found
}

/// Appends the paths `rest` (what follows `prefix::`) spells out.
fn expand(prefix: Vec<String>, rest: &str, found: &mut Vec<Vec<String>>) {
    let rest = rest.trim_start();
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 0usize;
        let mut item = String::new();
        for character in group.chars() {
            match character {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(prefix.clone(), &item, found);
                    item.clear();
                    continue;
                }
                _ => {}
            }
            item.push(character);
        }
        expand(prefix, &item, found);
        return;
    }
    let segment: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if segment.is_empty() {
        if prefix.len() > 1 {
            found.push(prefix);
        }
        return;
    }
    let mut path = prefix;
    path.push(segment.clone());
    match rest[segment.len()..].strip_prefix("::") {
        Some(more) => expand(path, more, found),
        None => found.push(path),
    }
}

/// The absolute module path (without `crate`) a path in `module` refers into.
fn resolve(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let (base, rest): (Vec<String>, &[String]) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("self") => (module.to_vec(), &path[1..]),
        Some("super") => {
            let mut base = module.to_vec();
            let mut rest = &path[1..];
            base.pop()?;
            while rest.first().is_some_and(|segment| segment == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
            (base, rest)
        }
        _ => return None,
    };
    let mut absolute = base;
    absolute.extend(rest.iter().filter(|segment| *segment != "self").cloned());
    Some(absolute)
}

/// Among the direct submodules of `parent` (the crate's top-level modules for `[]`), which
/// import which: an edge A → B when a file of A's subtree refers into B's subtree. Edges to
/// the parent itself or outside it are not among siblings and are left out.
fn sibling_imports(files: &[SourceFile], parent: &[String]) -> BTreeMap<String, BTreeSet<String>> {
    let child_of = |module: &[String]| -> Option<String> {
        (module.len() > parent.len() && module.starts_with(parent))
            .then(|| module[parent.len()].clone())
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(from) = child_of(&file.module) else {
            continue;
        };
        let imports = graph.entry(from.clone()).or_default();
        for reference in &file.references {
            if let Some(to) = child_of(reference)
                && to != from
            {
                imports.insert(to);
            }
        }
    }
    graph
}

/// The server's top-level modules and what each imports.
fn module_imports() -> BTreeMap<String, BTreeSet<String>> {
    let graph = sibling_imports(&source_files(), &[]);
    // Only real modules count (`crate::VERSION`-style items are not modules).
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    graph
        .into_iter()
        .map(|(module, imports)| {
            let imports = imports.intersection(&modules).cloned().collect();
            (module, imports)
        })
        .collect()
}

fn module_floor(name: &str) -> Option<u8> {
    MODULE_FLOORS
        .iter()
        .find(|(candidate, _)| *candidate == name)
        .map(|(_, floor)| *floor)
}

#[test]
fn every_server_module_has_a_floor() {
    for module in module_imports().keys() {
        assert!(
            module_floor(module).is_some(),
            "src/{module} is not in MODULE_FLOORS: give it a floor here and in the README"
        );
    }
}

#[test]
fn no_server_module_imports_a_higher_floor() {
    let mut upward = Vec::new();
    for (module, imports) in module_imports() {
        let Some(floor) = module_floor(&module) else {
            continue;
        };
        for import in imports {
            if module_floor(&import).is_some_and(|imported| imported > floor) {
                upward.push(format!("{module} → {import}"));
            }
        }
    }
    assert!(upward.is_empty(), "imports from a higher floor: {upward:?}");
}

/// The first import circle of `graph`, if there is one.
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    // Depth-first search for a back edge; the path to it is the circle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|on_path| on_path == node) {
            let mut circle = path[start..].to_vec();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|module| visit(module, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_modules_import_each_other_in_a_circle() {
    let files = source_files();
    let parents: BTreeSet<Vec<String>> = files
        .iter()
        .flat_map(|file| (0..file.module.len()).map(|depth| file.module[..depth].to_vec()))
        .collect();
    for parent in parents {
        let graph = sibling_imports(&files, &parent);
        if let Some(circle) = find_circle(&graph) {
            let at = if parent.is_empty() {
                "crate".to_owned()
            } else {
                parent.join("::")
            };
            panic!(
                "import circle among the modules of {at}: {}",
                circle.join(" → ")
            );
        }
    }
}

#[test]
fn the_import_reader_expands_groups_and_resolves_super_and_self() {
    let text = "use crate::{auth::{self, Role}, store::Store};\n\
                use super::{envelope::now_ms, session::Session};\n\
                let x = crate::rest::API_BASE;";
    let module = ["ws".to_owned(), "control".to_owned()];
    let resolved: BTreeSet<String> = paths(text)
        .into_iter()
        .filter_map(|path| resolve(&module, &path))
        .map(|path| path.join("::"))
        .collect();
    let expected: BTreeSet<String> = [
        "auth",
        "auth::Role",
        "store::Store",
        "ws::envelope::now_ms",
        "ws::session::Session",
        "rest::API_BASE",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(resolved, expected);
    assert_eq!(
        without_test_blocks(
            "a\n#[cfg(test)]\nmod suite;\nb\n#[cfg(test)]\nmod tests {\n    fn f() {}\n}\nc"
        ),
        "a\n\nb\n\nc"
    );
}
