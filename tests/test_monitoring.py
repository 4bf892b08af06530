"""The alerting rules and the Grafana dashboard, checked offline against docs/metrics.md.

No Prometheus or Grafana runs here (promtool is not installed). The rule file is checked
against a JSON schema written from Prometheus's documentation of rule files
(tests/schemas/prometheus-rules.json), every expression is parsed by a PromQL parser
(promql-parser, which also checks function names and argument types), and every metric
and label an expression names must be documented in docs/metrics.md, or be one of the
standard series (`up`, the `process_*` and `python_*` collectors).
"""

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import promql_parser as promql
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "notifyctl.json"
METRICS_DOC = ROOT / "docs" / "metrics.md"

#: Series Prometheus makes itself, or that a client library's standard collectors export.
STANDARD_PREFIXES = ("process_", "python_")
#: Labels Prometheus attaches to every scraped series.
TARGET_LABELS = {"job", "instance"}


# --- what docs/metrics.md documents ----------------------------------------------------


@cache
def documented() -> dict[str, dict[str, set[str]]]:
    """Every documented metric name -> {label: its documented values (empty: any)}."""
    metrics: dict[str, dict[str, set[str]]] = {}
    for line in METRICS_DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        name = re.fullmatch(r"`(\w+)`", cells[0]) if len(cells) >= 4 else None
        if not name or cells[1] in ("type", "---"):
            continue
        # "`status`: `sent`, `failed`" is one label and its values; "`method`, `route`"
        # two labels. Text in parentheses is commentary (examples, not values).
        text = re.sub(r"\([^)]*\)", "", cells[2])
        labels = {}
        for label, values in re.findall(r"`(\w+)`(?::\s*((?:`[^`]+`(?:,\s*)?)+))?", text):
            labels[label] = set(re.findall(r"`([^`]+)`", values))
        metrics[name.group(1)] = labels
    return metrics


def series_of(metric: str) -> tuple[str, set[str]] | None:
    """The documented metric a series belongs to, and the labels it may carry."""
    metrics = documented()
    if metric in metrics:
        return metric, set(metrics[metric])
    for suffix, extra in (
        ("_total", set()),
        ("_bucket", {"le"}),
        ("_sum", set()),
        ("_count", set()),
    ):
        base = metric.removesuffix(suffix)
        if base != metric and base in metrics:
            return base, set(metrics[base]) | extra
    return None


def test_the_metrics_document_is_read_whole():
    """The parser above finds every metric of the tables, and their labels."""
    metrics = documented()
    assert len(metrics) == len(re.findall(r"^\| `\w+` \|", METRICS_DOC.read_text(), re.M))
    assert metrics["notifyctl_messages_total"]["status"] >= {"sent", "failed", "expired"}
    assert set(metrics["notifyctl_http_requests_total"]) == {"method", "route", "status"}
    assert metrics["notifyctl_pending_messages"] == {}


# --- PromQL ----------------------------------------------------------------------------


def walk(expr) -> list:
    nodes: list = []
    promql.walk(expr, nodes.append)
    return nodes


def problems(text: str) -> list[str]:
    """What is wrong with PromQL ``text``: unparsable, or naming undocumented series or labels."""
    try:
        expr = promql.parse(text)
    except ValueError as exc:
        return [f"does not parse: {exc}"]
    found = []
    standard = False
    for node in walk(expr):
        if isinstance(node, promql.VectorSelector):
            standard |= (node.name or "").startswith(STANDARD_PREFIXES)
            found += selector_problems(node)
    if not standard:  # the standard collectors' labels are theirs, not documented here
        known = series_labels(expr)
        for node in walk(expr):
            grouped = []
            if isinstance(node, promql.AggregateExpr) and node.modifier:
                grouped = node.modifier.labels
            elif isinstance(node, promql.BinaryExpr) and node.modifier and node.modifier.matching:
                grouped = node.modifier.matching.labels
            found += [
                f"no series here has a label {label!r}" for label in grouped if label not in known
            ]
    return found


def selector_problems(node) -> list[str]:
    name = node.name or ""
    if name == "up":
        allowed, values = TARGET_LABELS, {}
    elif name.startswith(STANDARD_PREFIXES):
        return []
    elif (owner := series_of(name)) is None:
        return [f"{name!r} is not documented in docs/metrics.md"]
    else:
        allowed, values = owner[1] | TARGET_LABELS, documented()[owner[0]]
    found = []
    for matcher in node.matchers.matchers:
        label = matcher.name
        if label not in allowed:
            found.append(f"{name} has no label {label!r}")
        elif (
            values.get(label)
            and matcher.op == promql.MatchOp.Equal
            and matcher.value not in values[label]
        ):
            found.append(f"{name}{{{label}}} never takes the value {matcher.value!r}")
    return found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max(notifyctl_pending_messages)", []),
        ('sum(rate(notifyctl_messages_total{status="sent"}[5m]))', []),
        ('sum(rate(notifyctl_messages_total{status="delivered"}[5m]))', ["never takes"]),
        ('notifyctl_sender_errors_total{reason="timeout"}', ["no label 'reason'"]),
        ("rate(notifyctl_queue_depth[5m])", ["not documented"]),
        ("rate(notifyctl_pending_messages)", ["does not parse"]),  # rate needs a range
        ("sum(notifyctl_pending_messages", ["does not parse"]),
        ("histogram_quantile(0.9, rate(notifyctl_send_duration_seconds_bucket[5m]))", []),
        ('up{job="notifyctl-api"} == 0', []),
        ("process_resident_memory_bytes", []),
        ("sum by (reason) (rate(notifyctl_sender_errors_total[5m]))", ["no series here"]),
        ("time() - notifyctl_daemon_progress_timestamp_seconds > 1 and on(pod) up", ["'pod'"]),
    ],
)
def test_the_promql_check_finds_what_it_should(text, expected):
    found = problems(text)
    assert len(found) == len(expected), found
    for problem, words in zip(found, expected, strict=True):
        assert words in problem


