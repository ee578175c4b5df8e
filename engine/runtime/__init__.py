"""Running trained runs for real: devices (device.py), checkpoints and rebuilding a run
(checkpoint.py), the early-exit cascade (cascade.py, cuda_graphs.py), measured latency
(latency.py) and the single-input demo (demo.py)."""
