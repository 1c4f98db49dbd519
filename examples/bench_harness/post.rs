//! Sends AdmissionReviews to `provgate serve` and reports.
//!
//! Two shapes:
//! - steady (`--concurrency C`): C workers, each with its own keep-alive
//!   connection (as wrk's connections), take the next review until all are
//!   sent;
//! - burst (`--burst`): one connection per review is opened first (a GET
//!   of `/healthz` on each), then every review is released at once.
//!
//! With `--per-request`, `/metrics` is read around every review (use with
//! `--concurrency 1`): the registry requests each one caused.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::metrics::{Scrape, delta};

/// `post` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Server base URL, e.g. https://127.0.0.1:8443.
    #[arg(long)]
    base: String,
    /// CA certificate (PEM) of the server.
    #[arg(long)]
    ca: PathBuf,
    /// Reviews, one JSON document per line.
    #[arg(long)]
    bodies: PathBuf,
    /// First line to send (0-based).
    #[arg(long, default_value_t = 0)]
    from: usize,
    /// One past the last line to send (default: all).
    #[arg(long)]
    to: Option<usize>,
    /// Path and query to POST to.
    #[arg(long, default_value = "/validate?timeout=10s")]
    path: String,
    /// Connections (steady mode).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Open one connection per review, then send all at once.
    #[arg(long)]
    burst: bool,
    /// Read /metrics around every review and report each one's registry
    /// requests (use with --concurrency 1).
    #[arg(long)]
    per_request: bool,
    /// provgate's pid: report its VmRSS and CPU time afterwards.
    #[arg(long)]
    pid: Option<u32>,
    /// Fail unless every review is allowed.
    #[arg(long)]
    expect_allowed: bool,
}

fn client(ca: &[u8]) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca)?)
        .http1_only()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(60))
        .build()?)
}

async fn scrape(c: &reqwest::Client, base: &str) -> anyhow::Result<Scrape> {
    let text = c
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(Scrape::parse(&text))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Allowed,
    Denied,
    Error,
}

/// Latency, answer, and for an answer other than "allowed" what was said.
type Sent = (Duration, Answer, Option<String>);

