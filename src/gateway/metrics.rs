//! `/metrics`: what `fak serve` has done, for Prometheus.
//!
//! Names follow Prometheus's conventions (`fak_` prefix, base units, `_total` on counters,
//! `_seconds` on durations). Labels take values from closed sets only — routes, status codes,
//! verdicts, the reason vocabulary, the policy's rule ids — except the tool name, which a client
//! chooses: at most `MAX_TOOLS` distinct tools get their own label, the rest count as `other`,
//! so a client inventing tool names cannot grow the page without bound.
//!
//! The page is the Prometheus text format (0.0.4), or OpenMetrics when the scraper's `Accept`
//! asks for it.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use rustc_hash::FxHashSet;

/// Distinct tool names that get a label of their own.
pub const MAX_TOOLS: usize = 256;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    /// `call` (a tool call decided) or `result` (a tool result admitted).
    side: &'static str,
    verdict: &'static str,
    reason: String,
    tool: String,
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Every metric `fak serve` exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RouteStatus, Counter>,
    request_seconds: Family<RouteLabel, Histogram>,
    in_flight: Gauge,
    decisions: Family<DecisionLabels, Counter>,
    decide_seconds: Histogram,
    admit_seconds: Histogram,
    upstream_seconds: Histogram,
    quarantines: Family<ReasonLabel, Counter>,
    taint_raises: Counter,
    reloads: Family<OutcomeLabel, Counter>,
    tools: Mutex<FxHashSet<String>>,
}

/// Which side of the model a decision was on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Call,
    Result,
}

fn histogram(start: f64, n: u16) -> Histogram {
    Histogram::new(exponential_buckets(start, 2.0, n))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("fak");
        let requests = Family::<RouteStatus, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by route and status", requests.clone());
        // 100 µs to about 27 minutes: a whole request may be a long model answer.
        let request_seconds = Family::<RouteLabel, Histogram>::new_with_constructor(|| histogram(1e-4, 24));
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its answer's end, by route",
            request_seconds.clone(),
        );
        let in_flight = Gauge::default();
        registry.register("http_requests_in_flight", "HTTP requests being answered", in_flight.clone());
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Tool calls decided and tool results admitted, by side, verdict, reason, tool and rule",
            decisions.clone(),
        );
        // 1 µs to about 16 ms.
        let decide_seconds = histogram(1e-6, 15);
        registry.register("decide_duration_seconds", "Time to decide one tool call", decide_seconds.clone());
        // 1 µs to about 1 s: a large result's detectors, and its record's disk flush.
        let admit_seconds = histogram(1e-6, 21);
        registry.register(
            "admit_duration_seconds",
            "Time to admit one tool result, its record written",
            admit_seconds.clone(),
        );
        // 1 ms to about 16 minutes.
        let upstream_seconds = histogram(1e-3, 21);
        registry.register(
            "upstream_duration_seconds",
            "Time from forwarding a request upstream to its answer's head (status and headers)",
            upstream_seconds.clone(),
        );
        let quarantines = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "quarantines",
            "Tool results paged out of the model's context, by reason",
            quarantines.clone(),
        );
        let taint_raises = Counter::default();
        registry.register("taint_raises", "Admissions that raised their trace's taint", taint_raises.clone());
        let reloads = Family::<OutcomeLabel, Counter>::default();
        registry.register("policy_reloads", "Floor reloads, by outcome (ok, refused)", reloads.clone());
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        registry.register("build_info", "The fak build serving, as labels; always 1", build);
        Metrics {
            registry,
            requests,
            request_seconds,
            in_flight,
            decisions,
            decide_seconds,
            admit_seconds,
            upstream_seconds,
            quarantines,
            taint_raises,
            reloads,
            tools: Mutex::new(FxHashSet::default()),
        }
    }

    /// The label a tool name is counted under.
    fn tool_label(&self, tool: &str) -> String {
        let Ok(mut seen) = self.tools.lock() else { return "other".to_string() };
        if seen.contains(tool) {
            return tool.to_string();
        }
        if seen.len() < MAX_TOOLS && tool.len() <= 128 {
            seen.insert(tool.to_string());
            return tool.to_string();
        }
        "other".to_string()
    }

    /// A request began: the returned guard counts it in flight until it is dropped.
    pub fn begin(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    /// A request ended.
    pub fn request(&self, route: &'static str, status: u16, took: Duration) {
        self.requests.get_or_create(&RouteStatus { route, status }).inc();
        self.request_seconds.get_or_create(&RouteLabel { route }).observe(took.as_secs_f64());
    }

    /// One decision or admission.
    pub fn decision(
        &self,
        side: Side,
        tool: &str,
        verdict: &'static str,
        reason: &str,
        rule: &str,
        took: Option<Duration>,
    ) {
        let labels = DecisionLabels {
            side: match side {
                Side::Call => "call",
                Side::Result => "result",
            },
            verdict,
            reason: reason.to_string(),
            tool: self.tool_label(tool),
            rule: rule.to_string(),
        };
        self.decisions.get_or_create(&labels).inc();
        if let Some(t) = took {
            match side {
                Side::Call => self.decide_seconds.observe(t.as_secs_f64()),
                Side::Result => self.admit_seconds.observe(t.as_secs_f64()),
            }
        }
        if side == Side::Result && verdict == "QUARANTINE" {
            self.quarantines.get_or_create(&ReasonLabel { reason: reason.to_string() }).inc();
        }
    }

    pub fn taint_raised(&self) {
        self.taint_raises.inc();
    }

    pub fn upstream(&self, took: Duration) {
        self.upstream_seconds.observe(took.as_secs_f64());
    }

    pub fn reload(&self, ok: bool) {
        self.reloads.get_or_create(&OutcomeLabel { outcome: if ok { "ok" } else { "refused" } }).inc();
    }

    /// The page, in the format `accept` asks for: (content type, text).
    pub fn render(&self, accept: &str) -> Result<(&'static str, String), std::fmt::Error> {
        let mut out = String::with_capacity(8192);
        if accept.contains("application/openmetrics-text") {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
            Ok(("application/openmetrics-text; version=1.0.0; charset=utf-8", out))
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
            Ok((prometheus_client::encoding::prometheus_text::CONTENT_TYPE, out))
        }
    }
}

