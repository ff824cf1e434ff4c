//! `[server]`, `[ingest]`, `[smtp]`, `[status_page]` and `[[components]]`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Parser;
use crate::model::{
    Component, Ingest, LogFormat, Server, Smtp, SmtpSecurity, StatusLink, StatusPage, Tls, Watchdog,
};
use crate::reader::{Str, Table};
use crate::values::{check_email, check_hostname, check_http_url};

const SERVER_FIELDS: &[&str] = &[
    "listen",
    "public_url",
    "database",
    "tls",
    "log_format",
    "header_read_timeout",
    "idle_timeout",
    "max_connections",
];
const TLS_FIELDS: &[&str] = &["certificate", "private_key"];
const INGEST_FIELDS: &[&str] = &["queue_capacity", "max_batch"];
const SMTP_FIELDS: &[&str] = &[
    "host", "port", "from", "username", "password", "security", "ca_file",
];
const WATCHDOG_FIELDS: &[&str] = &["url", "every"];
const STATUS_PAGE_FIELDS: &[&str] = &[
    "title",
    "public_url",
    "history_days",
    "logo_url",
    "links",
    "time_zone",
];
const STATUS_LINK_FIELDS: &[&str] = &["label", "url"];
const COMPONENT_FIELDS: &[&str] = &["id", "name", "group", "description"];

pub(crate) const LISTEN_HELP: &str = "write an IP address and a port, e.g. \"127.0.0.1:8080\" \
     or \"0.0.0.0:8080\" (host names are not resolved)";
pub(crate) const DATABASE_HELP: &str = "write a postgres:// URL, or leave `database` out to use \
     SQLite in the data directory";

pub(crate) fn default_listen() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 8080))
}

/// Checks a public URL and drops its trailing slashes.
pub(crate) fn normalize_public_url(text: &str) -> Result<String, String> {
    check_http_url(text)?;
    Ok(text.trim_end_matches('/').to_owned())
}

pub(crate) fn check_database_url(text: &str) -> Result<(), String> {
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        Ok(())
    } else {
        Err("`database` must be a postgres:// or postgresql:// URL".to_owned())
    }
}

impl Parser<'_, '_> {
    pub(super) fn server(&mut self, root: &Table<'_, '_>) -> Server {
        let section = self.cx.table(root, "server", "[server]".to_owned());
        let Some(table) = section else {
            return Server {
                listen: default_listen(),
                public_url: format!("http://{}", default_listen()),
                database: None,
                tls: None,
                log_format: LogFormat::default(),
                header_read_timeout: Server::DEFAULT_HEADER_READ_TIMEOUT,
                idle_timeout: Server::DEFAULT_IDLE_TIMEOUT,
                max_connections: None,
            };
        };
        self.cx.check_fields(&table, SERVER_FIELDS);
        let listen = match self.cx.string(&table, "listen") {
            Some(value) => match value.text.parse::<SocketAddr>() {
                Ok(listen) => listen,
                Err(_) => {
                    self.cx.error(
                        value.at,
                        format!("invalid listen address `{}` in [server]", value.text),
                        Some(LISTEN_HELP.to_owned()),
                    );
                    default_listen()
                }
            },
            None => default_listen(),
        };
        let public_url = match self.cx.string(&table, "public_url") {
            Some(value) => match normalize_public_url(&value.text) {
                Ok(url) => url,
                Err(reason) => {
                    self.cx.error(
                        value.at,
                        format!("invalid `public_url` in [server]: {reason}"),
                        Some("write the URL people use to reach Tocsin, e.g. \"https://tocsin.acme.example\"".to_owned()),
                    );
                    String::new()
                }
            },
            None => format!("http://{listen}"),
        };
        let database = self.cx.secret(&table, "database").and_then(|(url, at)| {
            match check_database_url(url.expose()) {
                Ok(()) => Some(url),
                Err(reason) => {
                    self.cx.error(
                        at,
                        format!("invalid `database` in [server]: {reason}"),
                        Some(DATABASE_HELP.to_owned()),
                    );
                    None
                }
            }
        });
        let tls = self.tls(&table);
        let log_format = self
            .cx
            .choice(
                &table,
                "log_format",
                &[("pretty", LogFormat::Pretty), ("json", LogFormat::Json)],
            )
            .unwrap_or_default();
        let header_read_timeout = self
            .cx
            .duration(
                &table,
                "header_read_timeout",
                Duration::from_millis(100),
                Duration::from_secs(3600),
            )
            .unwrap_or(Server::DEFAULT_HEADER_READ_TIMEOUT);
        let idle_timeout = self
            .cx
            .duration(
                &table,
                "idle_timeout",
                Duration::from_millis(100),
                Duration::from_secs(86_400),
            )
            .unwrap_or(Server::DEFAULT_IDLE_TIMEOUT);
        let max_connections = self
            .cx
            .integer(&table, "max_connections", 1, 1_000_000)
            .map(|value| value as usize);
        Server {
            listen,
            public_url,
            database,
            tls,
            log_format,
            header_read_timeout,
            idle_timeout,
            max_connections,
        }
    }

