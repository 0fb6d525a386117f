//! tools/grafana: the dashboard's queries against the metrics `fak serve` really exports.
//!
//! The page comes from the router in-process, after requests that give every labelled family
//! a sample. Each panel's PromQL (and each template variable's query) is parsed with
//! promql-parser, and every selector's metric, every label a matcher, `by`, `without`, `on`,
//! `ignoring`, `group_left`/`group_right` or a legend names, and every `le` bucket boundary a
//! matcher picks must be on that page. A metric renamed in `src/gateway/metrics.rs` or in the
//! dashboard fails here, naming the panel and the metric, instead of leaving a panel empty.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fak::gateway::App;
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    self, AggregateExpr, BinaryExpr, Call, Expr, LabelModifier, VectorMatchCardinality, VectorSelector,
};
use promql_parser::util::{walk_expr, ExprVisitor};
use regex::Regex;
use serde_json::{json, Value as Json};
use tower::ServiceExt as _;

use crate::util::root;

const DASHBOARD: &str = "tools/grafana/dashboards/fak.json";

/// Labels Prometheus adds to every series it scrapes: the page itself does not carry them.
const TARGET_LABELS: &[&str] = &["job", "instance"];

/// What Grafana's built-in variables are replaced with before a query is parsed.
const BUILTINS: &[(&str, &str)] = &[
    ("__rate_interval", "1m"),
    ("__interval", "1m"),
    ("__range", "1h"),
    ("__interval_ms", "60000"),
    ("__range_ms", "3600000"),
    ("__range_s", "3600"),
];

type Labels = BTreeSet<String>;

// ---------------------------------------------------------------------------------------------
// The page

/// What `/metrics` exports: each sample name with its labels and the values they take, and
/// each family's type from its `# TYPE` line.
#[derive(Debug, Default)]
struct Page {
    series: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    types: BTreeMap<String, String>,
}

impl Page {
    /// Reads the Prometheus text format (0.0.4) or OpenMetrics; a line it cannot read fails
    /// the test.
    fn parse(text: &str) -> Page {
        let mut page = Page::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, ty) = rest.split_once(' ').unwrap_or_else(|| panic!("a TYPE line without a type: {line}"));
                page.types.insert(name.to_string(), ty.to_string());
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, labels) = sample(line).unwrap_or_else(|| panic!("a sample line the test cannot read: {line}"));
            let entry = page.series.entry(name).or_default();
            for (k, v) in labels {
                entry.entry(k).or_default().insert(v);
            }
        }
        page
    }

    /// The family a sample belongs to, and its type: a histogram's `_bucket`, `_sum` and
    /// `_count` belong to the histogram, and in OpenMetrics a counter's `_total` to the counter.
    fn family(&self, sample: &str) -> Option<(&str, &str)> {
        if let Some((f, t)) = self.types.get_key_value(sample) {
            return Some((f, t));
        }
        ["_bucket", "_sum", "_count", "_created", "_total"].iter().find_map(|suffix| {
            let stem = sample.strip_suffix(suffix)?;
            self.types.get_key_value(stem).map(|(f, t)| (f.as_str(), t.as_str()))
        })
    }

    /// The labels a selector of `name` may see: the sample's own and the scrape's.
    fn labels(&self, name: &str) -> Option<Labels> {
        let own = self.series.get(name)?;
        Some(own.keys().cloned().chain(TARGET_LABELS.iter().map(|s| s.to_string())).collect())
    }

    /// The families, for a message: `fak_decide_duration_seconds (histogram), ...`.
    fn names(&self) -> String {
        self.types.iter().map(|(f, t)| format!("{f} ({t})")).collect::<Vec<_>>().join(", ")
    }
}

/// One sample line: its name and labels (the value is not needed).
fn sample(line: &str) -> Option<(String, Vec<(String, String)>)> {
    let end = line.find(['{', ' '])?;
    let name = line[..end].to_string();
    let mut labels = Vec::new();
    let Some(body) = line[end..].strip_prefix('{') else { return Some((name, labels)) };
    let mut chars = body.chars();
    loop {
        let mut c = chars.next()?;
        while c == ',' || c == ' ' {
            c = chars.next()?;
        }
        if c == '}' {
            break;
        }
        let mut key = String::new();
        while c != '=' {
            key.push(c);
            c = chars.next()?;
        }
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break,
                other => value.push(other),
            }
        }
        labels.push((key, value));
    }
    Some((name, labels))
}

