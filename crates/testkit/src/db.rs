//! A test's own hands on a server's database, for what no API call does: move a row's time
//! back (to age a conversation past its retention), and read every row of every table (to show
//! that an erasure left nothing behind).

use sqlx::{AnyConnection, Connection as _, Row as _};

async fn connect(database_url: &str) -> AnyConnection {
    sqlx::any::install_default_drivers();
    let mut c = AnyConnection::connect(database_url)
        .await
        .expect("connect to the test database");
    if database_url.starts_with("sqlite:") {
        // The server's writer may hold the database for a moment.
        sqlx::raw_sql("PRAGMA busy_timeout = 10000;")
            .execute(&mut c)
            .await
            .expect("busy_timeout");
    }
    c
}

/// Run one statement (the same SQL on both backends); the rows it changed.
pub async fn execute(database_url: &str, sql: &str) -> u64 {
    let mut c = connect(database_url).await;
    let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut c)
        .await
        .expect("test SQL");
    let _ = c.close().await;
    done.rows_affected()
}

/// Every row of every table of the schema (migration bookkeeping aside), each as
/// `(table, its columns' values as text joined by '|')`.
pub async fn every_row(database_url: &str) -> Vec<(String, String)> {
    let columns = crate::server::schema_columns(database_url).await;
    let mut tables: Vec<(String, Vec<String>)> = Vec::new();
    for (t, c) in columns {
        match tables.last_mut() {
            Some((last, cols)) if *last == t => cols.push(c),
            _ => tables.push((t, vec![c])),
        }
    }
    assert!(
        tables.iter().any(|(t, _)| t == "contacts"),
        "the schema lists no contacts table"
    );
    let mut c = connect(database_url).await;
    let mut out = Vec::new();
    for (table, cols) in tables {
        let text = cols
            .iter()
            .map(|col| format!("COALESCE(CAST(\"{col}\" AS TEXT), '')"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        let sql = format!("SELECT {text} AS r FROM \"{table}\"");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut c)
            .await
            .expect("read a table");
        for r in rows {
            out.push((
                table.clone(),
                r.try_get::<String, _>("r").expect("row text"),
            ));
        }
    }
    let _ = c.close().await;
    out
}

/// The one BIGINT a query answers (e.g. a `COUNT(*)`).
pub async fn count(database_url: &str, sql: &str) -> i64 {
    let mut c = connect(database_url).await;
    let n: i64 = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut c)
        .await
        .expect("test query")
        .try_get(0)
        .expect("a BIGINT");
    let _ = c.close().await;
    n
}
