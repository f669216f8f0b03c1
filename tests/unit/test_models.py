"""Model helpers that only read (the model writes are in
tests/integration/test_model_writes.py, run with both write clients)."""

from pathlib import Path


# Kept here: the job is only set-up; the asserts are on read-only helpers.
def test_compat_helpers(db, make_job):
    job = make_job(name="h", num_nodes=2, ranks_per_node=4)
    assert job.num_ranks == 8
    assert job.cute_id == f"[h | {job.job_id.hex[:8]}]"
    assert job.get_application().name == "hello"
    Path(job.create_working_path(), "out.txt").write_text("42")
    assert job.read_file_in_workdir("out.txt") == "42"
