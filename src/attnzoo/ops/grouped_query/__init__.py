"""Grouped-query attention (arXiv 2305.13245) and its limits MHA and MQA (arXiv 1911.02150): no op of its own, the
registered variant runs :func:`attnzoo.ops.softmax_attention` with ``enable_gqa`` (see ``registration.py``)."""

__all__: list[str] = []
