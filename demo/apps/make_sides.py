"""Write three side lengths to sides.dat."""
from pathlib import Path

Path("sides.dat").write_text("3\n4\n5\n")
print("wrote sides.dat")
