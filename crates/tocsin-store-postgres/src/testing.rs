//! For tests of Tocsin and its users: a fresh, uniquely named PostgreSQL database per test,
//! dropped when the test ends.

use sqlx::{Connection, Executor, PgConnection};

/// The server the tests create their databases on, e.g.
/// `postgres://postgres@127.0.0.1:5432/test`; the tests are skipped when it is not set, unless
/// [`REQUIRE_VARIABLE`] says they must run.
pub const DATABASE_URL_VARIABLE: &str = "TOCSIN_TEST_DATABASE_URL";

/// Set to `1` (CI does), every PostgreSQL test fails instead of being skipped when
/// [`DATABASE_URL_VARIABLE`] is unset; a server that does not answer fails them either way.
pub const REQUIRE_VARIABLE: &str = "TOCSIN_REQUIRE_POSTGRES";

/// The one place that decides whether a PostgreSQL test runs: the server URL, or `None` (and a
/// "skipped" line) when none is configured and none is required. Panics, failing the test,
/// when [`REQUIRE_VARIABLE`] is `1` and no URL is set.
pub fn server_url_or_skip() -> Option<String> {
    let required = std::env::var(REQUIRE_VARIABLE).is_ok_and(|value| value == "1");
    server_url_decision(std::env::var(DATABASE_URL_VARIABLE).ok(), required)
}

fn server_url_decision(url: Option<String>, required: bool) -> Option<String> {
    match url.filter(|url| !url.trim().is_empty()) {
        Some(url) => Some(url),
        None if required => panic!(
            "{REQUIRE_VARIABLE}=1 but {DATABASE_URL_VARIABLE} is not set: set it to a server the \
             tests may create databases on, e.g. postgres://postgres@127.0.0.1:5432/test"
        ),
        None => {
            println!(
                "skipped: {DATABASE_URL_VARIABLE} is not set (set {REQUIRE_VARIABLE}=1 to fail instead)"
            );
            None
        }
    }
}

/// A database created for one test. Dropping it drops the database, closing whatever
/// connections are still open to it.
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates the database, or returns `None` (saying so) when no server is configured and
    /// none is required ([`server_url_or_skip`]). A server that does not answer fails the test.
    pub async fn create() -> Option<TestDatabase> {
        let admin_url = server_url_or_skip()?;
        let name = format!("tocsin_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "cannot connect to the PostgreSQL server in {DATABASE_URL_VARIABLE}: {error} \
                     (is it running? unset the variable to skip the PostgreSQL tests)"
                )
            });
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the test database");
        admin.close().await.expect("close the admin connection");
        let url = with_database(&admin_url, &name);
        Some(TestDatabase {
            admin_url,
            name,
            url,
        })
    }

    /// The URL of the test database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A plain connection to the test database, to change it behind the store's back.
    pub async fn connection(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .expect("connect to the test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop may run inside a runtime (where blocking on one is not allowed) or while a test
        // panics, so the database is dropped from a thread with its own runtime, and waited for.
        let admin_url = self.admin_url.clone();
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|error| error.to_string())?;
                admin
                    .execute(statement.as_str())
                    .await
                    .map_err(|error| error.to_string())?;
                admin.close().await.map_err(|error| error.to_string())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("cannot drop test database {}: {error}", self.name),
            Err(_) => eprintln!(
                "cannot drop test database {}: the thread panicked",
                self.name
            ),
        }
    }
}

/// `url` with its database name replaced by `name`, keeping credentials and parameters.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |index| authority_start + index);
    match query {
        Some(query) => format!("{}/{name}?{query}", &base[..path_start]),
        None => format!("{}/{name}", &base[..path_start]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_server_skips_unless_required() {
        assert_eq!(server_url_decision(None, false), None);
        assert_eq!(server_url_decision(Some(" ".to_owned()), false), None);
        assert_eq!(
            server_url_decision(Some("postgres://db/test".to_owned()), true).as_deref(),
            Some("postgres://db/test")
        );
        let required = std::panic::catch_unwind(|| server_url_decision(None, true));
        let message = required.expect_err("a required server that is missing fails");
        let message = message
            .downcast_ref::<String>()
            .expect("a formatted panic message");
        assert!(message.contains(REQUIRE_VARIABLE), "{message}");
        assert!(message.contains(DATABASE_URL_VARIABLE), "{message}");
    }
}
