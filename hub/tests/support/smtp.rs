//! A real SMTP listener on loopback for mail tests (A5, L6): a strict
//! little server that records every message it accepts.
#![allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use signet_hub::config::SmtpConfig;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One message the sink accepted.
#[derive(Debug, Clone)]
pub struct Received {
    /// The MAIL FROM path.
    pub from: String,
    /// The RCPT TO paths.
    pub to: Vec<String>,
    /// The DATA, dot-stuffing undone, without the final `.` line.
    pub data: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = self.data.split_once("\r\n\r\n")?;
        head.split("\r\n").find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    pub fn body(&self) -> String {
        self.data
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.trim_end().replace("\r\n", "\n"))
            .unwrap_or_default()
    }
}

/// A strict little SMTP server: greeting, EHLO/HELO, MAIL, RCPT, DATA, RSET,
/// NOOP, QUIT, in order, every line ending in CRLF. Recipients containing
/// `reject` get a permanent 550, and so does every recipient while
/// [`SmtpSink::refuse_all`] is on. Serves one connection at a time, each for
/// at most 10 s; stops when dropped.
pub struct SmtpSink {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    refusing: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        let refusing = Arc::new(AtomicBool::new(false));
        let refuse = Arc::clone(&refusing);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let session = serve_smtp(stream, Arc::clone(&sink), Arc::clone(&refuse));
                let _ = tokio::time::timeout(Duration::from_secs(10), session).await;
            }
        });
        Self {
            addr,
            received,
            refusing,
            task,
        }
    }

    /// While `on`, every recipient gets a permanent 550 (a mail server
    /// refusing for a while, so a message fails and is retried later).
    pub fn refuse_all(&self, on: bool) {
        self.refusing.store(on, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn serve_smtp(
    stream: tokio::net::TcpStream,
    sink: Arc<Mutex<Vec<Received>>>,
    refusing: Arc<AtomicBool>,
) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    if !reply(&mut write, "220 sink.test ESMTP ready\r\n").await {
        return;
    }
    let mut greeted = false;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    loop {
        let mut line = String::new();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let Some(command) = line.strip_suffix("\r\n") else {
            reply(&mut write, "500 5.5.2 lines must end with CRLF\r\n").await;
            return;
        };
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let answer = match verb.as_str() {
            "EHLO" if command.len() > 5 => {
                greeted = true;
                "250-sink.test greets you\r\n250-8BITMIME\r\n250 SIZE 10000000\r\n"
            }
            "HELO" if command.len() > 5 => {
                greeted = true;
                "250 sink.test\r\n"
            }
            "MAIL" if !greeted => "503 5.5.1 EHLO first\r\n",
            "MAIL" => match path_of(command, "MAIL FROM:") {
                Some(path) => {
                    from = Some(path);
                    to.clear();
                    "250 2.1.0 ok\r\n"
                }
                None => "501 5.5.4 syntax: MAIL FROM:<path>\r\n",
            },
            "RCPT" if from.is_none() => "503 5.5.1 MAIL first\r\n",
            "RCPT" => match path_of(command, "RCPT TO:") {
                Some(path) if path.contains("reject") => "550 5.1.1 no such user here\r\n",
                Some(_) if refusing.load(Ordering::SeqCst) => {
                    "550 5.7.1 refusing all mail for now\r\n"
                }
                Some(path) => {
                    to.push(path);
                    "250 2.1.5 ok\r\n"
                }
                None => "501 5.5.4 syntax: RCPT TO:<path>\r\n",
            },
            "DATA" if to.is_empty() => "503 5.5.1 RCPT first\r\n",
            "DATA" => {
                if !reply(&mut write, "354 end data with <CR><LF>.<CR><LF>\r\n").await {
                    return;
                }
                let mut data = String::new();
                loop {
                    let mut line = String::new();
                    match lines.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    if data.len() > 1024 * 1024 {
                        reply(&mut write, "552 5.3.4 too big\r\n").await;
                        return;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                sink.lock().unwrap().push(Received {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data,
                });
                "250 2.0.0 queued\r\n"
            }
            "RSET" => {
                from = None;
                to.clear();
                "250 2.0.0 reset\r\n"
            }
            "NOOP" => "250 2.0.0 ok\r\n",
            "QUIT" => {
                reply(&mut write, "221 2.0.0 bye\r\n").await;
                return;
            }
            _ => "500 5.5.2 command not recognized\r\n",
        };
        if !reply(&mut write, answer).await {
            return;
        }
    }
}

/// Writes `text`; false when the client has gone.
async fn reply(write: &mut tokio::net::tcp::OwnedWriteHalf, text: &str) -> bool {
    write.write_all(text.as_bytes()).await.is_ok()
}

/// The `<path>` after `prefix` (case-insensitive), ignoring parameters.
fn path_of(command: &str, prefix: &str) -> Option<String> {
    let head = command.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = command[prefix.len()..].trim_start();
    let inner = rest.strip_prefix('<')?;
    let (path, _params) = inner.split_once('>')?;
    Some(path.to_owned())
}

/// Hub SMTP settings that send to `addr` without TLS or login.
pub fn smtp_to(addr: SocketAddr) -> SmtpConfig {
    SmtpConfig {
        host: addr.ip().to_string(),
        port: addr.port(),
        from: "Signet <hub@example.test>".to_owned(),
        starttls: false,
        username: None,
        password: None,
    }
}
