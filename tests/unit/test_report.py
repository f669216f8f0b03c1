"""``balsam report``, in-process: each report as a table, as JSON and as a
plot, and the bad inputs (one line, a usage exit code, nothing written)."""

import datetime
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from balsam.core.outputs import run_output_name
from tests.unit.test_analytics import T0, history, launcher, prepared
from tests.unit.test_cli import assert_one_line_error
from tests.unit.test_plots import PNG_MAGIC

UTC = datetime.timezone.utc


@pytest.fixture
def recent(make_job):
    """Around now: two jobs ran and finished, one runs, one failed (with output)."""
    now = datetime.datetime.now(UTC)
    ago = lambda s: (now - datetime.timedelta(seconds=s) - T0).total_seconds()  # noqa: E731  (seconds after T0)
    done1, done2, running = (make_job(name=n, workflow="w1") for n in ("done1", "done2", "running"))
    failed = make_job(name="broken sim", workflow="w2")
    history(done1, *prepared(ago(300)), (ago(300), "PREPROCESSED", "RUNNING"), (ago(200), "RUNNING", "RUN_DONE"),
            (ago(199), "RUN_DONE", "POSTPROCESSED"), (ago(198), "POSTPROCESSED", "JOB_FINISHED"))
    history(done2, *prepared(ago(250)), (ago(250), "PREPROCESSED", "RUNNING"), (ago(100), "RUNNING", "RUN_DONE"),
            (ago(99), "RUN_DONE", "POSTPROCESSED"), (ago(98), "POSTPROCESSED", "JOB_FINISHED"))
    history(running, *prepared(ago(90)), (ago(90), "PREPROCESSED", "RUNNING"))
    # Over a minute ago: its run must not overlap the current minute, whatever the second now is.
    history(failed, *prepared(ago(130)), (ago(130), "PREPROCESSED", "RUNNING"),
            (ago(120), "RUNNING", "RUN_ERROR", "exit code 2: oops"), (ago(119), "RUN_ERROR", "FAILED", "no error handler"))
    output = Path(failed.working_directory) / run_output_name(failed.name)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("starting\ncomputing\nTraceback: it broke\n")
    launcher("node1:99:abcdef", 4, started=ago(400), last_seen=ago(1))
    return {"done1": done1, "failed": failed}


def test_states_table_and_json(cli, recent):
    result = cli("report", "states")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.split()[:2] == ["JOB_FINISHED", "2"] for line in lines)
    assert any(line.split()[:2] == ["total", "4"] for line in lines)
    assert any(line.split()[:5] == ["w1", "3", "2", "0", "66.7%"] for line in lines)
    data = json.loads(cli("report", "states", "--json", "--wf", "w2").output)
    assert data["states"]["FAILED"] == 1 and sum(data["states"].values()) == 1 and len(data["states"]) == 15
    assert data["workflows"] == [{"workflow": "w2", "total": 1, "finished": 0, "failed": 1, "percent_finished": 0.0,
                                  "by_state": data["states"]}]


def test_throughput_table_and_json(cli, recent):
    data = json.loads(cli("report", "throughput", "--since", "10m", "--json").output)
    assert data["unit"] == "jobs/min" and data["bucket_seconds"] == 60 and data["since"] == "10m"
    assert len(data["points"]) in (10, 11)
    # One-minute buckets: each value is the jobs finished in that minute.
    assert sum(p["value"] for p in data["points"]) == pytest.approx(2)
    assert datetime.datetime.fromisoformat(data["points"][0]["time"]).tzinfo is not None
    text = cli("report", "throughput").output
    assert text.startswith("Jobs finished per minute, 1 min buckets, since ") and "jobs/min" in text


def test_utilization_shows_capacity_and_use(cli, recent):
    result = cli("report", "utilization", "--since", "10m")
    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[1].split()
    assert header[-3:] == ["jobs", "capacity", "used"]
    data = json.loads(cli("report", "utilization", "--since", "10m", "--json").output)
    values = [p["value"] for p in data["points"]]
    assert max(values) <= 2.0 and values[-1] == pytest.approx(1.0, abs=0.02)  # only "running" runs at the end
    assert data["points"][-1]["capacity"] == pytest.approx(4.0, abs=0.1)
    assert data["points"][0]["capacity"] is None  # before the launcher started


def test_failures_show_the_message_and_the_output_tail(cli, recent):
    result = cli("report", "failures")
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"FAILED  [broken sim | {recent['failed'].short_id}]  workflow w2" in out
    assert "  no error handler" in out and "  | Traceback: it broke" in out
    data = json.loads(cli("report", "failures", "--json", "--lines", "2").output)
    assert [(f["name"], f["state"], f["output_tail"]) for f in data] == [
        ("broken sim", "FAILED", ["computing", "Traceback: it broke"])]
    assert data[0]["job_id"] == recent["failed"].pk.hex
    assert cli("report", "failures", "--since", "10s").output.strip() == "No failed jobs"


@pytest.mark.parametrize("what", ["states", "throughput", "utilization"])
@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_plots_are_written_as_real_images(cli, recent, tmp_path, what, suffix):
    path = tmp_path / f"{what}.{suffix}"
    result = cli("report", what, "--plot", path)
    assert result.exit_code == 0, result.output
    assert f"Plot written to {path}" in result.stderr
    data = path.read_bytes()
    if suffix == "png":
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
    else:
        assert ET.fromstring(data).tag.endswith("svg")


def test_json_and_plot_together_keep_stdout_json(cli, recent, tmp_path):
    result = cli("report", "throughput", "--json", "--plot", tmp_path / "t.png")
    assert json.loads(result.stdout)["points"] and (tmp_path / "t.png").exists()


def test_an_unknown_workflow_is_an_empty_result_with_a_note(cli, recent):
    result = cli("report", "failures", "--wf", "nope", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    assert result.stderr.strip() == "Note: no jobs in workflow 'nope' (workflows: w1, w2)"
    states = cli("report", "states", "--wf", "nope")
    assert states.exit_code == 0 and states.output.splitlines()[-1].split() == ["total", "0"]
    series = json.loads(cli("report", "throughput", "--wf", "nope", "--json").stdout)
    assert series["points"] == []


@pytest.mark.parametrize("args, fragment, code", [
    (["throughput", "--since", "xyz"], "--since: expected a time window like 30m, 2h, 1d or all, not 'xyz'", 2),
    (["utilization", "--since", "-2h"], "--since: expected", 2),
    (["states", "--plot", "out.jpg"], "--plot: the file name must end in .png or .svg, not 'out.jpg'", 2),
    (["failures", "--plot", "out.png"], "the failures report has no plot", 2),
    (["throughput", "--plot", "/no/such/dir/out.png"], "cannot write the plot to /no/such/dir/out.png", 1),
    (["failures", "--limit", "0"], "--limit must be a number from 1 to 10000", 2),
    (["failures", "--lines", "-1"], "--lines must be a number from 0 to 1000", 2),
    (["nothing"], "Invalid value for", 2),
])
def test_bad_input_is_one_line(cli, recent, snapshot, args, fragment, code):
    before = snapshot()
    assert_one_line_error(cli("report", *args), fragment, code=code)
    assert snapshot() == before
