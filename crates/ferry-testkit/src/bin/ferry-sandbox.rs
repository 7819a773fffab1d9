//! Starts (or finds) the throwaway PostgreSQL and MariaDB servers the tests use and
//! prints their admin URLs as shell assignments, for the demo and benchmarks:
//! `eval "$(cargo run -q -p ferry-testkit --bin ferry-sandbox)"`.
//!
//! `ferry-sandbox stop` stops them (and any private server a failed test left
//! running); `ferry-sandbox stop --clean` also deletes their data, freeing the disk.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["start"] => {
            let pg = ferry_testkit::postgres();
            let my = ferry_testkit::mariadb();
            println!("FERRY_PG_URL={}", pg.url_for("postgres"));
            println!("FERRY_MYSQL_URL={}", my.url_for(""));
            println!("FERRY_PG_PORT={}", pg.port);
            println!("FERRY_MYSQL_PORT={}", my.port);
        }
        ["stop"] => ferry_testkit::stop_shared(false),
        ["stop", "--clean"] => ferry_testkit::stop_shared(true),
        _ => {
            eprintln!("usage: ferry-sandbox [start | stop [--clean]]");
            std::process::exit(2);
        }
    }
}