def output_labels(expr) -> set[str] | None:
    """Labels an expression's result may carry; None: every label of the series it reads."""
    if isinstance(expr, promql.ParenExpr):
        return output_labels(expr.expr)
    if isinstance(expr, promql.NumberLiteral | promql.StringLiteral):
        return set()
    if isinstance(expr, promql.AggregateExpr):
        modifier = expr.modifier
        if modifier is None or modifier.type != promql.AggModifierType.By:
            return set() if modifier is None else None
        return set(modifier.labels)
    if isinstance(expr, promql.Call):
        if expr.func.name == "absent":
            (selector,) = expr.args
            return {m.name for m in selector.matchers.matchers if m.op == promql.MatchOp.Equal}
        if expr.func.name == "time":
            return set()
        vectors = [output_labels(arg) for arg in expr.args]
        labels = vectors[-1] if expr.func.name == "histogram_quantile" else vectors[0]
        return labels - {"le"} if labels is not None else None
    if isinstance(expr, promql.BinaryExpr):
        left, right = output_labels(expr.lhs), output_labels(expr.rhs)
        if isinstance(expr.lhs, promql.NumberLiteral) or left == set():
            return right if not isinstance(expr.rhs, promql.NumberLiteral) else left
        return left
    if isinstance(expr, promql.SubqueryExpr | promql.MatrixSelector):
        return None
    return None  # a selector: its series' own labels


def series_labels(expr) -> set[str]:
    """Every label the series an expression reads may carry."""
    labels = set(TARGET_LABELS)
    for node in walk(expr):
        if isinstance(node, promql.VectorSelector) and (owner := series_of(node.name or "")):
            labels |= owner[1]
    return labels


# --- the alerting rules ------------------------------------------------------------------


@cache
def rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]


def check_rules_schema(path: Path) -> subprocess.CompletedProcess:
    schema = ROOT / "tests" / "schemas" / "prometheus-rules.json"
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--schemafile",
            str(schema),
            str(path),
        ],
        capture_output=True,
        text=True,
    )


def test_the_rule_file_has_the_shape_prometheus_reads():
    result = check_rules_schema(ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "mistake",
    [
        {"alert": "A", "expr": "up == 0", "for": "5 minutes"},  # not a duration
        {"alert": "A", "expr": "up == 0", "severity": "page"},  # a label outside `labels`
        {"alert": "A", "expr": "up == 0", "labels": {"team-name": "x"}},  # not a label name
        {"alert": "A"},  # no expression
    ],
)
def test_the_rule_schema_refuses_what_prometheus_refuses(mistake, tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [mistake]}]}))
    assert check_rules_schema(path).returncode == 1


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_every_alert_names_only_documented_metrics(rule):
    assert problems(rule["expr"]) == []


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_every_alert_explains_itself_with_labels_its_expression_keeps(rule):
    """``{{ $labels.x }}`` in an annotation must be a label the alert's series carry."""
    expr = promql.parse(rule["expr"])
    kept = output_labels(expr)
    kept = series_labels(expr) if kept is None else kept
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert {"summary", "description"} <= set(rule["annotations"])
    for text in rule["annotations"].values():
        assert text.count("{{") == text.count("}}"), text
        used = set(re.findall(r"\$labels\.(\w+)", text))
        assert used <= kept, f"{rule['alert']}: {used - kept} are not labels of its result"


def selectors(text: str) -> set[str]:
    return {n.name for n in walk(promql.parse(text)) if isinstance(n, promql.VectorSelector)}


