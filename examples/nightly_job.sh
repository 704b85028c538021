#!/usr/bin/env bash
# A nightly monitoring job, as a scheduler (cron, Airflow, a Kubernetes CronJob) would run it.
#
# What it shows: a stored reference state, windowed nightly states (--time ts --window 1d --by region),
# the week merged from those states, Prometheus text for a node_exporter textfile collector, a drift
# gate (--fail-if) whose breach is reported without stopping the job, and the HTML reports of the week
# and of the drift, one self-contained file each.
#
# The data is a week of synthetic daily files (streamdiv.synthetic.write_days) in which the `us` model
# grows overconfident from 2026-11-29 on; the gate catches it on the last night, in `us` alone.
#
# Run it:
#     bash examples/nightly_job.sh /tmp/nightly            # 100,000 rows a day, about a minute
#     bash examples/nightly_job.sh /tmp/nightly --quick    # 3,000 rows a day (or STREAMDIV_EXAMPLE_QUICK=1)
#
# Exit status: 0 when the drift gate holds, 1 when it is breached (the reports are written either way),
# anything else when a step failed.
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: bash examples/nightly_job.sh WORK_DIRECTORY [--quick]" >&2
    exit 2
fi
work="$1"
quick="${STREAMDIV_EXAMPLE_QUICK:-0}"
if [[ "${2:-}" == "--quick" ]]; then
    quick=1
fi
rows_per_day=100000
if [[ "$quick" == "1" ]]; then
    rows_per_day=3000
fi
python="${PYTHON:-python}"   # the interpreter that has streamdiv installed

mkdir -p "$work/states"
cd "$work"

# --- The data: seven daily Parquet files, week/day-2026-11-24.parquet ... day-2026-11-30.parquet
"$python" -c "from streamdiv.synthetic import write_days; write_days('week', rows_per_day=$rows_per_day)"
days=(week/day-*.parquet)
echo "wrote ${#days[@]} daily files of $rows_per_day rows in $work/week"

# --- Once: a reference from a period we trust (the first two days), kept as a state (sums only)
streamdiv score "${days[0]}" "${days[1]}" --probs probs --labels label --by region \
    --save-state reference.state -o reference.json
echo "reference: ${days[0]} and ${days[1]} -> reference.state ($(wc -c < reference.state) bytes)"

# --- Every night: score the day in daily windows and keep its state. Here the later five nights, in turn.
for day in "${days[@]:2}"; do
    name="$(basename "$day" .parquet)"
    streamdiv score "$day" --probs probs --labels label --time ts --window 1d --by region \
        --save-state "states/$name.state" -o "states/$name.json"
done
echo "nightly states: $(ls states/*.state | wc -l) in $work/states"

# --- The week so far, merged from the nightly states (equal to one pass over the five files)
streamdiv merge states/*.state --save-state week.state --format table

# --- Prometheus text for node_exporter's textfile collector: the latest window only, labelled with its start
streamdiv merge week.state --format prometheus -o streamdiv.prom
echo "streamdiv.prom (the latest window's ECE):"
grep '^streamdiv_ece_ratio' streamdiv.prom

# --- The gate: tonight's file against the reference, each region against the same region of the reference.
# Exit status 1 means a condition held: report it and go on, so that the reports are still written.
tonight="${days[-1]}"
gate=0
streamdiv drift --reference reference.state "$tonight" --probs probs --labels label --by region \
    --fail-if 'confidence_psi>0.1' --fail-if 'ece.change>0.05' --format html -o drift.html || gate=$?
case "$gate" in
    0) echo "drift gate: no condition holds for $tonight" ;;
    1) echo "drift gate: BREACH on $tonight (streamdiv named the conditions that held on stderr); drift.html has the details" ;;
    *) echo "drift gate: streamdiv drift failed with status $gate" >&2; exit "$gate" ;;
esac

# --- The HTML report of the week: one self-contained file, fit to attach to an e-mail
streamdiv merge week.state --format html -o report.html
echo "reports: $work/report.html (the week), $work/drift.html (tonight against the reference)"

# A scheduler marks the run failed when the gate was breached, after every report was written.
exit "$gate"
