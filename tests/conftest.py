import sys
from pathlib import Path

# Let tests import their helpers (tests/pythons.py and friends) as plain modules.
sys.path.insert(0, str(Path(__file__).resolve().parent))
