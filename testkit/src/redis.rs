//! A real `redis-server` for the tests of the shared rate limit: started on
//! a free port of 127.0.0.1 with nothing saved to disk, stopped when
//! dropped.
//!
//! [`SilentRedis`] is the other failure: a socket that accepts and never
//! answers, as a server that hangs or a network that drops every packet.
//!
//! The binary is `redis-server` on the `PATH`, or the one `REDIS_SERVER`
//! names. `scripts/test` installs it from the system's packages when it is
//! missing. A test that needs Redis and finds none fails, saying how to get
//! it: it is never skipped.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first `PING`.
const START_WITHIN: Duration = Duration::from_secs(20);

/// A `redis-server` of the test's own.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers.
    ///
    /// # Panics
    ///
    /// When no `redis-server` can be started: the message says how to
    /// install one.
    pub fn start() -> RedisServer {
        let port = free_port();
        RedisServer::start_on(port)
    }

    /// Starts a server on `port` (a server stopped with [`stop`](Self::stop)
    /// started again where the clients expect it).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_on(port: u16) -> RedisServer {
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        let child = Command::new(&binary)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {binary} ({e}): the shared rate limit's tests need a real Redis. \
                     Install it (Debian and Ubuntu: `apt-get install redis-server`; macOS: \
                     `brew install redis`) or name the binary in REDIS_SERVER; scripts/test installs it"
                )
            });
        let mut server = RedisServer {
            child: Some(child),
            port,
        };
        let started = Instant::now();
        while !server.answers() {
            if let Some(child) = server.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("{binary} on port {port} exited at start: {status}");
                }
            }
            assert!(
                started.elapsed() < START_WITHIN,
                "{binary} on port {port} did not answer within {START_WITHIN:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// The server's URL, `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server answers `PING` now.
    pub fn answers(&self) -> bool {
        self.command("PING").is_some_and(|line| line == "+PONG")
    }

    /// Sends one inline command and returns the first line of the answer.
    pub fn command(&self, command: &str) -> Option<String> {
        inline_command(SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)), command)
    }

    /// How many times the server ran a script (`EVAL` and `EVALSHA`) since
    /// it started: the round trips of the shared limit.
    pub fn scripts_run(&self) -> u64 {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            return 0;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        if stream.write_all(b"INFO commandstats\r\n").is_err() {
            return 0;
        }
        let mut reader = BufReader::new(stream);
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() {
            return 0;
        }
        let length: usize = header.trim_start_matches('$').trim().parse().unwrap_or(0);
        let mut body = vec![0u8; length];
        if std::io::Read::read_exact(&mut reader, &mut body).is_err() {
            return 0;
        }
        let text = String::from_utf8_lossy(&body);
        text.lines()
            .filter(|l| l.starts_with("cmdstat_eval:") || l.starts_with("cmdstat_evalsha:"))
            .filter_map(|l| {
                l.split([':', ','])
                    .find_map(|field| field.strip_prefix("calls="))
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .sum()
    }

    /// Stops the server (as a crash would: SIGKILL) and waits for it to end.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends one inline command to the server at `addr` and returns the first
/// line of the answer.
fn inline_command(addr: SocketAddr, command: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(format!("{command}\r\n").as_bytes()).ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    Some(line.trim_end().to_owned())
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(6390)
}

/// The Redis a test uses: the server `.ci/run` started for the whole run
/// (`REBOUND_REDIS_URL`), or, when that is not set, a server of the test's
/// own, stopped when this is dropped.
#[derive(Debug)]
pub struct SharedRedis {
    url: String,
    _own: Option<RedisServer>,
}

impl SharedRedis {
    /// The server to use.
    ///
    /// # Panics
    ///
    /// As [`RedisServer::start`], when a server must be started and cannot.
    pub fn get() -> SharedRedis {
        match std::env::var("REBOUND_REDIS_URL") {
            Ok(url) if !url.is_empty() => SharedRedis { url, _own: None },
            _ => {
                let server = RedisServer::start();
                SharedRedis {
                    url: server.url(),
                    _own: Some(server),
                }
            }
        }
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one inline command and returns the first line of the answer
    /// (`None` when the URL names no `host:port` or nothing answers).
    pub fn command(&self, command: &str) -> Option<String> {
        let rest = self.url.strip_prefix("redis://")?;
        let authority = rest.split('/').next()?;
        let authority = authority.rsplit('@').next()?;
        let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
            .ok()?
            .next()?;
        inline_command(addr, command)
    }
}

/// A socket on 127.0.0.1 that accepts connections, reads what comes and
/// never answers: a Redis that hangs. It counts the connections it took;
/// they are held until it is dropped.
#[derive(Debug)]
pub struct SilentRedis {
    port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl SilentRedis {
    /// Listens on a free port (in the current Tokio runtime).
    ///
    /// # Panics
    ///
    /// When no port of 127.0.0.1 can be bound.
    pub async fn start() -> SilentRedis {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("a bound address").port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let task = tokio::spawn({
            let accepted = std::sync::Arc::clone(&accepted);
            async move {
                let mut held = tokio::task::JoinSet::new();
                while let Ok((stream, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::Relaxed);
                    // Read and drop what the client sends, so that its
                    // writes never block: only answers are missing.
                    held.spawn(async move {
                        let mut buffer = [0u8; 4096];
                        while stream.readable().await.is_ok() {
                            match stream.try_read(&mut buffer) {
                                Ok(0) => break,
                                Ok(_) => {}
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                                Err(_) => break,
                            }
                        }
                    });
                }
            }
        });
        SilentRedis {
            port,
            accepted,
            task,
        }
    }

    /// Its URL, `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The connections it accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for SilentRedis {
    fn drop(&mut self) {
        self.task.abort();
    }
}
