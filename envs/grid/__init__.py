"""SparseGrid: a sparse-reward grid for measuring exploration bonuses (``sparse_grid.py``)."""
