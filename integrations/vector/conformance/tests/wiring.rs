//! `integrations/vector/vector.yaml`: the components, how they are wired, and that no key is in it.

use maskflow_vrl_conformance::{repo_root, test_key_text, vector_dir};
use serde_json::Value as Json;

fn config() -> (String, Json) {
    let text = std::fs::read_to_string(vector_dir().join("vector.yaml"))
        .expect("integrations/vector/vector.yaml");
    let yaml: serde_norway::Value = serde_norway::from_str(&text).expect("vector.yaml is YAML");
    (text, serde_json::to_value(yaml).expect("YAML maps to JSON"))
}

fn names(section: &Json) -> Vec<&str> {
    section.as_object().expect("a map of components").keys().map(String::as_str).collect()
}

#[test]
fn components_and_their_wiring() {
    let (_, c) = config();
    assert_eq!(names(&c["sources"]), ["sqs"]);
    let mut transforms = names(&c["transforms"]);
    transforms.sort();
    assert_eq!(transforms, ["maskflow", "rejected"]);
    let mut sinks = names(&c["sinks"]);
    sinks.sort();
    assert_eq!(sinks, ["user_logins", "user_logins_rejected"]);

    let sqs = &c["sources"]["sqs"];
    assert_eq!(sqs["type"], "aws_sqs");
    assert_eq!(sqs["queue_url"], "${MASKFLOW_QUEUE_URL}");
    assert_eq!(sqs["endpoint"], "${AWS_ENDPOINT_URL}");
    assert_eq!(sqs["region"], "${AWS_REGION}");
    // The program reads the body as .message, exactly as sent: one event per message.
    assert_eq!(sqs["decoding"]["codec"], "bytes");
    assert!(sqs.get("framing").is_none(), "the default message framing keeps the body whole");
    assert_ne!(sqs["delete_message"], false);
    // Acknowledgements belong on the sinks (the source option is deprecated).
    assert!(sqs.get("acknowledgements").is_none());
    // The VRL twin needs the legacy namespace (.message, .timestamp, .metadata.dropped).
    assert!(
        c.pointer("/schema/log_namespace").is_none_or(|v| v == false),
        "log_namespace must stay legacy"
    );
    assert!(sqs.get("log_namespace").is_none_or(|v| v == false));

    let maskflow = &c["transforms"]["maskflow"];
    assert_eq!(maskflow["type"], "remap");
    assert_eq!(maskflow["inputs"], serde_json::json!(["sqs"]));
    assert_eq!(maskflow["file"], "integrations/vector/maskflow.vrl");
    assert!(maskflow.get("source").is_none());
    assert_eq!(maskflow["drop_on_error"], true);
    assert_ne!(maskflow["drop_on_abort"], false, "a rejected message must not reach user_logins");
    assert_eq!(maskflow["reroute_dropped"], true);

    let rejected = &c["transforms"]["rejected"];
    assert_eq!(rejected["type"], "remap");
    assert_eq!(rejected["inputs"], serde_json::json!(["maskflow.dropped"]));
    assert_eq!(rejected["file"], "integrations/vector/rejected.vrl");
    // Its input still holds the clear body: an event it failed on must not be forwarded.
    assert_eq!(rejected["drop_on_error"], true);
    assert_ne!(rejected["drop_on_abort"], false);
    assert_ne!(rejected["reroute_dropped"], true);

    for (sink, input, table) in [
        ("user_logins", "maskflow", "user_logins"),
        ("user_logins_rejected", "rejected", "user_logins_rejected"),
    ] {
        let s = &c["sinks"][sink];
        assert_eq!(s["type"], "postgres", "{sink}");
        assert_eq!(s["inputs"], serde_json::json!([input]), "{sink}");
        assert_eq!(s["table"], table, "{sink}");
        assert_eq!(s["endpoint"], "${DATABASE_URL}", "{sink}");
        assert_eq!(s["acknowledgements"]["enabled"], true, "{sink}: end-to-end acknowledgements");
    }
    // Nothing else reads the dropped output or the raw source.
    for section in ["transforms", "sinks"] {
        for (name, component) in c[section].as_object().unwrap() {
            for input in component["inputs"].as_array().unwrap() {
                let input = input.as_str().unwrap();
                assert!(
                    (input == "sqs" && name == "maskflow")
                        || (input == "maskflow.dropped" && name == "rejected")
                        || input == "maskflow"
                        || input == "rejected",
                    "{section}.{name} reads {input}"
                );
            }
        }
    }
    assert_eq!(c["sinks"]["user_logins"]["inputs"], serde_json::json!(["maskflow"]));
}

