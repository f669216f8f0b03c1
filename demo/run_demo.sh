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
echo "== balsam ls --wf demo --tree"
balsam ls --wf demo --tree
echo
echo "== balsam ls --wf demo"
balsam ls --wf demo
echo
echo "== balsam ls apps"
balsam ls apps
echo
echo "== balsam ls --by-states"
balsam ls --by-states
echo
echo "== balsam which"
balsam which
