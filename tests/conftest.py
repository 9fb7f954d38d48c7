"""Test-wide settings: one intra-op thread.

The tests run many small torch ops; on a 2-core CI machine torch's thread pool costs
more than it gains there (a recipe run measured 2m48s with 2 threads, ~30 s with 1).
"""

import torch

torch.set_num_threads(1)
