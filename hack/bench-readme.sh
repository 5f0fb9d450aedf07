#!/usr/bin/env bash
# bench-readme.sh [DIR] - put the last `make bench` report (DIR/report.md, default target/bench)
# into README.md between the bench markers, so the README shows the figures of a real run.
set -euo pipefail
cd "$(dirname "$0")/.."
report="${1:-target/bench}/report.md"
[[ -f "$report" ]] || { echo "no $report: run make bench first" >&2; exit 1; }
python3 - "$report" <<'PY'
import re, sys
report = open(sys.argv[1]).read().replace("## Benchmark\n\n", "", 1).strip()
readme = open("README.md").read()
new = "<!-- bench:begin -->\n" + report + "\n<!-- bench:end -->"
readme, n = re.subn(r"<!-- bench:begin -->.*?<!-- bench:end -->", lambda _: new, readme, flags=re.S)
if n != 1:
    sys.exit("README.md lacks the bench markers")
open("README.md", "w").write(readme)
PY
echo "README.md: figures from $report"