/// The page of a server that has decided a denied and an allowed call, admitted a quarantined
/// and an allowed result, and reloaded its floor, so that every labelled family has a sample:
/// in the text format, and in OpenMetrics, which Prometheus asks for first.
fn exported() -> [(&'static str, Page); 2] {
    let state = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let dag = fak::load::builtin().into_result().ok().unwrap().dag;
    let config = crate::util::gateway_config(ws.path(), state.path(), None, "");
    let app = Arc::new(App::new(config, dag).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let key = format!("AKIA{}", "QWERTYUIOPASDFGH");
    rt.block_on(async {
        let requests = [
            ("/v1/fak/adjudicate", json!({"tool": "Bash", "arguments": {"command": "sudo rm -rf /"}})),
            ("/v1/fak/adjudicate", json!({"tool": "Bash", "arguments": {"command": "ls"}})),
            (
                "/v1/fak/admit",
                json!({"tool": "Read", "result": format!("aws_access_key_id = {key}\n"), "trace_id": "g"}),
            ),
            ("/v1/fak/admit", json!({"tool": "Read", "result": "hello", "trace_id": "g"})),
            ("/v1/fak/policy/reload", json!({})),
        ];
        for (path, body) in requests {
            let (status, _) = send(&app, "POST", path, "application/json", Some(body.to_string())).await;
            assert_eq!(status, StatusCode::OK, "POST {path}");
        }
        let formats =
            [("the text format", "text/plain"), ("OpenMetrics", "application/openmetrics-text; version=1.0.0")];
        let mut pages = Vec::new();
        for (format, accept) in formats {
            let (status, text) = send(&app, "GET", "/metrics", accept, None).await;
            assert_eq!(status, StatusCode::OK);
            let page = Page::parse(&text);
            // The drive above is what makes these families print: each needs a sample.
            for family in ["fak_decisions_total", "fak_quarantines_total", "fak_policy_reloads_total"] {
                assert!(
                    page.series.contains_key(family),
                    "{format}: {family} has no sample, the requests above should give it one"
                );
            }
            for name in page.series.keys() {
                assert!(page.family(name).is_some(), "{format}: the sample {name} has no # TYPE line");
            }
            pages.push((format, page));
        }
        <[(&str, Page); 2]>::try_from(pages).unwrap()
    })
}

async fn send(app: &Arc<App>, method: &str, path: &str, accept: &str, body: Option<String>) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("accept", accept)
        .body(body.map_or_else(Body::empty, Body::from))
        .unwrap();
    let r = fak::gateway::router(app.clone()).oneshot(req).await.unwrap();
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 24).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

// ---------------------------------------------------------------------------------------------
// The dashboard

fn dashboard() -> Json {
    let text = std::fs::read_to_string(root().join(DASHBOARD)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"))
}

/// Every panel, rows' nested panels (a collapsed row keeps its own) included.
fn panels(dash: &Json) -> Vec<&Json> {
    fn walk<'a>(list: &'a Json, out: &mut Vec<&'a Json>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            if let Some(nested) = p.get("panels") {
                walk(nested, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

fn panel_name(p: &Json) -> String {
    format!("panel {:?} (id {})", p["title"].as_str().unwrap_or("?"), p["id"])
}

/// One query of the dashboard and where it is, for messages.
struct Query {
    place: String,
    text: String,
    kind: QueryKind,
}

enum QueryKind {
    /// A panel target's `expr`, with its legend.
    Panel { legend: String },
    /// A template variable's `label_values(selector, label)`: the selector's text, or none.
    LabelValues { label: String },
    /// A template variable's `query_result(expr)`.
    Result,
}

/// Every query: each panel target's `expr` and each query variable's query. A target without
/// one is reported as a problem.
fn queries(dash: &Json, problems: &mut Vec<String>) -> Vec<Query> {
    let mut out = Vec::new();
    for p in panels(dash) {
        let ty = p["type"].as_str().unwrap_or("");
        if ty == "row" || ty == "text" {
            continue;
        }
        let targets = p["targets"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        if targets.is_empty() {
            problems.push(format!("{}: has no targets", panel_name(p)));
        }
        for t in targets {
            let place = format!("{}, target {}", panel_name(p), t["refId"].as_str().unwrap_or("?"));
            match t["expr"].as_str() {
                Some(e) if !e.trim().is_empty() => out.push(Query {
                    place,
                    text: e.to_string(),
                    kind: QueryKind::Panel { legend: t["legendFormat"].as_str().unwrap_or("").to_string() },
                }),
                _ => problems.push(format!("{place}: has no expr")),
            }
        }
    }
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] != "query" {
            continue;
        }
        let place = format!("variable ${}", v["name"].as_str().unwrap_or("?"));
        let q = v["query"].as_str().or_else(|| v["query"]["query"].as_str()).unwrap_or("").trim();
        if let Some(inner) = q.strip_prefix("label_values(").and_then(|r| r.strip_suffix(')')) {
            // The label is after the last comma; a selector's matchers may hold commas.
            let (selector, label) = match inner.rsplit_once(',') {
                Some((s, l)) => (s.trim().to_string(), l.trim().to_string()),
                None => (String::new(), inner.trim().to_string()),
            };
            out.push(Query { place, text: selector, kind: QueryKind::LabelValues { label } });
        } else if let Some(inner) = q.strip_prefix("query_result(").and_then(|r| r.strip_suffix(')')) {
            out.push(Query { place, text: inner.to_string(), kind: QueryKind::Result });
        } else {
            problems.push(format!("{place}: a query the test does not know how to check: {q:?}"));
        }
    }
    out
}

/// The value each dashboard variable is replaced with: its "All" value where it has one (what
/// the dashboard opens with), else its current value.
fn variables(dash: &Json) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        let Some(name) = v["name"].as_str() else { continue };
        let current = match &v["current"]["value"] {
            Json::String(s) => Some(s.as_str()),
            Json::Array(a) => a.first().and_then(Json::as_str),
            _ => None,
        }
        .filter(|s| *s != "$__all");
        let value = v["allValue"].as_str().filter(|s| !s.is_empty()).or(current).unwrap_or(".*");
        out.insert(name.to_string(), value.to_string());
    }
    out
}

/// The query with Grafana's variables (`$x`, `${x}`, `${x:fmt}`, `[[x]]`) replaced; an unknown
/// variable is an error.
fn substitute(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let re = Regex::new(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]").unwrap();
    let mut unknown = Vec::new();
    let out = re.replace_all(text, |c: &regex::Captures<'_>| {
        let name = c.get(1).or_else(|| c.get(2)).or_else(|| c.get(3)).map_or("", |m| m.as_str());
        let builtin = BUILTINS.iter().find(|(b, _)| *b == name).map(|(_, v)| *v);
        match builtin.or_else(|| vars.get(name).map(String::as_str)) {
            Some(v) => v.to_string(),
            // `$1` is a regex group in label_replace's replacement, not a variable.
            None if name.starts_with(|c: char| c.is_ascii_digit()) => c[0].to_string(),
            None => {
                unknown.push(name.to_string());
                String::new()
            }
        }
    });
    if unknown.is_empty() {
        Ok(out.into_owned())
    } else {
        Err(format!("uses ${}, neither a dashboard variable nor one of Grafana's the test knows", unknown.join(", $")))
    }
}

