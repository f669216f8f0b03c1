#!/usr/bin/env bash
# `make demo`: a small workflow on the embedded default DB (default_balsamdb/).
set -euo pipefail
cd "$(dirname "$0")/.."
unset BALSAM_DB_PATH   # use the repository's default DB

echo "== balsam init default_balsamdb (idempotent: refreshes the schema, keeps data)"
balsam init default_balsamdb
echo
echo "== building the demo DAG with the Python API (demo/build_dag.py)"
python demo/build_dag.py
echo
echo "== the DAG before it runs: balsam ls --wf demo --tree"
balsam ls --wf demo --tree
echo
echo "== running it: balsam launcher --wf-filter demo --until-idle"
balsam launcher --wf-filter demo --until-idle
echo
echo "== after: balsam ls --wf demo"
balsam ls --wf demo
echo
echo "== results"
python demo/show_results.py
echo
echo "== the history of one job: balsam ls --history --name reduce --wf demo"
balsam ls --history --name reduce --wf demo
echo
echo "== balsam ls apps"
balsam ls apps
echo
echo "== balsam ls --by-states"
balsam ls --by-states
echo
echo "== balsam which"
balsam which
