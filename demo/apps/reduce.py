"""Sum every area*.dat in the working directory into total.dat."""
from pathlib import Path

total = sum(float(p.read_text()) for p in sorted(Path(".").glob("area*.dat")))
Path("total.dat").write_text(f"{total}\n")
print(f"total area {total}")