/// Counts a request in flight while it lives.
pub struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    #[test]
    fn the_page_counts_what_happened_under_bounded_labels() {
        let m = Metrics::new();
        m.request("/v1/fak/adjudicate", 200, Duration::from_micros(300));
        m.decision(Side::Call, "Bash", "DENY", "POLICY_BLOCK", "shell.rm_rf", Some(Duration::from_micros(3)));
        m.decision(Side::Result, "WebFetch", "QUARANTINE", "SECRET_EXFIL", "secrets.hold", None);
        for i in 0..(MAX_TOOLS + 10) {
            m.decision(Side::Call, &format!("mcp__t{i}"), "ALLOW", "OK", "tools.allow", None);
        }
        {
            let _f = m.begin();
            let (_, page) = m.render("").unwrap();
            assert!(page.contains("fak_http_requests_in_flight 1"), "{page}");
        }
        let (ty, page) = m.render("text/plain").unwrap();
        assert!(ty.starts_with("text/plain; version=0.0.4"));
        assert!(page.contains("fak_http_requests_in_flight 0"));
        assert!(page.contains(r#"fak_http_requests_total{route="/v1/fak/adjudicate",status="200"} 1"#), "{page}");
        assert!(page.contains(
            r#"fak_decisions_total{side="call",verdict="DENY",reason="POLICY_BLOCK",tool="Bash",rule="shell.rm_rf"} 1"#
        ));
        assert!(page.contains(r#"fak_quarantines_total{reason="SECRET_EXFIL"} 1"#));
        assert!(page.contains("fak_decide_duration_seconds_count 1"));
        assert!(page.contains(r#"fak_build_info{version=""#));
        // The tools past the bound share one label.
        assert!(page.contains(r#"tool="other",rule="tools.allow"} 12"#), "{page}");
        let (ty, om) = m.render("application/openmetrics-text; version=1.0.0").unwrap();
        assert!(ty.starts_with("application/openmetrics-text"));
        assert!(om.ends_with("# EOF\n"));
    }
}
