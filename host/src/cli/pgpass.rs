//! `~/.pgpass` (or PGPASSFILE), as libpq reads it: `hostname:port:database:username:password`
//! lines, `*` matching anything, `\:` and `\\` escaped; ignored when group or others can read it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use tokio_postgres::config::Host;
use tracing::warn;

/// The password for the first host, port, database and user of `config`, if the file has one.
pub(crate) fn lookup(file: &Path, config: &tokio_postgres::Config) -> Option<String> {
    let meta = std::fs::metadata(file).ok()?;
    if meta.mode() & 0o077 != 0 {
        warn!(file = %file.display(), "ignoring the password file: group or others can read it (chmod 600 it)");
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        _ => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432).to_string();
    let user = config.get_user().unwrap_or_default();
    let dbname = config.get_dbname().unwrap_or(user);
    let wanted = [host.as_str(), &port, dbname, user];
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let fields = split_fields(line);
        let matches =
            fields.len() == 5 && fields.iter().zip(wanted).all(|(f, w)| f == "*" || f == w);
        matches.then(|| fields[4].clone())
    })
}

fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut().expect("one field").extend(chars.next()),
            ':' => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn first_matching_line_wins_and_a_readable_file_is_ignored() {
        let dir = std::env::temp_dir().join(format!("maskflow-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:*:no\ndb.example.com:*:app:svc:s\\:cret\n*:*:*:*:fallback\n",
        )
        .unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config: tokio_postgres::Config =
            "host=db.example.com user=svc dbname=app".parse().unwrap();
        assert_eq!(lookup(&file, &config).as_deref(), Some("s:cret"));
        let config: tokio_postgres::Config = "host=else user=x".parse().unwrap();
        assert_eq!(lookup(&file, &config).as_deref(), Some("fallback"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(lookup(&file, &config), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
