"""Print what the demo workflow computed, read from the jobs' working directories."""

from pathlib import Path

import balsam.launcher.dag as dag

for job in dag.BalsamJob.objects.filter(workflow="demo").order_by("name"):
    outputs = sorted(p.name for p in Path(job.working_directory).glob("*.dat") if not p.is_symlink())
    print(f"{job.name:<11} {job.state:<13} wrote {', '.join(outputs) or '-'}")
reduce_job = dag.BalsamJob.objects.get(workflow="demo", name="reduce")
print(f"total area of the three squares (3² + 4² + 5²): {reduce_job.read_file_in_workdir('total.dat').strip()}")
