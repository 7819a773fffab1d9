//! A TCP proxy a test can break: `cut` resets every open connection (as a server
//! restart or a dropped route would), `stall` stops forwarding while leaving the
//! connections open (packets silently dropped), the fault a client must detect with
//! timeouts of its own; `slow` delays and throttles what it forwards (a slow link).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct State {
    stalled: AtomicBool,
    generation: AtomicU64,
    /// Slow link: delay per forwarded read, in milliseconds (0: none).
    delay_ms: AtomicU64,
    /// Slow link: bytes per second per direction and connection (0: unlimited).
    rate: AtomicU64,
    cut: tokio::sync::Notify,
}

/// A running proxy to `127.0.0.1:<upstream>`.
#[derive(Clone)]
pub struct Proxy {
    /// The port clients connect to.
    pub port: u16,
    state: Arc<State>,
}

impl Proxy {
    /// Starts forwarding a new local port to `upstream` (on the current runtime).
    pub async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let state = Arc::new(State::default());
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let gen = st.generation.load(Ordering::SeqCst);
                    for s in [&client, &server] {
                        let _ = s.set_nodelay(true);
                        #[allow(deprecated)]
                        let _ = s.set_linger(Some(Duration::ZERO));
                    }
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let a = tokio::spawn(pump(cr, sw, st.clone(), gen));
                    let b = tokio::spawn(pump(sr, cw, st.clone(), gen));
                    let _ = tokio::join!(a, b);
                });
            }
        });
        Proxy { port, state }
    }

    /// Resets every open connection (new ones are accepted).
    pub fn cut(&self) {
        self.state.generation.fetch_add(1, Ordering::SeqCst);
        self.state.cut.notify_waiters();
    }

    /// Stops (`true`) or resumes (`false`) forwarding, keeping connections open.
    pub fn stall(&self, on: bool) {
        self.state.stalled.store(on, Ordering::SeqCst);
    }

    /// Makes the link slow: every forwarded piece of data waits `delay` more, and
    /// each direction of each connection carries at most `bytes_per_sec` (0:
    /// unlimited). `slow(Duration::ZERO, 0)` restores full speed.
    pub fn slow(&self, delay: Duration, bytes_per_sec: u64) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
        self.state.rate.store(bytes_per_sec, Ordering::SeqCst);
    }
}

async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    st: Arc<State>,
    gen: u64,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            n = r.read(&mut buf) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = st.cut.notified() => return,
        };
        // while stalled, hold the data (the peer sees silence, not a close)
        while st.stalled.load(Ordering::SeqCst) {
            if st.generation.load(Ordering::SeqCst) != gen {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let delay = st.delay_ms.load(Ordering::SeqCst);
        let rate = st.rate.load(Ordering::SeqCst);
        let wait = Duration::from_millis(delay)
            + if rate > 0 {
                Duration::from_secs_f64(n as f64 / rate as f64)
            } else {
                Duration::ZERO
            };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        if st.generation.load(Ordering::SeqCst) != gen || w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Proxy;
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An echo server; returns its port.
    async fn echo() -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut b = vec![0u8; 65536];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        port
    }

    async fn round_trip(port: u16, bytes: usize) -> Duration {
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let t = Instant::now();
        c.write_all(&vec![7u8; bytes]).await.unwrap();
        let mut got = vec![0u8; bytes];
        c.read_exact(&mut got).await.unwrap();
        t.elapsed()
    }

    #[tokio::test]
    async fn a_slow_link_delays_and_throttles_until_restored() {
        let proxy = Proxy::start(echo().await).await;
        proxy.slow(Duration::from_millis(150), 0);
        // there and back: at least two delayed hops
        assert!(round_trip(proxy.port, 10).await >= Duration::from_millis(300));
        proxy.slow(Duration::ZERO, 20_000);
        // 10 kB each way at 20 kB/s: at least a second in all
        assert!(round_trip(proxy.port, 10_000).await >= Duration::from_millis(900));
        proxy.slow(Duration::ZERO, 0);
        assert!(round_trip(proxy.port, 10).await < Duration::from_millis(300));
    }
}
