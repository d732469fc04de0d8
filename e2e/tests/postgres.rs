//! The real PostgreSQL the data suites use (exchange, backups) starts from Debian's package on
//! loopback with password authentication, answers queries, and stops leaving nothing behind.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use gongshu_e2e::{
    harness::random_suffix,
    postgres::{Postgres, bin_dir},
    process::alive,
};

#[tokio::test]
async fn a_fresh_postgres_answers_queries_and_stops_cleanly() {
    let dir = std::env::temp_dir().join(format!("gongshu-pg-{}", random_suffix()));
    let pg = Postgres::start(&dir).await.expect("postgres starts");
    assert_eq!(pg.psql("postgres", "select 1").unwrap(), "1");
    pg.psql(
        "postgres",
        "create table households (citizen_id text primary key, name text); \
         insert into households values ('110101199001011234', 'Li Lei'), ('110101199202022345', 'Han Meimei')",
    )
    .unwrap();
    assert_eq!(
        pg.psql("postgres", "select count(*) from households")
            .unwrap(),
        "2"
    );
    // Password authentication: a wrong password is refused.
    let wrong = format!(
        "postgres://{}:wrong@127.0.0.1:{}/postgres",
        gongshu_e2e::postgres::SUPERUSER,
        pg.port()
    );
    let refused = std::process::Command::new(bin_dir().unwrap().join("psql"))
        .arg(wrong)
        .args(["-X", "-c", "select 1"])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "a wrong password is refused");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("password authentication failed"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let pid = pg.pid().unwrap();
    drop(pg);
    assert!(!alive(pid), "the server is gone after drop");
    let _ = std::fs::remove_dir_all(&dir);
}
