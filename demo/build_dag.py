"""Build the demo workflow: make_sides -> 3 x square -> reduce (the launcher runs it).

make_sides writes side lengths, each square job squares one of them, and
reduce adds up the areas. Re-running replaces the previous demo jobs.
"""

import sys
from pathlib import Path

import balsam.launcher.dag as dag
from balsam import api

HERE = Path(__file__).resolve().parent / "apps"
APPS = {
    "make_sides": "writes sides.dat with three side lengths",
    "square": "squares the side length given as argument",
    "reduce": "sums the areas written by its parents",
}

old = dag.BalsamJob.objects.filter(workflow="demo")
if old.exists():
    print(f"removing {old.count()} jobs of the previous demo run")
    old.delete()

for name, description in APPS.items():
    if not dag.ApplicationDefinition.objects.filter(name=name).exists():
        api.add_app(name, f"{sys.executable} {HERE / (name + '.py')}", description=description)

sides = dag.add_job(name="make_sides", workflow="demo", application="make_sides")
reduce_job = dag.add_job(name="reduce", workflow="demo", application="reduce", input_files="area*.dat")
for i in range(3):
    square = dag.add_job(
        name=f"square{i}", workflow="demo", application="square", args=str(i), input_files="sides.dat"
    )
    dag.add_dependency(sides, square)
    dag.add_dependency(square, reduce_job)

print(f"added {dag.BalsamJob.objects.filter(workflow='demo').count()} jobs in workflow 'demo'")
print(f"reduce waits on {reduce_job.parents.count()} parents; its directory: {reduce_job.working_directory}")