@pytest.mark.parametrize(
    ("watch", "alert", "reads", "wait"),
    [
        ("backlog growing", "NotifyctlBacklogGrowing", {"notifyctl_pending_messages"}, "15m"),
        (
            "breaker open 5 min",
            "NotifyctlCircuitBreakerOpen",
            {"notifyctl_circuit_breaker_state"},
            "5m",
        ),
        (
            "no progress while work is due",
            "NotifyctlDaemonStalled",
            {"notifyctl_daemon_progress_timestamp_seconds", "notifyctl_pending_messages"},
            "1m",
        ),
        ("API 5xx rate", "NotifyctlApiErrors", {"notifyctl_http_requests_total"}, "5m"),
        ("a daemon down", "NotifyctlDaemonDown", {"up"}, "2m"),
        (
            "no daemon at all",
            "NotifyctlNoDaemon",
            {"notifyctl_daemon_progress_timestamp_seconds"},
            "2m",
        ),
    ],
)
def test_the_alerts_issue_15_asks_for(watch, alert, reads, wait):
    (rule,) = [rule for rule in rules() if rule["alert"] == alert]
    assert selectors(rule["expr"]) == reads, watch
    assert rule["for"] == wait, watch


def test_the_breaker_alert_fires_on_not_closed_so_probes_do_not_restart_its_clock():
    (rule,) = [rule for rule in rules() if rule["alert"] == "NotifyctlCircuitBreakerOpen"]
    assert 'state="closed"' in rule["expr"]
    assert rule["expr"].strip().endswith("== 0")


def test_the_5xx_alert_counts_only_5xx_answers():
    (rule,) = [rule for rule in rules() if rule["alert"] == "NotifyctlApiErrors"]
    (errors,) = [
        node
        for node in walk(promql.parse(rule["expr"]))
        if isinstance(node, promql.VectorSelector) and node.matchers.matchers
    ]
    (status,) = errors.matchers.matchers
    assert (status.name, status.op, status.value) == ("status", promql.MatchOp.Re, "5..")


# --- wiring: Prometheus loads the rules, here and in compose --------------------------------


def scrape_jobs() -> set[str]:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    return {job["job_name"] for job in config["scrape_configs"]}


def test_every_job_an_alert_or_panel_names_is_scraped():
    texts = [rule["expr"] for rule in rules()] + [expr for _, expr in dashboard_queries()]
    named = set()
    for text in texts:
        for node in walk(promql.parse(grafana_to_promql(text))):
            if isinstance(node, promql.VectorSelector):
                for matcher in node.matchers.matchers:
                    if matcher.name == "job" and matcher.op == promql.MatchOp.Equal:
                        named.add(matcher.value)
                    if matcher.name == "job" and matcher.op == promql.MatchOp.Re:
                        assert any(re.fullmatch(matcher.value, job) for job in scrape_jobs())
    assert named
    assert named <= scrape_jobs()


def test_prometheus_loads_the_alert_rules():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert [(PROMETHEUS / path).resolve() for path in config["rule_files"]] == [ALERTS]


def test_compose_runs_prometheus_with_its_config_and_the_rules():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["prometheus"]
    mounts = {}
    for volume in service["volumes"]:
        host, container = volume.split(":")[:2]
        if host.startswith("."):
            mounts[container] = (ROOT / host).resolve()

    def on_host(path: str) -> Path:
        for container, host in mounts.items():
            if path == container or path.startswith(container + "/"):
                return host / path[len(container) :].lstrip("/")
        raise AssertionError(f"{path} is not mounted from the repository")

    (flag,) = [arg for arg in service["command"] if arg.startswith("--config.file=")]
    config_path = flag.removeprefix("--config.file=")
    assert on_host(config_path) == PROMETHEUS / "prometheus.yml"
    config = yaml.safe_load(on_host(config_path).read_text())
    for rule_file in config["rule_files"]:
        assert on_host(str(Path(config_path).parent / rule_file)) == ALERTS


# --- the Grafana dashboard ---------------------------------------------------------------


@cache
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def grafana_to_promql(text: str) -> str:
    """A panel's query as Prometheus receives it: Grafana's interval variables filled in."""
    return re.sub(r"\$__(rate_interval|interval|range)\b", "5m", text)


def dashboard_queries() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def test_the_dashboard_is_a_grafana_dashboard():
    board = dashboard()
    assert board["uid"]
    assert board["title"]
    assert isinstance(board["schemaVersion"], int)
    (variable,) = board["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs
        assert len(refs) == len(set(refs)), panel["title"]


def test_the_dashboards_panels_fit_the_grid_without_overlapping():
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[x, y]}"
                cells[x, y] = panel["title"]


@pytest.mark.parametrize(("title", "expr"), dashboard_queries(), ids=lambda v: v[:40])
def test_every_panel_query_names_only_documented_metrics(title, expr):
    assert problems(grafana_to_promql(expr)) == [], title


def test_the_dashboard_shows_every_metric_of_ours():
    shown = set()
    for _, expr in dashboard_queries():
        for name in selectors(grafana_to_promql(expr)):
            if owner := series_of(name):
                shown.add(owner[0])
    ours = {name for name in documented() if name.startswith("notifyctl_")}
    assert len(ours) >= 13
    assert ours - shown == set()


def test_every_legend_names_a_label_its_query_keeps():
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = promql.parse(grafana_to_promql(target["expr"]))
            kept = output_labels(expr)
            kept = series_labels(expr) if kept is None else kept
            used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            assert used <= kept, f"{panel['title']}: {used - kept}"