    fn tls(&mut self, server: &Table<'_, '_>) -> Option<Tls> {
        let table = self.cx.table(server, "tls", "[server.tls]".to_owned())?;
        self.cx.check_fields(&table, TLS_FIELDS);
        let certificate =
            self.cx
                .required_string(&table, "certificate", "\"/etc/tocsin/cert.pem\"");
        let private_key = self
            .cx
            .required_string(&table, "private_key", "\"/etc/tocsin/key.pem\"");
        let certificate = certificate.and_then(|value| self.readable_file(value, "certificate"));
        let private_key = private_key.and_then(|value| self.readable_file(value, "private key"));
        Some(Tls {
            certificate: certificate?,
            private_key: private_key?,
        })
    }

    /// Resolves a path against the config file's directory and, when loading from a file,
    /// checks that it can be read.
    fn readable_file(&mut self, value: Str, what: &str) -> Option<PathBuf> {
        let path = PathBuf::from(&value.text);
        let Some(base_dir) = self.base_dir else {
            return Some(path);
        };
        let resolved = if path.is_absolute() {
            path
        } else {
            base_dir.join(path)
        };
        let problem = match std::fs::File::open(&resolved).and_then(|file| file.metadata()) {
            Ok(metadata) if metadata.is_file() => None,
            Ok(_) => Some("it is not a file".to_owned()),
            Err(error) => Some(error.to_string()),
        };
        match problem {
            None => Some(resolved),
            Some(problem) => {
                self.cx.error(
                    value.at,
                    format!(
                        "cannot read the TLS {what} `{}`: {problem}",
                        display(&resolved)
                    ),
                    Some(
                        "check the path and its permissions; a relative path is resolved \
                         against the directory of the config file"
                            .to_owned(),
                    ),
                );
                None
            }
        }
    }

    pub(super) fn ingest(&mut self, root: &Table<'_, '_>) -> Ingest {
        let defaults = Ingest::default();
        let Some(table) = self.cx.table(root, "ingest", "[ingest]".to_owned()) else {
            return defaults;
        };
        self.cx.check_fields(&table, INGEST_FIELDS);
        let queue_capacity = self
            .cx
            .integer(&table, "queue_capacity", 1, 1_000_000)
            .map_or(defaults.queue_capacity, |value| value as usize);
        let max_batch = self
            .cx
            .integer(&table, "max_batch", 1, 65_536)
            .map_or(defaults.max_batch, |value| value as usize);
        Ingest {
            queue_capacity,
            max_batch,
        }
    }

    pub(super) fn smtp(&mut self, root: &Table<'_, '_>) -> Option<Smtp> {
        let table = self.cx.table(root, "smtp", "[smtp]".to_owned())?;
        self.known.has_smtp = true;
        self.cx.check_fields(&table, SMTP_FIELDS);
        let host = self
            .cx
            .required_string(&table, "host", "\"smtp.acme.example\"")
            .and_then(|host| match check_hostname(&host.text) {
                Ok(()) => Some(host.text),
                Err(reason) => {
                    self.cx
                        .error(host.at, format!("invalid `host` in [smtp]: {reason}"), None);
                    None
                }
            });
        let port = self
            .cx
            .integer(&table, "port", 1, 65_535)
            .map_or(587, |port| port as u16);
        let from = self
            .cx
            .required_string(&table, "from", "\"Tocsin <tocsin@acme.example>\"")
            .and_then(|from| match check_email(&from.text, true) {
                Ok(()) => Some(from.text),
                Err(reason) => {
                    self.cx.error(
                        from.at,
                        format!("invalid `from` in [smtp]: {reason}"),
                        Some("write \"Name <address@domain>\" or \"address@domain\"".to_owned()),
                    );
                    None
                }
            });
        let username = self.cx.text(&table, "username").map(|value| value.text);
        let password = self.cx.secret(&table, "password").map(|(secret, _)| secret);
        if username.is_some() != password.is_some() {
            let (present, absent) = if username.is_some() {
                ("username", "password")
            } else {
                ("password", "username")
            };
            self.cx.error(
                table.key_at(present),
                format!("[smtp] has a `{present}` but no `{absent}`"),
                Some(format!("add `{absent}` (from an environment variable, e.g. \"${{SMTP_PASSWORD}}\") or remove `{present}`")),
            );
        }
        let security = self
            .cx
            .choice(
                &table,
                "security",
                &[
                    ("none", SmtpSecurity::None),
                    ("starttls", SmtpSecurity::StartTls),
                    ("tls", SmtpSecurity::Tls),
                ],
            )
            .unwrap_or(SmtpSecurity::default_for_port(port));
        let ca_file = self.cx.text(&table, "ca_file").and_then(|path| {
            if security == SmtpSecurity::None {
                self.cx.error(
                    path.at,
                    "`ca_file` in [smtp] only applies with `security = \"starttls\"` or `\"tls\"`"
                        .to_owned(),
                    Some("remove `ca_file`, or set `security`".to_owned()),
                );
                return None;
            }
            self.readable_file(path, "CA file of [smtp]")
        });
        Some(Smtp {
            host: host?,
            port,
            from: from?,
            username,
            password,
            security,
            ca_file,
        })
    }

