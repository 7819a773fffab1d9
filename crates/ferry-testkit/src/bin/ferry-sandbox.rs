//! Starts (or finds) the throwaway PostgreSQL and MariaDB servers the tests use and
//! prints their admin URLs as shell assignments, for the demo and benchmarks:
//! `eval "$(cargo run -q -p ferry-testkit --bin ferry-sandbox)"`.

fn main() {
    let pg = ferry_testkit::postgres();
    let my = ferry_testkit::mariadb();
    println!("FERRY_PG_URL={}", pg.url_for("postgres"));
    println!("FERRY_MYSQL_URL={}", my.url_for(""));
    println!("FERRY_PG_PORT={}", pg.port);
    println!("FERRY_MYSQL_PORT={}", my.port);
}
