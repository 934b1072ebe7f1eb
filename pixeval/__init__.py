"""pixeval: exact, fast, imbalance-aware pixel-level evaluation of visual anomaly detection."""

__version__ = "0.1.0"
