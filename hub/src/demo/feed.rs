//! The demo's data feed: a tiny JSON endpoint on its own loopback
//! listener that the template's text zone is bound to, whose value changes
//! on every fetch (a counter and the time), so the screens show a live feed.
//!
//! Owns: that listener and its one route. Must not: know anything about
//! the hub — the agents fetch it like any third-party feed (D6).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::extract::State;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The JSON pointer of the value the template shows.
pub const FEED_POINTER: &str = "/message";

/// A running feed server.
pub struct FeedServer {
    /// The URL the template's feed binding names.
    pub url: String,
    /// Stops the server.
    stop: CancellationToken,
    /// The server task.
    task: JoinHandle<()>,
}

/// The document the feed serves: `{"fetches": N, "time": …, "message": …}`.
async fn feed_document(State(fetches): State<Arc<AtomicU64>>) -> Json<serde_json::Value> {
    let count = fetches.fetch_add(1, Ordering::Relaxed) + 1;
    let time = chrono::Utc::now().format("%H:%M:%S").to_string();
    Json(serde_json::json!({
        "fetches": count,
        "time": time,
        "message": format!("Live feed: update #{count} at {time} UTC"),
    }))
}

impl FeedServer {
    /// Starts the feed on a free loopback port.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/feed.json", listener.local_addr()?);
        let app = axum::Router::new()
            .route("/feed.json", axum::routing::get(feed_document))
            .with_state(Arc::new(AtomicU64::new(0)));
        let stop = CancellationToken::new();
        let stopped = stop.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::warn!(error = %e, "the demo feed server failed");
            }
        });
        Ok(Self { url, stop, task })
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// D6 (demo, O2): the feed answers JSON whose value at the pointer
    /// changes from one fetch to the next.
    #[tokio::test]
    async fn o2_the_demo_feed_changes_on_every_fetch() {
        let feed = match FeedServer::start().await {
            Ok(feed) => feed,
            Err(e) => panic!("{e}"),
        };
        let client = reqwest::Client::new();
        let mut values = Vec::new();
        for _ in 0..2 {
            let document: serde_json::Value = match client.get(&feed.url).send().await {
                Ok(response) => response.json().await.unwrap_or_default(),
                Err(e) => panic!("{e}"),
            };
            values.push(document.pointer(FEED_POINTER).cloned());
        }
        assert!(values[0].as_ref().is_some_and(serde_json::Value::is_string));
        assert_ne!(values[0], values[1]);
        feed.stop().await;
    }
}