// ---------------------------------------------------------------------------------------------
// The checker

/// Walks a query's AST against the page, working out which labels each node's series may
/// carry, and collects what does not fit.
struct Checker<'a> {
    page: &'a Page,
    problems: Vec<String>,
    /// A selector named no exported metric: what its series carry is unknown, so the label
    /// checks above it stay quiet rather than repeat the one mistake.
    lost: bool,
}

fn list(labels: &Labels) -> String {
    format!("{{{}}}", labels.iter().cloned().collect::<Vec<_>>().join(", "))
}

impl Checker<'_> {
    /// The labels the expression's series may carry.
    fn expr(&mut self, e: &Expr) -> Labels {
        match e {
            Expr::VectorSelector(vs) => self.selector(vs),
            Expr::MatrixSelector(ms) => self.selector(&ms.vs),
            Expr::Aggregate(a) => self.aggregate(a),
            Expr::Call(c) => self.call(c),
            Expr::Binary(b) => self.binary(b),
            Expr::Paren(p) => self.expr(&p.expr),
            Expr::Unary(u) => self.expr(&u.expr),
            Expr::Subquery(s) => self.expr(&s.expr),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => Labels::new(),
        }
    }

    fn selector(&mut self, vs: &VectorSelector) -> Labels {
        let named = |m: &&Matcher| m.name == "__name__" && matches!(m.op, MatchOp::Equal);
        let Some(name) = vs.name.clone().or_else(|| vs.matchers.matchers.iter().find(named).map(|m| m.value.clone()))
        else {
            self.problems.push(format!("`{vs}` selects no metric by name"));
            self.lost = true;
            return Labels::new();
        };
        let Some(have) = self.page.labels(&name) else {
            self.problems.push(format!("`{name}` is not exported by fak serve (it exports {})", self.page.names()));
            self.lost = true;
            return Labels::new();
        };
        for m in vs.matchers.matchers.iter().chain(vs.matchers.or_matchers.iter().flatten()) {
            if m.name == "__name__" {
                continue;
            }
            if !have.contains(&m.name) {
                self.problems.push(format!("`{name}` has no label `{}` (it has {})", m.name, list(&have)));
            } else if m.name == "le" && matches!(m.op, MatchOp::Equal) {
                let bounds = self.page.series.get(&name).and_then(|s| s.get("le"));
                if !bounds.is_some_and(|b| b.contains(&m.value)) {
                    let mut bounds: Vec<&String> = bounds.into_iter().flatten().collect();
                    bounds.sort_by(|a, b| bound(a).total_cmp(&bound(b)));
                    let bounds = bounds.into_iter().cloned().collect::<Vec<_>>().join(", ");
                    self.problems
                        .push(format!("`{name}{{le=\"{}\"}}` is not a bucket boundary (they are: {bounds})", m.value));
                } else if !spelt_alike(&m.value) {
                    self.problems.push(format!(
                        "`{name}{{le=\"{}\"}}`: this boundary is spelt differently by the text format, \
                         OpenMetrics (0.000001 for 1e-06) and Prometheus 3 (1.0 for 1); pick one from \
                         0.0001 up that is not a whole number",
                        m.value
                    ));
                }
            }
        }
        have
    }

    /// A problem with labels, unless a selector below is already reported.
    fn label_problem(&mut self, problem: String) {
        if !self.lost {
            self.problems.push(problem);
        }
    }

    /// Reports each of `wanted` that `have` lacks.
    fn known(&mut self, have: &Labels, wanted: &[String], what: &str) {
        for l in wanted {
            if !have.contains(l) {
                self.label_problem(format!(
                    "{what} names `{l}`, which its series do not carry (they carry {})",
                    list(have)
                ));
            }
        }
    }

    fn aggregate(&mut self, a: &AggregateExpr) -> Labels {
        let inner = self.expr(&a.expr);
        if let Some(p) = &a.param {
            self.expr(p);
        }
        let op = a.op.to_string();
        let grouped = match &a.modifier {
            Some(LabelModifier::Include(ls)) => {
                self.known(&inner, &ls.labels, &format!("`{op} by (...)`"));
                ls.labels.iter().cloned().collect()
            }
            Some(LabelModifier::Exclude(ls)) => {
                self.known(&inner, &ls.labels, &format!("`{op} without (...)`"));
                inner.iter().filter(|l| !ls.labels.contains(l)).cloned().collect()
            }
            None => Labels::new(),
        };
        match op.as_str() {
            // These pick series and keep their labels; the grouping only partitions.
            "topk" | "bottomk" | "limitk" | "limit_ratio" => inner,
            "count_values" => match a.param.as_deref() {
                Some(Expr::StringLiteral(s)) => grouped.into_iter().chain([s.val.clone()]).collect(),
                _ => grouped,
            },
            _ => grouped,
        }
    }

    fn call(&mut self, c: &Call) -> Labels {
        let args: Vec<Labels> = c.args.args.iter().map(|a| self.expr(a)).collect();
        let string = |i: usize| match c.args.args.get(i).map(|a| &**a) {
            Some(Expr::StringLiteral(s)) => Some(s.val.clone()),
            _ => None,
        };
        let name = c.func.name;
        match name {
            "rate" | "irate" | "increase" | "resets" => {
                if let Some(Expr::MatrixSelector(ms)) = c.args.args.first().map(|a| &**a) {
                    let metric = ms.vs.name.clone().unwrap_or_default();
                    if let Some((family, ty)) = self.page.family(&metric) {
                        if ty != "counter" && ty != "histogram" {
                            self.problems
                                .push(format!("`{name}()` over `{metric}`, a {ty} ({family}): it wants a counter"));
                        }
                    }
                }
                args.into_iter().next().unwrap_or_default()
            }
            "histogram_quantile" => {
                let mut inner = args.get(1).cloned().unwrap_or_default();
                if !inner.remove("le") {
                    self.label_problem(format!(
                        "`histogram_quantile` over series without `le` (they carry {}): keep `le` in the aggregation",
                        list(&inner)
                    ));
                }
                inner
            }
            "label_replace" | "label_join" => {
                let mut inner = args.first().cloned().unwrap_or_default();
                let sources: Vec<String> = if name == "label_replace" {
                    string(3).into_iter().filter(|s| !s.is_empty()).collect()
                } else {
                    (3..c.args.args.len()).filter_map(string).collect()
                };
                self.known(&inner, &sources, &format!("`{name}`"));
                inner.extend(string(1));
                inner
            }
            _ => {
                // Most functions keep their vector argument's labels.
                let vector = c.args.args.iter().zip(args).find(|(a, _)| {
                    matches!(a.value_type(), ValueType::Vector | ValueType::Matrix)
                        && !matches!(name, "vector" | "scalar" | "time" | "absent" | "absent_over_time")
                });
                vector.map(|(_, l)| l).unwrap_or_default()
            }
        }
    }

    fn binary(&mut self, b: &BinaryExpr) -> Labels {
        let lhs = self.expr(&b.lhs);
        let rhs = self.expr(&b.rhs);
        if b.lhs.value_type() == ValueType::Scalar {
            return rhs;
        }
        if b.rhs.value_type() == ValueType::Scalar {
            return lhs;
        }
        let op = b.op.to_string();
        let set_op = matches!(op.as_str(), "and" | "or" | "unless");
        let modifier = b.modifier.as_ref();
        let card = modifier.map(|m| &m.card);
        let without =
            |ls: &Labels, drop: &[String]| -> Labels { ls.iter().filter(|l| !drop.contains(l)).cloned().collect() };
        match modifier.and_then(|m| m.matching.as_ref()) {
            Some(LabelModifier::Include(on)) => {
                self.known(&lhs, &on.labels, &format!("the left of `{op} on (...)`"));
                self.known(&rhs, &on.labels, &format!("the right of `{op} on (...)`"));
            }
            Some(LabelModifier::Exclude(ignoring)) => {
                let both: Labels = lhs.union(&rhs).cloned().collect();
                self.known(&both, &ignoring.labels, &format!("`{op} ignoring (...)`"));
                if !set_op && without(&lhs, &ignoring.labels) != without(&rhs, &ignoring.labels) {
                    self.label_problem(format!(
                        "the sides of `{op} ignoring (...)` still differ ({} against {}): no series would match",
                        list(&lhs),
                        list(&rhs)
                    ));
                }
            }
            None => {
                let one_to_one = matches!(card, None | Some(VectorMatchCardinality::OneToOne));
                if !set_op && one_to_one && lhs != rhs {
                    self.label_problem(format!(
                        "the sides of `{op}` carry different labels ({} against {}): no series would match; \
                         aggregate both to the same labels or use on (...)",
                        list(&lhs),
                        list(&rhs)
                    ));
                }
            }
        }
        match (op.as_str(), card) {
            ("or", _) => lhs.union(&rhs).cloned().collect(),
            ("and" | "unless", _) => lhs,
            (_, Some(VectorMatchCardinality::ManyToOne(extra))) => {
                self.known(&rhs, &extra.labels, "`group_left (...)`");
                lhs.into_iter().chain(extra.labels.iter().cloned()).collect()
            }
            (_, Some(VectorMatchCardinality::OneToMany(extra))) => {
                self.known(&lhs, &extra.labels, "`group_right (...)`");
                rhs.into_iter().chain(extra.labels.iter().cloned()).collect()
            }
            _ => lhs,
        }
    }
}

