//! A TCP proxy a test can break: `cut` resets every open connection (as a server
//! restart or a dropped route would), `stall` stops forwarding while leaving the
//! connections open (packets silently dropped), the fault a client must detect with
//! timeouts of its own.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct State {
    stalled: AtomicBool,
    generation: AtomicU64,
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
        if st.generation.load(Ordering::SeqCst) != gen || w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