async fn send(c: &reqwest::Client, url: &str, body: &str) -> Sent {
    let started = Instant::now();
    let result = async {
        let r = c
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await?;
        let status = r.status();
        let bytes = r.bytes().await?;
        anyhow::Ok((status, bytes))
    }
    .await;
    let elapsed = started.elapsed();
    match result {
        Ok((s, bytes)) if s.is_success() => {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            match v["response"]["allowed"].as_bool() {
                Some(true) => (elapsed, Answer::Allowed, None),
                Some(false) => (
                    elapsed,
                    Answer::Denied,
                    Some(v["response"]["status"]["message"].to_string()),
                ),
                // The no-op endpoint answers without a verdict.
                None if url.contains("/noop/") => (elapsed, Answer::Allowed, None),
                None => (elapsed, Answer::Error, Some(format!("{s}: {v}"))),
            }
        }
        Ok((s, bytes)) => (
            elapsed,
            Answer::Error,
            Some(format!("{s}: {}", String::from_utf8_lossy(&bytes))),
        ),
        Err(e) => (elapsed, Answer::Error, Some(format!("{e:#}"))),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// VmRSS (KiB) and utime+stime (clock ticks) of `pid`.
fn proc_stats(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("bad stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 here.
    let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok((rss, ticks))
}

/// Sends the reviews and prints the report.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let ca = std::fs::read(&args.ca).with_context(|| format!("read {}", args.ca.display()))?;
    let text = std::fs::read_to_string(&args.bodies)
        .with_context(|| format!("read {}", args.bodies.display()))?;
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let to = args.to.unwrap_or(all.len()).min(all.len());
    let bodies: Arc<Vec<String>> = Arc::new(
        all.get(args.from..to)
            .context("--from is past the end")?
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
    );
    drop(text);
    let url = format!("{}{}", args.base, args.path);
    let control = client(&ca)?;
    let before = scrape(&control, &args.base).await?;
    let cpu_before = args.pid.map(proc_stats).transpose()?;

    let mut latencies: Vec<f64> = Vec::with_capacity(bodies.len());
    let mut answers = [0usize; 3];
    let mut first_problem: Option<String> = None;
    let mut note = |a: Answer, why: Option<String>| {
        answers[a as usize] += 1;
        if first_problem.is_none() {
            first_problem = why;
        }
    };
    let mut per_request = Vec::new();
    let started;
    if args.burst {
        // One client (one connection) per review, opened before the burst.
        let mut clients = Vec::with_capacity(bodies.len());
        for _ in 0..bodies.len() {
            clients.push(client(&ca)?);
        }
        let warm = futures_util::future::join_all(clients.iter().map(|c| {
            let u = format!("{}/healthz", args.base);
            async move { c.get(u).send().await.map(|r| r.status()) }
        }))
        .await;
        if let Some(e) = warm.into_iter().find_map(Result::err) {
            anyhow::bail!("opening the burst's connections: {e}");
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(bodies.len()));
        let mut tasks = Vec::with_capacity(bodies.len());
        started = Instant::now();
        for (i, c) in clients.into_iter().enumerate() {
            let (barrier, bodies, url) = (barrier.clone(), bodies.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                send(&c, &url, &bodies[i]).await
            }));
        }
        for t in tasks {
            let (d, a, why) = t.await?;
            latencies.push(d.as_secs_f64() * 1e3);
            note(a, why);
        }
    } else if args.per_request {
        let c = client(&ca)?;
        started = Instant::now();
        for body in bodies.iter() {
            let b = scrape(&control, &args.base).await?;
            let (d, a, why) = send(&c, &url, body).await;
            let after = scrape(&control, &args.base).await?;
            latencies.push(d.as_secs_f64() * 1e3);
            note(a, why);
            let mut row = delta(&b, &after);
            row["ms"] = json!(d.as_secs_f64() * 1e3);
            row["answer"] = json!(format!("{a:?}"));
            per_request.push(row);
        }
    } else {
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        started = Instant::now();
        for _ in 0..args.concurrency.max(1) {
            let c = client(&ca)?;
            let (next, bodies, url) = (next.clone(), bodies.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else {
                        return out;
                    };
                    out.push(send(&c, &url, body).await);
                }
            }));
        }
        for t in tasks {
            for (d, a, why) in t.await? {
                latencies.push(d.as_secs_f64() * 1e3);
                note(a, why);
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = args.pid.map(proc_stats).transpose()?;
    let after = scrape(&control, &args.base).await?;
    latencies.sort_by(f64::total_cmp);
    let n = latencies.len();
    let mut report = json!({
        "reviews": n,
        "allowed": answers[Answer::Allowed as usize],
        "denied": answers[Answer::Denied as usize],
        "errors": answers[Answer::Error as usize],
        "seconds": seconds,
        "reviews_per_second": n as f64 / seconds,
        "latency_ms": {
            "p50": percentile(&latencies, 50.0),
            "p90": percentile(&latencies, 90.0),
            "p99": percentile(&latencies, 99.0),
            "max": latencies.last().copied().unwrap_or(0.0),
        },
        "metrics": delta(&before, &after),
        "first_problem": first_problem,
    });
    if let (Some((_, t0)), Some((_, t1))) = (cpu_before, cpu_after) {
        report["cpu_ticks"] = json!(t1.saturating_sub(t0));
    }
    if let Some((rss, _)) = cpu_after {
        report["rss_kib"] = json!(rss);
    }
    if args.per_request {
        report["per_request"] = Value::Array(per_request);
    }
    println!("{report}");
    if args.expect_allowed && answers[Answer::Allowed as usize] != n {
        anyhow::bail!(
            "{} of {n} reviews were not allowed ({} denied, {} errors); the first: {}",
            n - answers[Answer::Allowed as usize],
            answers[Answer::Denied as usize],
            answers[Answer::Error as usize],
            report["first_problem"]
        );
    }
    Ok(())
}
