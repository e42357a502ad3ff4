"""The settings of a reader training run (:func:`qa.training.trainer.train_reader`).

Example:
    >>> TrainConfig(batch_size=32, time_budget_minutes=60)
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    """Settings of a training run; saved with checkpoints and the final model."""

    base_model: str = ""
    max_length: int = 384
    stride: int = 128
    max_query_length: int = 64
    batch_size: int = 16
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    epochs: float = 1.0
    time_budget_minutes: float | None = None
    negative_windows_per_question: int = 1
    holdout_fraction: float = 0.2
    seed: int = 13
    bf16: bool = True  # bf16 autocast
    bf16_weights: bool = False  # the model itself in bf16, fp32 master weights (qa.training.precision)
    checkpoint_minutes: float = 10.0
    # The embeddings and this many of the lowest transformer layers are not trained: no gradient is computed
    # below the lowest trained layer, so a step costs less (python -m benchmarks.train_speed --freeze N).
    frozen_layers: int = 0
    data: list[str] = field(default_factory=list)
    # SQuAD-format files whose questions are never trained on (e.g. the calibrator's fit set, so that the
    # calibrator sees the reader as it is on new questions).
    exclude: list[str] = field(default_factory=list)
    # Passage groups (JSON lines from qa.training.build_groups): when set, train with one softmax over each
    # question's retrieved passages (qa.training.shared_norm); batch_size then counts windows.
    groups: str = ""
    # Distillation (qa.training.distill, groups only): a trained reader folder whose span scores the student
    # also learns, with this weight against the gold positions' loss, at this temperature.
    teacher: str = ""
    distill_weight: float = 0.5
    temperature: float = 2.0
    teacher_on_unanswerable: bool = False  # also learn the teacher's scores on unanswerable questions
    stop_at_step: int | None = None  # stop once this many steps are done, leaving a checkpoint to resume