/// A bucket boundary's value, for sorting them (`+Inf` last).
fn bound(le: &str) -> f64 {
    le.parse().unwrap_or(f64::INFINITY)
}

/// Whether every exposition and Prometheus version spell this boundary the same: below 1e-4
/// the text format (and Go's `%g`) switch to an exponent, and Prometheus 3 writes a whole
/// number with `.0`.
fn spelt_alike(le: &str) -> bool {
    le == "+Inf" || le.parse::<f64>().is_ok_and(|v| v >= 1e-4 && v.fract() != 0.0)
}

/// Every problem with one query, each naming where it is.
fn check(page: &Page, vars: &BTreeMap<String, String>, q: &Query) -> Vec<String> {
    let text = match substitute(&q.text, vars) {
        Ok(t) => t,
        Err(e) => return vec![format!("{}: {e}: {}", q.place, q.text)],
    };
    let mut checker = Checker { page, problems: Vec::new(), lost: false };
    match &q.kind {
        QueryKind::LabelValues { label } if text.is_empty() => {
            if !TARGET_LABELS.contains(&label.as_str()) && !page.series.values().any(|s| s.contains_key(label)) {
                checker.problems.push(format!("no exported series has the label `{label}`"));
            }
        }
        _ => match parser::parse(&text) {
            Err(e) => checker.problems.push(format!("does not parse ({}): {text}", e.trim())),
            Ok(ast) => {
                let out = checker.expr(&ast);
                match &q.kind {
                    QueryKind::LabelValues { label } => {
                        checker.known(&out, std::slice::from_ref(label), "`label_values`");
                    }
                    QueryKind::Panel { legend } => {
                        let re = Regex::new(r"\{\{\s*(\w+)\s*\}\}").unwrap();
                        let used: Vec<String> = re.captures_iter(legend).map(|c| c[1].to_string()).collect();
                        checker.known(&out, &used, &format!("the legend {legend:?}"));
                    }
                    QueryKind::Result => {}
                }
            }
        },
    }
    checker.problems.into_iter().map(|p| format!("{}: {p}", q.place)).collect()
}

