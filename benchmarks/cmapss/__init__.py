"""C-MAPSS benchmarks: training (``__main__``), input selection (``inputs``), replay through the pipeline (``replay``)."""

from pathlib import Path

# ../shared/data/cmapss beside the checkout
DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cmapss"
