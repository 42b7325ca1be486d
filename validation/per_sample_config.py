"""Config of the per-sample curvature step (``validation.experiments.per_sample``) and of the sample-spike
model of step 5 (``sample_spikes``, docs/theory.md §1e).

Until ``RunConfig`` has a ``per_sample`` section, the pipeline reads ``getattr(config, "per_sample",
DEFAULT)``; :func:`per_sample_config` is that lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT", "METHODS", "PerSampleConfig", "per_sample_config"]

METHODS = ("orthogonal", "subordinated", "exact")


def _fail(name: str, accepted: str, value: object) -> ValueError:
    return ValueError(f"config field {name!r} must be {accepted}, got {value!r}")


def _int(value: object, name: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _fail(name, f"an integer >= {low}", value)


@dataclass(frozen=True)
class PerSampleConfig:
    """Per-sample statistics of H_i and G_i on ``num_samples`` samples drawn (seeded) from the data set
    OUTSIDE the pool (disjoint from every sweep batch; fewer if fewer exist), ``lanczos_steps`` Lanczos steps
    and ``trace_probes`` Hutchinson probes per sample, in chunks of ``chunk_size``; the sample-spike
    prediction resamples ``n_batches`` batches per B (``method`` of ``rmt.sample_spikes.
    predict_batch_extremal``) with the top ``n_spikes`` eigenvalues of H / G as the shared spikes."""

    num_samples: int = 128
    lanczos_steps: int = 20
    trace_probes: int = 4
    chunk_size: int = 16
    n_batches: int = 1000
    n_spikes: int = 1
    method: str = "orthogonal"

    def validate(self, prefix: str = "per_sample") -> PerSampleConfig:
        _int(self.num_samples, f"{prefix}.num_samples", 2)
        _int(self.lanczos_steps, f"{prefix}.lanczos_steps", 2)
        _int(self.trace_probes, f"{prefix}.trace_probes", 1)
        _int(self.chunk_size, f"{prefix}.chunk_size", 1)
        _int(self.n_batches, f"{prefix}.n_batches", 2)
        _int(self.n_spikes, f"{prefix}.n_spikes", 1)
        if self.method not in METHODS:
            raise _fail(f"{prefix}.method", f"one of {list(METHODS)}", self.method)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_samples": self.num_samples,
            "lanczos_steps": self.lanczos_steps,
            "trace_probes": self.trace_probes,
            "chunk_size": self.chunk_size,
            "n_batches": self.n_batches,
            "n_spikes": self.n_spikes,
            "method": self.method,
        }


DEFAULT = PerSampleConfig()


def per_sample_config(config: Any) -> PerSampleConfig:
    """The run's :class:`PerSampleConfig`: ``config.per_sample`` when the RunConfig has it, else
    :data:`DEFAULT`."""
    cfg = getattr(config, "per_sample", DEFAULT)
    if not isinstance(cfg, PerSampleConfig):
        raise TypeError(f"config.per_sample must be a PerSampleConfig, got {type(cfg).__name__}")
    return cfg.validate()
