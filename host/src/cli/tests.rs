//! One parse per command, as users write them: options of a command are accepted before or
//! after its subcommand (`maskflow keys retire k1 --key-file k.key`), and every command's
//! documented form parses into the config its flags say.

use std::path::PathBuf;

use clap::Parser;

use super::keys::KeysAction;
use super::{Cli, Command};

fn parse(args: &[&str]) -> Command {
    let argv = std::iter::once("maskflow").chain(args.iter().copied());
    match Cli::try_parse_from(argv) {
        Ok(cli) => cli.command,
        Err(e) => panic!("`maskflow {}` does not parse: {e}", args.join(" ")),
    }
}

#[test]
fn options_of_keys_go_before_or_after_its_subcommand() {
    let url = "postgres://maskflow@db.example.com/app";
    let after = [
        "keys",
        "retire",
        "k1",
        "--key-file",
        "k.key",
        "--database-url",
        url,
        "--mapping",
        "m.json",
    ];
    let before = [
        "keys",
        "--key-file",
        "k.key",
        "--database-url",
        url,
        "--mapping",
        "m.json",
        "retire",
        "k1",
    ];
    for args in [&after[..], &before[..]] {
        let Command::Keys(keys) = parse(args) else { panic!("{args:?}") };
        assert!(matches!(&keys.action, Some(KeysAction::Retire { id }) if id == "k1"), "{args:?}");
        assert_eq!(keys.key.key_file, Some(PathBuf::from("k.key")), "{args:?}");
        assert_eq!(keys.postgres.database_url.as_deref(), Some(url), "{args:?}");
        assert_eq!(keys.mapping, Some(PathBuf::from("m.json")), "{args:?}");
    }
    let Command::Keys(list) = parse(&["keys", "--table", "logins"]) else { panic!() };
    assert!(list.action.is_none());
    assert_eq!(list.postgres.table, "logins");
}

#[test]
fn every_command_parses_its_documented_form() {
    let Command::Run(run) = parse(&["run", "--drain", "--concurrency", "4", "--key-file", "k.key"])
    else {
        panic!()
    };
    assert!(run.drain);
    assert_eq!((run.concurrency, run.module.key.key_file), (4, Some(PathBuf::from("k.key"))));
    let Command::Keygen(keygen) = parse(&["keygen", "--out", "maskflow.key", "--id", "k2"]) else {
        panic!()
    };
    assert_eq!((keygen.out, keygen.id.as_str()), (Some(PathBuf::from("maskflow.key")), "k2"));
    let Command::Unmask(unmask) = parse(&["unmask", "--output", "json", "k1.AAAA", "k1.BBBB"])
    else {
        panic!()
    };
    assert_eq!(unmask.values, ["k1.AAAA", "k1.BBBB"]);
    let Command::Mask(mask) = parse(&["mask", "--column", "ip", "--all-keys", "203.0.113.7"])
    else {
        panic!()
    };
    assert_eq!((mask.column.as_str(), mask.all_keys), ("ip", true));
    let Command::Rekey(rekey) = parse(&["rekey", "--to", "k2", "--from", "k1", "--dry-run"]) else {
        panic!()
    };
    assert_eq!(
        (rekey.to.as_str(), rekey.from.as_slice(), rekey.dry_run),
        ("k2", &["k1".to_owned()][..], true)
    );
    let Command::Transform(transform) =
        parse(&["transform", "--rejects", "r.ndjson", "--sent-timestamp-field", "sent_at"])
    else {
        panic!()
    };
    assert_eq!(transform.sent_timestamp_field.as_deref(), Some("sent_at"));
    let Command::Prune(prune) = parse(&["prune", "--older-than", "14d"]) else { panic!() };
    assert_eq!(prune.older_than, std::time::Duration::from_secs(14 * 86_400));
    assert!(matches!(parse(&["completions", "bash"]), Command::Completions { .. }));
    assert!(matches!(parse(&["man"]), Command::Man));
    let Command::Send(send) = parse(&["send", "--generate", "100", "--print"]) else { panic!() };
    assert_eq!((send.generate, send.print), (Some(100), true));
}

#[test]
fn rejections_and_replay_parse_their_documented_forms() {
    let Command::Rejections(list) =
        parse(&["rejections", "--reason", "missing_field", "--since", "36h", "--limit", "20"])
    else {
        panic!()
    };
    assert_eq!(
        (list.selection.reason.as_slice(), list.limit),
        (&["missing_field".into()][..], Some(20))
    );
    assert!(list.selection.since.is_some() && list.selection.until.is_none());
    let args = [
        "replay",
        "--reason",
        "missing_field",
        "--reason",
        "sink_refused",
        "--since",
        "2026-12-01",
        "--until",
        "2026-12-02T00:00:00Z",
        "--mapping",
        "m.json",
        "--dry-run",
        "--key-file",
        "k.key",
    ];
    let Command::Replay(replay) = parse(&args) else { panic!() };
    assert_eq!(replay.selection.reason, ["missing_field", "sink_refused"]);
    assert_eq!(replay.module.mapping, Some(PathBuf::from("m.json")));
    assert_eq!(replay.module.key.key_file, Some(PathBuf::from("k.key")));
    assert!(replay.dry_run);
    let unknown = parse(&["replay", "--reason", "missing_fields"]);
    let Command::Replay(unknown) = unknown else { panic!() };
    let error = unknown.selection.into_selection().unwrap_err();
    assert_eq!(error.kind(), crate::kind::Kind::Usage, "{error}");
    assert!(Cli::try_parse_from(["maskflow", "replay", "--since", "last week"]).is_err());
}

#[test]
fn a_misplaced_or_unknown_flag_is_refused() {
    let argv = ["maskflow", "keygen", "--database-url", "postgres://x/db"];
    assert!(Cli::try_parse_from(argv).is_err(), "keygen takes no database");
    assert!(Cli::try_parse_from(["maskflow", "run", "--no-such-flag"]).is_err());
}

#[test]
fn key_sources_parse_on_every_key_command_and_two_sources_are_refused() {
    use crate::error::Kind;
    use crate::keys::SourceSpec;
    let secret = "aws-secretsmanager:maskflow/key:AWSPREVIOUS";
    let Command::Keys(keys) = parse(&["keys", "retire", "k1", "--key-source", secret]) else {
        panic!()
    };
    let expected = SourceSpec::SecretsManager {
        secret_id: "maskflow/key".into(),
        stage: Some("AWSPREVIOUS".into()),
    };
    assert_eq!(keys.key.config().unwrap().source, expected);
    let Command::Transform(transform) = parse(&["transform", "--key-source", "env:MY_KEYS"]) else {
        panic!()
    };
    assert_eq!(transform.module.key.config().unwrap().source, SourceSpec::Env("MY_KEYS".into()));
    let Command::Run(run) = parse(&["run", "--key-file", "k.key", "--startup-timeout", "7"]) else {
        panic!()
    };
    let config = run.module.key.config().unwrap();
    assert_eq!(config.source, SourceSpec::File("k.key".into()));
    assert_eq!(config.budget, std::time::Duration::from_secs(7));
    let both = ["mask", "--column", "ip", "--key-source", secret, "--key-file", "k.key"];
    let Command::Mask(mask) = parse(&both) else { panic!() };
    assert_eq!(mask.key.config().unwrap_err().kind(), Kind::Usage, "which one was meant?");
    let Command::Unmask(unmask) = parse(&["unmask", "--key-source", "s3:bucket/key"]) else {
        panic!()
    };
    assert_eq!(unmask.key.config().unwrap_err().kind(), Kind::Usage);
}
