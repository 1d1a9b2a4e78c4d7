#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Checks that every metric a Grafana dashboard queries exists in live
# Prometheus scrapes:
#
#   tests/dashboard.sh DASHBOARD.json URL...     # e.g. dovetail's and HAProxy's /metrics
#   tests/dashboard.sh --list DASHBOARD.json     # the metric names it queries
#
# The names come from every panel target's "expr" (rows included) and every
# templating query.  A name must be a sample name of a scrape as Prometheus
# stores it: a histogram is queried as NAME_bucket, NAME_sum or NAME_count, a
# counter with its _total; the family name of a "# TYPE" line alone is
# reported with the names to use.  A label matched to a literal value
# (code="5xx", state!="UP") must carry that value on some sample of the
# metric.  Prints one line per problem; exit 0 when there is none, 1 when
# there is, 2 when a scrape fails.
set -uo pipefail

list=0
if [ "${1:-}" = --list ]; then
	list=1
	shift
fi
if [ $# -lt 1 ] || { [ "$list" = 0 ] && [ $# -lt 2 ]; }; then
	echo "usage: tests/dashboard.sh DASHBOARD.json URL... | --list DASHBOARD.json" >&2
	exit 2
fi
dashboard=$1
shift
scrape=$(mktemp)
trap 'rm -f "$scrape"' EXIT
for url in "$@"; do
	if ! curl -fsS --max-time 10 "$url" >>"$scrape"; then
		echo "dashboard: cannot scrape $url" >&2
		exit 2
	fi
done

python3 - "$dashboard" "$scrape" "$list" <<'EOF'
import json
import re
import sys

dashboard, scrape, list_only = sys.argv[1], sys.argv[2], sys.argv[3] == "1"

# PromQL words that are not metric names when not followed by "(".
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right",
            "bool", "and", "or", "unless", "offset", "inf", "nan"}
IDENT = r"[a-zA-Z_:][a-zA-Z0-9_:]*"


def exprs(d):
    """Every query of the dashboard: panel targets and templating queries."""
    out = []

    def walk(panels):
        for p in panels or []:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append(t["expr"])
            walk(p.get("panels"))

    walk(d.get("panels"))
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if q:
            out.append(q)
    return out


def selectors(expr):
    """(metric, [(label, op, value)]) for every metric an expression names."""
    e = re.sub(r"\[[^\]]*\]", " ", expr)                    # ranges
    # by (...), without (...), on (...): label lists, not metrics.
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    found = []
    for m in re.finditer(r"(" + IDENT + r")?\s*(\{[^}]*\})?", e):
        name, braces = m.group(1), m.group(2)
        if not name and not braces:
            continue
        after = e[m.end():].lstrip()
        if name and not braces and after.startswith("("):
            continue                                        # a function
        if name and name in KEYWORDS:
            continue
        if name and re.match(r"^[0-9]", name):
            continue
        matchers = []
        if braces:
            for lm in re.finditer(r'(' + IDENT + r')\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', braces):
                matchers.append((lm.group(1), lm.group(2), lm.group(3)))
            if not name:
                name = next((v for l, o, v in matchers if l == "__name__" and o == "="), None)
        if name:
            found.append((name, matchers))
    return found


def strip_strings(expr):
    # Keep label matchers' strings (in braces) but drop string arguments
    # such as label_replace's, which hold no metric names.
    parts = re.split(r"(\{[^}]*\})", expr)
    return "".join(p if p.startswith("{") else re.sub(r'"(?:[^"\\]|\\.)*"', '""', p)
                   for p in parts)


with open(dashboard) as f:
    d = json.load(f)

wanted = {}
for x in exprs(d):
    x = re.sub(r"label_values\(\s*(" + IDENT + r")\s*,\s*" + IDENT + r"\s*\)", r"\1", x)
    for name, matchers in selectors(strip_strings(x)):
        wanted.setdefault(name, []).extend(matchers)

if list_only:
    print("\n".join(sorted(wanted)))
    sys.exit(0)

samples = {}          # name -> list of label dicts
types = {}            # family -> type
with open(scrape) as f:
    for line in f:
        line = line.rstrip("\n")
        if line.startswith("# TYPE "):
            w = line.split()
            if len(w) >= 4:
                types[w[2]] = w[3]
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"(" + IDENT + r")(\{([^}]*)\})?\s", line)
        if not m:
            continue
        labels = dict(re.findall(r'(' + IDENT + r')="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        samples.setdefault(m.group(1), []).append(labels)

problems = 0
for name in sorted(wanted):
    if name not in samples:
        problems += 1
        kind = types.get(name)
        if kind == "histogram":
            hint = ": a histogram, queried as %s_bucket, _sum or _count" % name
        elif kind == "summary":
            hint = ": a summary, queried as %s, %s_sum or _count" % (name, name)
        elif name + "_total" in samples:
            hint = ": a counter, queried as %s_total" % name
        else:
            hint = ""
        print("dashboard: %s is in no scrape%s" % (name, hint))
        continue
    for label, op, value in wanted[name]:
        if "$" in value or label == "__name__":
            continue
        have = {s.get(label) for s in samples[name]}
        if op in ("=", "!=") and value not in have:
            problems += 1
            print('dashboard: %s{%s%s"%s"}: no sample has %s="%s" (it has %s)' % (
                name, label, op, value, label, value,
                ", ".join(sorted(repr(h) for h in have if h is not None)) or "no such label"))
        elif op in ("=~", "!~") and not any(
                h is not None and re.fullmatch(value, h) for h in have):
            problems += 1
            print('dashboard: %s{%s%s"%s"}: no value of %s matches' % (
                name, label, op, value, label))
print("dashboard: %d metrics queried, %d problems" % (len(wanted), problems))
sys.exit(1 if problems else 0)
EOF
