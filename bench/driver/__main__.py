# python3 -m driver (scripts/bench.sh puts bench/ on PYTHONPATH).
from .main import main

main()
