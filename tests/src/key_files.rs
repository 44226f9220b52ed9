//! The malformed key files every engine refuses (`tests/vectors/key_files.jsonl`, specified in
//! `key_files.md`): the host's CLI is checked against the same cases as the module's `init`
//! (`transform/src/keyfile.rs`) and Python (`integrations/python/tests/test_key_files.py`).

use serde_json::Value;

use crate::repo_root;

/// One case: the key file's text, the line its error must name, the rule's code and words of
/// its message.
pub struct KeyFileCase {
    pub name: String,
    pub text: String,
    pub line: usize,
    pub rule: String,
    pub says: String,
}

/// The fixture with its placeholders replaced by `key` and `other` (standard base64 of two
/// 64-byte keys; `key` must hold `+` or `/` so that its URL-safe form differs).
pub fn malformed_key_files(key: &str, other: &str) -> Vec<KeyFileCase> {
    let path = repo_root().join("tests/vectors/key_files.jsonl");
    let fixture = std::fs::read_to_string(&path).expect("tests/vectors/key_files.jsonl");
    let mut mangled = key.to_owned();
    mangled.replace_range(40..41, "!");
    let urlsafe = key.replace('+', "-").replace('/', "_");
    assert_ne!(urlsafe, key, "the test key must hold `+` or `/`");
    let case = |line: &str| {
        let v: Value = serde_json::from_str(line).expect("a fixture line is JSON");
        let field = |name: &str| v[name].as_str().expect(name).to_owned();
        let mut text = field("text")
            .replace("{key}", key)
            .replace("{other}", other)
            .replace("{key_mangled}", &mangled)
            .replace("{key_urlsafe}", &urlsafe);
        // `{key[..N]}` and `{key[N..]}`: a prefix or the rest of the key's base64.
        while let Some(start) = text.find("{key[") {
            let end = start + text[start..].find("]}").expect("a slice placeholder ends");
            let (from, to) = text[start + 5..end].split_once("..").expect("a range");
            let from = from.parse().unwrap_or(0);
            let to = to.parse().unwrap_or(key.len());
            text.replace_range(start..end + 2, &key[from..to]);
        }
        assert!(!text.contains('{'), "unknown placeholder in {line}");
        KeyFileCase {
            name: field("name"),
            text,
            line: v["line"].as_u64().expect("line") as usize,
            rule: field("rule"),
            says: field("says"),
        }
    };
    fixture.lines().filter(|l| !l.trim().is_empty()).map(case).collect()
}
