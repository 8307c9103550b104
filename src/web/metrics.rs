//! Prometheus metrics labelled by matched route (never the raw URI, which would leak ids and
//! grow without bound). Hand-rolled text format: a counter and a latency histogram per route.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let Ok(mut map) = self.series.lock() else {
            return;
        };
        let s = map
            .entry((method.to_string(), route.to_string(), status))
            .or_default();
        s.count += 1;
        s.sum += seconds;
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                s.buckets[i] += 1;
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, extra: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP kekeli_http_requests_total HTTP requests by matched route.\n");
        out.push_str("# TYPE kekeli_http_requests_total counter\n");
        let Ok(map) = self.series.lock() else {
            return out;
        };
        for ((m, r, st), s) in map.iter() {
            out.push_str(&format!(
                "kekeli_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{st}\"}} {}\n",
                s.count
            ));
        }
        out.push_str(
            "# HELP kekeli_http_request_duration_seconds Request latency by matched route.\n",
        );
        out.push_str("# TYPE kekeli_http_request_duration_seconds histogram\n");
        for ((m, r, st), s) in map.iter() {
            let labels = format!("method=\"{m}\",route=\"{r}\",status=\"{st}\"");
            for (i, le) in BUCKETS.iter().enumerate() {
                out.push_str(&format!(
                    "kekeli_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {}\n",
                    s.buckets[i]
                ));
            }
            out.push_str(&format!(
                "kekeli_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\n",
                s.count
            ));
            out.push_str(&format!(
                "kekeli_http_request_duration_seconds_sum{{{labels}}} {}\n",
                s.sum
            ));
            out.push_str(&format!(
                "kekeli_http_request_duration_seconds_count{{{labels}}} {}\n",
                s.count
            ));
        }
        for (name, help, value) in extra {
            // Prometheus spells the infinities +Inf and -Inf.
            let value = match *value {
                v if v == f64::INFINITY => "+Inf".to_string(),
                v if v == f64::NEG_INFINITY => "-Inf".to_string(),
                v => v.to_string(),
            };
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            ));
        }
        out
    }
}

/// Middleware: time the request, trace it (path without query: no tokens in logs), count it.
pub async fn track(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let resp = next.run(req).await;
    let elapsed = start.elapsed().as_secs_f64();
    let status = resp.status().as_u16();
    tracing::debug!(%method, %route, status, ms = elapsed * 1000.0, "request");
    state.metrics.observe(&method, &route, status, elapsed);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.observe("GET", "/classes/{id}", 200, 0.003);
        m.observe("GET", "/classes/{id}", 200, 0.2);
        let text = m.render(&[("kekeli_up", "Up.", 1.0)]);
        assert!(text.contains(
            "kekeli_http_requests_total{method=\"GET\",route=\"/classes/{id}\",status=\"200\"} 2"
        ));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("le=\"+Inf\"} 2"));
        assert!(text.contains("kekeli_up 1"));
    }
}
