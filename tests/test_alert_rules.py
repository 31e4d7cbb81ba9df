"""The shipped alert rules (packaging/prometheus/pgcohere-rules.yml) are valid for
Prometheus, each one fires and stays silent where its promtool unit tests say, and each
one carries severity, summary, description and a runbook that is a real section of
docs/operations.md (with the rollback for the critical ones)."""
import os
import re
import shutil
import subprocess

import pytest
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
RULES_DIR = os.path.join(REPO, "packaging", "prometheus")
RULES = os.path.join(RULES_DIR, "pgcohere-rules.yml")
RULE_TESTS = os.path.join(RULES_DIR, "pgcohere-rules.test.yml")
OPERATIONS = os.path.join(REPO, "docs", "operations.md")

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None,
                                reason="promtool missing (Debian package prometheus; scripts/install-deps.sh)")


def alerts():
    with open(RULES) as f:
        doc = yaml.safe_load(f)
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def anchor(heading):
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def sections():
    """{anchor: text of the section up to the next heading of any level}."""
    out, current, fenced = {}, None, False
    with open(OPERATIONS) as f:
        for line in f:
            if line.startswith("```"):
                fenced = not fenced
            m = None if fenced else re.match(r"^#+ (.*)", line)
            if m:
                current = anchor(m.group(1))
                out[current] = ""
            elif current:
                out[current] += line
    return out


def test_promtool_accepts_the_rules_file():
    r = subprocess.run(["promtool", "check", "rules", RULES], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_alert_fires_and_stays_silent_as_its_unit_tests_say():
    r = subprocess.run(["promtool", "test", "rules", RULE_TESTS], cwd=RULES_DIR, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_alert_has_a_unit_test_where_it_fires():
    with open(RULE_TESTS) as f:
        tests = yaml.safe_load(f)["tests"]
    fired = {case["alertname"] for t in tests for case in t.get("alert_rule_test", []) if case.get("exp_alerts")}
    missing = sorted({a["alert"] for a in alerts()} - fired)
    assert not missing, f"alerts without a firing case in {RULE_TESTS}: {missing}"


def test_the_users_thresholds_are_in_the_rules():
    exprs = {a["alert"]: " ".join(a["expr"].split()) for a in alerts()}
    assert "histogram_quantile(0.95" in exprs["PgcohereQueueWaitCritical"] and exprs["PgcohereQueueWaitCritical"].endswith("> 1000")
    assert exprs["PgcohereQueueWaitHigh"].endswith("> 200")
    assert "server_connects_total" in exprs["PgcohereBackendConnectErrors"] and "> 0.01" in exprs["PgcohereBackendConnectErrors"]
    assert "> 1.5" in exprs["PgcohereTransactionDurationAboveBaseline"]
    assert "< 0.5" in exprs["PgcohereCacheHitRatioLow"]
    assert exprs["PgcohereRedisMemoryHigh"].endswith("> 0.8")
    assert exprs["PgcoherePoolUtilisationHigh"].endswith("> 0.9")


def test_every_alert_has_severity_summary_description_and_a_runbook_section():
    known = sections()
    for a in alerts():
        name = a["alert"]
        assert a.get("labels", {}).get("severity") in ("critical", "warning"), name
        notes = a.get("annotations", {})
        for key in ("summary", "description", "runbook"):
            assert notes.get(key), f"{name}: no {key}"
        path, _, section = notes["runbook"].partition("#")
        assert path == "docs/operations.md", f"{name}: runbook {notes['runbook']}"
        assert section in known, f"{name}: docs/operations.md has no section #{section}"
        assert known[section].strip(), f"{name}: section #{section} is empty"


def test_critical_alerts_lead_to_the_rollback():
    known = sections()
    assert "DATABASE_URL" in known.get("rollback-plan", ""), "docs/operations.md has no rollback plan with DATABASE_URL"
    for a in alerts():
        if a["labels"]["severity"] != "critical":
            continue
        section = a["annotations"]["runbook"].partition("#")[2]
        assert "DATABASE_URL" in a["annotations"]["description"], a["alert"]
        assert "#rollback-plan" in known[section], f"{a['alert']}: section #{section} does not link the rollback plan"