    pub(super) fn watchdog(&mut self, root: &Table<'_, '_>) -> Option<Watchdog> {
        let table = self.cx.table(root, "watchdog", "[watchdog]".to_owned())?;
        self.cx.check_fields(&table, WATCHDOG_FIELDS);
        let url = self.required_url(&table, "url");
        let every = self
            .cx
            .duration(
                &table,
                "every",
                Duration::from_secs(1),
                Duration::from_secs(3600),
            )
            .unwrap_or(Watchdog::DEFAULT_EVERY);
        Some(Watchdog { url: url?, every })
    }

    pub(super) fn status_page(&mut self, root: &Table<'_, '_>) -> Option<StatusPage> {
        let table = self
            .cx
            .table(root, "status_page", "[status_page]".to_owned())?;
        self.cx.check_fields(&table, STATUS_PAGE_FIELDS);
        let title = self.cx.required_string(&table, "title", "\"Acme status\"");
        let public_url = self.cx.string(&table, "public_url").and_then(|value| {
            match normalize_public_url(&value.text) {
                Ok(url) => Some(url),
                Err(reason) => {
                    self.cx.error(
                        value.at,
                        format!("invalid `public_url` in [status_page]: {reason}"),
                        Some(
                            "write the URL readers use, e.g. \"https://status.acme.example\""
                                .to_owned(),
                        ),
                    );
                    None
                }
            }
        });
        let history_days = self
            .cx
            .integer(&table, "history_days", 1, 365)
            .map_or(90, |days| days as u32);
        let logo_url = self.cx.string(&table, "logo_url").and_then(|value| {
            match check_http_url(&value.text) {
                Ok(()) => Some(value.text),
                Err(reason) => {
                    self.cx.error(
                        value.at,
                        format!("invalid `logo_url` in [status_page]: {reason}"),
                        Some(
                            "write the image's full URL, e.g. \"https://acme.example/logo.svg\""
                                .to_owned(),
                        ),
                    );
                    None
                }
            }
        });
        let mut links = Vec::new();
        for link in self.cx.table_list(&table, "links", "link") {
            let label = format!("{} of [status_page]", link.label);
            let link = link.with_label(label);
            self.cx.check_fields(&link, STATUS_LINK_FIELDS);
            let label = self.cx.required_string(&link, "label", "\"Home\"");
            let url = self
                .cx
                .required_string(&link, "url", "\"https://acme.example\"");
            let url = url.and_then(|value| match check_http_url(&value.text) {
                Ok(()) => Some(value.text),
                Err(reason) => {
                    self.cx.error(
                        value.at,
                        format!("invalid `url` in {}: {reason}", link.label),
                        Some("write a full http:// or https:// URL".to_owned()),
                    );
                    None
                }
            });
            if let (Some(label), Some(url)) = (label, url) {
                links.push(StatusLink {
                    label: label.text,
                    url,
                });
            }
        }
        let time_zone = self
            .time_zone(&table, "time_zone")
            .unwrap_or_else(|| "UTC".to_owned());
        Some(StatusPage {
            title: title?.text,
            public_url,
            history_days,
            logo_url,
            links,
            time_zone,
        })
    }

    pub(super) fn components(&mut self, root: &Table<'_, '_>) -> Vec<Component> {
        let mut components = Vec::new();
        for entry in self.entries(root, "components") {
            let table = &entry.table;
            self.cx.check_fields(table, COMPONENT_FIELDS);
            let name = self.name_or_id(table, entry.id.as_ref());
            let group = self.cx.text(table, "group").map(|value| value.text);
            let description = self.cx.text(table, "description").map(|value| value.text);
            if let Some(id) = entry.id {
                components.push(Component {
                    id,
                    name,
                    group,
                    description,
                });
            }
        }
        components
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
