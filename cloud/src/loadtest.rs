//! A load-test client for `/invocations`: real questions, a fixed number of requests from N
//! concurrent connections, latency percentiles, throughput, errors by cause, and the cost per
//! million queries at an instance's hourly price (the reference recipe's table).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// What to send and how hard.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The `/invocations` URL.
    pub url: String,
    pub requests: usize,
    pub concurrency: usize,
    /// Untimed requests sent first (one connection).
    pub warmup: usize,
    /// Give up on one request after this long (counted as an error).
    pub timeout: Duration,
}

/// The outcome of a load test; latencies in milliseconds over successful requests.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub url: String,
    pub requests: usize,
    pub concurrency: usize,
    pub ok: usize,
    /// Failed requests by cause (`503`, `timeout`, `connect`, ...).
    pub errors: BTreeMap<String, usize>,
    pub seconds: f64,
    pub queries_per_second: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
}

/// The `p`-th percentile (0..=100) of sorted values, nearest rank; 0 when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Dollars per million queries for an instance at `price_per_hour` serving `qps` queries/s.
pub fn cost_per_million(price_per_hour: f64, qps: f64) -> f64 {
    if qps <= 0.0 {
        return f64::INFINITY;
    }
    price_per_hour / 3600.0 / qps * 1e6
}

/// Sends `options.requests` POSTs of `bodies` (cycled) to the URL and measures them.
/// `progress(done)` is called as requests finish.
pub async fn run(
    options: &LoadOptions,
    bodies: Arc<Vec<String>>,
    progress: Arc<dyn Fn(usize) + Send + Sync>,
) -> Result<Report, String> {
    if bodies.is_empty() {
        return Err("no request bodies".into());
    }
    if options.concurrency == 0 || options.requests == 0 {
        return Err("requests and concurrency must be at least 1".into());
    }
    let client = reqwest::Client::builder()
        .timeout(options.timeout)
        .pool_max_idle_per_host(options.concurrency)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    for i in 0..options.warmup {
        send(&client, &options.url, &bodies[i % bodies.len()])
            .await
            .map_err(|cause| format!("warm-up request to {} failed: {cause}", options.url))?;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(options.requests)));
    let errors = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..options.concurrency.min(options.requests) {
        let (client, url, bodies) = (client.clone(), options.url.clone(), bodies.clone());
        let (next, done, latencies, errors, progress) = (
            next.clone(),
            done.clone(),
            latencies.clone(),
            errors.clone(),
            progress.clone(),
        );
        let total = options.requests;
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total {
                    break;
                }
                let sent = Instant::now();
                match send(&client, &url, &bodies[i % bodies.len()]).await {
                    Ok(()) => {
                        if let Ok(mut l) = latencies.lock() {
                            l.push(sent.elapsed().as_secs_f64() * 1e3);
                        }
                    }
                    Err(cause) => {
                        if let Ok(mut e) = errors.lock() {
                            *e.entry(cause).or_default() += 1;
                        }
                    }
                }
                progress(done.fetch_add(1, Ordering::SeqCst) + 1);
            }
        }));
    }
    for w in workers {
        w.await.map_err(|e| format!("load worker failed: {e}"))?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut sorted = latencies.lock().map_err(|_| "latency list poisoned")?.clone();
    sorted.sort_by(f64::total_cmp);
    let errors = errors.lock().map_err(|_| "error list poisoned")?.clone();
    let ok = sorted.len();
    Ok(Report {
        url: options.url.clone(),
        requests: options.requests,
        concurrency: options.concurrency,
        ok,
        errors,
        seconds,
        queries_per_second: ok as f64 / seconds.max(1e-9),
        p50_ms: percentile(&sorted, 50.0),
        p90_ms: percentile(&sorted, 90.0),
        p99_ms: percentile(&sorted, 99.0),
        mean_ms: if ok == 0 {
            0.0
        } else {
            sorted.iter().sum::<f64>() / ok as f64
        },
    })
}

/// One request; `Err` names the cause (the HTTP status, `timeout` or `connect`).
async fn send(client: &reqwest::Client, url: &str, body: &str) -> Result<(), String> {
    let response = client
        .post(url)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                "timeout".to_string()
            } else if e.is_connect() {
                "connect".to_string()
            } else {
                "transport".to_string()
            }
        })?;
    let status = response.status();
    // Read the whole body: the request is only done when the answer has arrived.
    let _ = response.bytes().await.map_err(|_| "transport".to_string())?;
    if status.is_success() {
        Ok(())
    } else {
        Err(status.as_u16().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_cost() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 90.0), 90.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 50.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        // $0.34/h at 10 queries/s: 36,000 queries per $0.34 -> $9.44 per million.
        assert!((cost_per_million(0.34, 10.0) - 9.444_444).abs() < 1e-5);
        assert!(cost_per_million(1.0, 0.0).is_infinite());
    }
}
