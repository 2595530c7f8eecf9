"""Adapters that put attnzoo's registered ops inside other libraries' models: :mod:`.transformers` (Hugging Face,
through its ``AttentionInterface``) and :mod:`.timm` (timm's ``Attention`` blocks). Each imports its library only
when used (extra ``attnzoo[hf]`` for transformers)."""
