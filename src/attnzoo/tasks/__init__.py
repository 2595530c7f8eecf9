"""Quality tasks: what attention mechanisms can learn, scored side by side (``attnzoo eval TASK``).

:mod:`~attnzoo.tasks.mqar` is Zoology's multi-query associative recall generator; the task classes wrap a
data set and a model family for :func:`~attnzoo.tasks.harness.evaluate_mixers`: :class:`MQARTask`,
:class:`AustenLMTask` (byte-level language modelling), :class:`FashionMNISTTask` (a small ViT),
:class:`PixelMNISTTask` (784-pixel sequences), :class:`FashionMNISTModelsTask` (the registered backbones) and
:class:`SortingTask` (sorting numbers with a Pointer Network).
:data:`TASKS` maps the CLI names to the classes.
"""

from attnzoo.tasks.austen_lm import AustenLMTask
from attnzoo.tasks.fashion_mnist import FashionMNISTTask, PixelMNISTTask
from attnzoo.tasks.fashion_mnist_models import FashionMNISTModelsTask
from attnzoo.tasks.harness import QualityTask, evaluate_mixers
from attnzoo.tasks.mqar import (
    CPU_SETTINGS,
    IGNORE_INDEX,
    PAPER_SETTINGS,
    DataLeakageError,
    MQARConfig,
    check_no_leakage,
    cpu_configs,
    multiquery_ar,
    paper_configs,
    query_accuracy,
)
from attnzoo.tasks.mqar_eval import MQARTask
from attnzoo.tasks.sorting import SortingTask

TASKS: dict[str, type] = {task.name: task for task in (MQARTask, AustenLMTask, FashionMNISTTask, PixelMNISTTask,
                                                       SortingTask)}
"""CLI task name -> task class (a dataclass of its settings)."""

MODEL_TASKS: dict[str, type] = {FashionMNISTTask.name: FashionMNISTModelsTask}
"""CLI task name -> the task that trains registered models (``attnzoo.create_model``) instead of the task's own
model around each mixer: ``attnzoo eval fashion-mnist --models a,b,c``."""

__all__ = ["CPU_SETTINGS", "IGNORE_INDEX", "MODEL_TASKS", "PAPER_SETTINGS", "TASKS", "AustenLMTask",
           "DataLeakageError", "FashionMNISTModelsTask", "FashionMNISTTask", "MQARConfig", "MQARTask",
           "PixelMNISTTask", "QualityTask", "SortingTask",
           "check_no_leakage", "cpu_configs", "evaluate_mixers", "multiquery_ar", "paper_configs", "query_accuracy"]
