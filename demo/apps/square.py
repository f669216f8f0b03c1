"""Square side number argv[1] of sides.dat into area<N>.dat."""
import sys
from pathlib import Path

index = int(sys.argv[1])
side = float(Path("sides.dat").read_text().split()[index])
Path(f"area{index}.dat").write_text(f"{side * side}\n")
print(f"side {side} -> area {side * side}")