#[test]
fn program_files_exist_relative_to_the_repository_root() {
    let (_, c) = config();
    for transform in ["maskflow", "rejected"] {
        let file = c["transforms"][transform]["file"].as_str().unwrap();
        assert!(
            repo_root().join(file).is_file(),
            "{file} (Vector resolves it from the working directory: run from the repository root)"
        );
    }
}

#[test]
fn no_key_material_in_the_config() {
    let (text, c) = config();
    // Not even interpolated: Vector would put the key into its in-memory config (and a VRL
    // `source:`); the programs read MASKFLOW_KEY at run time instead.
    assert!(
        !text.contains("${MASKFLOW_KEY"),
        "MASKFLOW_KEY must not be interpolated into the config"
    );
    assert!(!text.contains("$MASKFLOW_KEY"));
    let test_key = test_key_text();
    for line in test_key.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let b64 = line.split_once(':').map_or(line, |(_, b)| b);
        assert!(!text.contains(b64.trim()), "the test key is in vector.yaml");
    }
    // No long base64 run anywhere (a 64-byte key is 86-88 characters of it).
    fn walk(v: &Json, path: &str) {
        match v {
            Json::String(s) => {
                let longest = s
                    .split(|c: char| !(c.is_ascii_alphanumeric() || "+/=_-".contains(c)))
                    .map(str::len)
                    .max()
                    .unwrap_or(0);
                assert!(longest < 40, "{path}: looks like key material");
            }
            Json::Object(map) => map.iter().for_each(|(k, v)| walk(v, &format!("{path}.{k}"))),
            Json::Array(items) => {
                items.iter().enumerate().for_each(|(i, v)| walk(v, &format!("{path}[{i}]")))
            }
            _ => {}
        }
    }
    walk(&c, "");
    // And the programs take it from the environment, not from a literal.
    for file in ["maskflow.vrl", "rejected.vrl"] {
        let program = std::fs::read_to_string(vector_dir().join(file)).unwrap();
        assert!(program.contains(r#"get_env_var("MASKFLOW_KEY")"#), "{file}");
        let longest = program
            .split(|c: char| !(c.is_ascii_alphanumeric() || "+/=".contains(c)))
            .map(str::len)
            .max()
            .unwrap_or(0);
        assert!(longest < 40, "{file}: looks like key material");
    }
}

#[test]
fn tables_sql_is_the_hosts_ddl() {
    // integrations/vector/tables.sql must create what the host creates (host/src/sink/schema.rs), so
    // that both can feed one table.
    let host = std::fs::read_to_string(repo_root().join("host/src/sink/schema.rs"))
        .expect("host/src/sink/schema.rs");
    let constant = |name: &str| {
        let pattern = format!("const {name}: &str = \"");
        let start = host.find(&pattern).unwrap_or_else(|| panic!("{name} not found in the host"))
            + pattern.len();
        host[start..start + host[start..].find("\";").unwrap()].replace("{table}", "user_logins")
    };
    let squash = |s: &str| {
        s.split_whitespace().collect::<Vec<_>>().join(" ").replace("( ", "(").replace(" )", ")")
    };
    let sql = std::fs::read_to_string(vector_dir().join("tables.sql")).unwrap();
    let statements: Vec<String> = sql
        .lines()
        .filter(|l| !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .split(';')
        .map(squash)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        statements,
        [squash(&constant("USER_LOGINS_DDL")), squash(&constant("REJECTED_DDL"))]
    );
}
