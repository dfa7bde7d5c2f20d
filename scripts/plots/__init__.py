"""Figures for the lab report and the before/after comparison.

Every function takes loaded runs (resultfiles.Run), writes PNG and SVG next to
each other and returns the PNG path, or None when the inputs hold nothing
to draw. The same transport has the same colour in every figure. By job:
base (what they share), by_size, by_layer and by_condition.
"""
from scripts.plots.by_condition import deltas, drift, knob_ratios, load_vs_rate, long_runs
from scripts.plots.by_layer import ladder, layers, netns_latency, web_latency
from scripts.plots.by_size import (connection_rate, cpu_per_message, latency_vs_size, pairs_scaling,
                                   percentile_curves, ratio_vs_size, throughput_vs_size)

__all__ = ["connection_rate", "cpu_per_message", "deltas", "drift", "knob_ratios", "ladder", "latency_vs_size",
           "layers", "load_vs_rate", "long_runs", "netns_latency", "pairs_scaling", "percentile_curves",
           "ratio_vs_size", "throughput_vs_size", "web_latency"]
