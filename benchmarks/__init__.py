"""Throughput of backprop's training step and inference, across backends and against peers."""
