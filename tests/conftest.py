import sys
from pathlib import Path

# Tests import the packages from the checkout (the venv also has them installed editable).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