/// The metric names a query selects (for finding panels by what they show).
fn metric_names(text: &str) -> BTreeSet<String> {
    struct Names(BTreeSet<String>);
    impl ExprVisitor for Names {
        type Error = std::convert::Infallible;
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, Self::Error> {
            let vs = match e {
                Expr::VectorSelector(vs) => vs,
                Expr::MatrixSelector(ms) => &ms.vs,
                _ => return Ok(true),
            };
            self.0.extend(vs.name.clone());
            Ok(true)
        }
    }
    let mut names = Names(BTreeSet::new());
    if let Ok(ast) = parser::parse(text) {
        let _ = walk_expr(&mut names, &ast);
    }
    names.0
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn every_dashboard_query_selects_metrics_and_labels_fak_exports() {
    let [(_, text), (om_name, om)] = exported();
    let dash = dashboard();
    let vars = variables(&dash);
    let mut problems = Vec::new();
    let queries = queries(&dash, &mut problems);
    assert!(queries.len() >= 10, "only {} queries found in {DASHBOARD}", queries.len());
    for q in &queries {
        problems.extend(check(&text, &vars, q));
    }
    // Prometheus scrapes OpenMetrics where it can: the same series, unless the two differ.
    if problems.is_empty() {
        for q in &queries {
            problems.extend(check(&om, &vars, q).into_iter().map(|p| format!("scraped as {om_name}: {p}")));
        }
    }
    assert!(problems.is_empty(), "{} problem(s) in {DASHBOARD}:\n  {}", problems.len(), problems.join("\n  "));
}

#[test]
fn the_checker_catches_renamed_metrics_and_labels() {
    let [(_, page), _] = exported();
    let vars: BTreeMap<String, String> = [("instance".to_string(), ".*".to_string())].into();
    let problem = |expr: &str| {
        let q = Query {
            place: "panel \"t\"".into(),
            text: expr.into(),
            kind: QueryKind::Panel { legend: "{{verdict}}".into() },
        };
        check(&page, &vars, &q).join("\n")
    };
    let good = r#"sum by (verdict) (rate(fak_decisions_total{instance=~"$instance", side="call"}[$__rate_interval]))"#;
    assert_eq!(problem(good), "");
    let cases = [
        // A metric renamed.
        ("sum by (verdict) (rate(fak_decision_total[5m]))", "`fak_decision_total` is not exported"),
        // A label a matcher names that the metric does not carry.
        (r#"sum by (verdict) (rate(fak_decisions_total{kind="x"}[5m]))"#, "has no label `kind`"),
        // A grouping label the series do not carry.
        ("sum by (verdict, kind) (rate(fak_decisions_total[5m]))", "`sum by (...)` names `kind`"),
        // A legend label the result does not carry.
        ("sum by (side) (rate(fak_decisions_total[5m]))", "the legend \"{{verdict}}\" names `verdict`"),
        // `le` aggregated away before histogram_quantile.
        ("histogram_quantile(0.9, sum by (verdict) (rate(fak_decide_duration_seconds_bucket[5m])))", "without `le`"),
        // An `le` that is not a bucket boundary.
        (r#"sum by (verdict) (fak_decide_duration_seconds_bucket{le="0.001"})"#, "not a bucket boundary"),
        // A boundary OpenMetrics spells 0.000001.
        (r#"sum by (verdict) (fak_decide_duration_seconds_bucket{le="1e-06"})"#, "spelt differently"),
        // rate() over a gauge.
        ("sum by (verdict) (rate(fak_http_requests_in_flight[5m]))", "a gauge"),
        // Sides that cannot match.
        (
            r#"sum by (verdict) (fak_decide_duration_seconds_count) - sum by (le) (fak_decide_duration_seconds_bucket{le="+Inf"})"#,
            "carry different labels",
        ),
        // A regex group is not a variable; label_replace adds its label.
        (r#"sum by (verdict) (label_replace(rate(fak_decisions_total[5m]), "kind", "$1", "rule", "(.*)"))"#, ""),
        (
            r#"sum by (kind) (label_replace(rate(fak_decisions_total[5m]), "kind", "$1", "rules", "(.*)"))"#,
            "`label_replace` names `rules`",
        ),
        // A variable the dashboard does not define.
        ("sum by (verdict) (rate(fak_decisions_total{tool=~\"$tool\"}[5m]))", "uses $tool"),
        // Not PromQL.
        ("sum by (verdict) (rate(fak_decisions_total[5m])", "does not parse"),
    ];
    for (expr, want) in cases {
        let got = problem(expr);
        if want.is_empty() {
            assert_eq!(got, "", "{expr}");
        } else {
            assert!(got.contains(want) && got.starts_with("panel \"t\": "), "{expr}\nwanted {want:?}, got:\n{got}");
        }
    }
}

#[test]
fn the_dashboard_is_grafana_shaped_and_has_the_promised_panels() {
    let dash = dashboard();
    assert_eq!(dash["uid"], "fak", "the uid makes the URL /d/fak");
    assert!(dash["title"].as_str().is_some_and(|t| !t.is_empty()), "no title");
    assert!(dash["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "schemaVersion {}", dash["schemaVersion"]);
    assert!(dash["panels"].as_array().is_some_and(|p| !p.is_empty()), "no panels");
    let vars = variables(&dash);
    let all = panels(&dash);

    let mut ids = BTreeSet::new();
    for p in &all {
        let name = panel_name(p);
        assert!(p["id"].as_u64().is_some_and(|id| ids.insert(id)), "{name}: no id, or one already used");
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()), "{name}: no title");
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_u64(), g["w"].as_u64());
        assert!(g["h"].as_u64().is_some() && g["y"].as_u64().is_some(), "{name}: gridPos {g}");
        assert!(x.zip(w).is_some_and(|(x, w)| w > 0 && x + w <= 24), "{name}: gridPos {g} is off the 24 columns");
        if p["type"] == "row" {
            continue;
        }
        // Every query goes to the Prometheus the dashboard's data source variable picks.
        for ds in std::iter::once(&p["datasource"])
            .chain(p["targets"].as_array().into_iter().flatten().map(|t| &t["datasource"]))
        {
            assert_eq!(ds["type"], "prometheus", "{name}: datasource {ds}");
            let uid = ds["uid"].as_str().unwrap_or("");
            let var = uid.trim_start_matches("${").trim_end_matches('}');
            assert!(uid == "prometheus" || vars.contains_key(var), "{name}: datasource uid {uid:?}");
        }
    }

    // (keywords in the title, a metric its queries select, text its queries use)
    let promised: &[(&[&str], &str, &str)] = &[
        (&["decisions", "verdict"], "fak_decisions_total", "by (side, verdict)"),
        (&["decisions", "reason"], "fak_decisions_total", "reason"),
        (&["decide", "latency"], "fak_decide_duration_seconds_bucket", "histogram_quantile(0.99"),
        (&["admit", "latency"], "fak_admit_duration_seconds_bucket", "histogram_quantile(0.99"),
        (&["http", "latency"], "fak_http_request_duration_seconds_bucket", "histogram_quantile(0.99"),
        (&["upstream", "latency"], "fak_upstream_duration_seconds_bucket", "histogram_quantile(0.99"),
        (&["quarantines"], "fak_quarantines_total", "by (reason)"),
        (&["slow"], "fak_http_request_duration_seconds_bucket", "le="),
        (&["http", "requests"], "fak_http_requests_total", "rate("),
        (&["in flight"], "fak_http_requests_in_flight", ""),
        (&["build"], "fak_build_info", ""),
    ];
    for (keywords, metric, uses) in promised {
        let found = all.iter().any(|p| {
            let title = p["title"].as_str().unwrap_or("").to_lowercase();
            let exprs: Vec<&str> =
                p["targets"].as_array().into_iter().flatten().filter_map(|t| t["expr"].as_str()).collect();
            keywords.iter().all(|k| title.contains(k))
                && exprs.iter().any(|e| metric_names(&substitute(e, &vars).unwrap_or_default()).contains(*metric))
                && exprs.iter().any(|e| e.contains(uses))
        });
        assert!(found, "{DASHBOARD}: no panel titled with {keywords:?} that queries {metric} using {uses:?}");
    }
}

#[test]
fn provisioning_and_prometheus_point_at_the_dashboard_and_fak() {
    let dir = root().join("tools/grafana");
    let read =
        |rel: &str| std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("tools/grafana/{rel}: {e}"));
    // `key: value` of the first line that has the key, unquoted.
    let value = |text: &str, key: &str| -> Option<String> {
        text.lines().find_map(|l| {
            let rest = l.trim_start().trim_start_matches("- ").strip_prefix(key)?.strip_prefix(':')?;
            Some(rest.trim().trim_matches(['"', '\'']).to_string())
        })
    };

    // Grafana loads the dashboards directory, which compose mounts at the provider's path.
    let provider = read("provisioning/dashboards/fak.yml");
    assert_eq!(value(&provider, "apiVersion").as_deref(), Some("1"));
    assert_eq!(value(&provider, "type").as_deref(), Some("file"), "{provider}");
    let path = value(&provider, "path").unwrap_or_else(|| panic!("no path in the provider:\n{provider}"));
    let compose = read("docker-compose.yml");
    assert!(
        compose.contains(&format!("./dashboards:{path}")),
        "docker-compose.yml does not mount ./dashboards at {path}"
    );
    assert!(
        compose.contains("./provisioning:/etc/grafana/provisioning"),
        "docker-compose.yml does not mount ./provisioning"
    );
    assert!(dir.join("dashboards/fak.json").is_file());

    // The data source the dashboard's variable defaults to.
    let ds = read("provisioning/datasources/prometheus.yml");
    assert_eq!(value(&ds, "type").as_deref(), Some("prometheus"), "{ds}");
    assert_eq!(value(&ds, "uid").as_deref(), Some("prometheus"), "{ds}");
    assert_eq!(value(&ds, "url").as_deref(), Some("http://127.0.0.1:9090"), "{ds}");

    // Prometheus scrapes fak's /metrics.
    let prom = read("prometheus.yml");
    assert_eq!(value(&prom, "job_name").as_deref(), Some("fak"), "{prom}");
    assert_eq!(value(&prom, "metrics_path").as_deref(), Some("/metrics"), "{prom}");
    assert!(prom.contains("127.0.0.1:8080"), "the default target is 127.0.0.1:8080:\n{prom}");
}
