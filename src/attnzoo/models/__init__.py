"""Small models built around the registry's token mixers: a causal language model
(:mod:`~attnzoo.models.language_model`), a Vision Transformer (:mod:`~attnzoo.models.vision_transformer`),
a sequence classifier (:mod:`~attnzoo.models.sequence_classifier`), a Pointer Network
(:mod:`~attnzoo.models.pointer_network`) and the Block Transformer (:mod:`~attnzoo.models.block_transformer`);
:mod:`~attnzoo.models.mixers` builds their mixers by name; :mod:`~attnzoo.models.registry` registers whole vision
backbones (:mod:`~attnzoo.models.backbones`) for :func:`attnzoo.create_model`."""

from attnzoo.layers.softmax import CausalSoftmaxAttention, SoftmaxAttention
from attnzoo.models.block import Block
from attnzoo.models.block_transformer import BlockTransformer
from attnzoo.models.language_model import CausalLanguageModel
from attnzoo.models.mixers import SOFTMAX, MixerBuilder, mixer_factory, usable_mixers
from attnzoo.models.pointer_network import PointerNetwork
from attnzoo.models.registry import create_model, list_models, register_model
from attnzoo.models.sequence_classifier import SequenceClassifier
from attnzoo.models.vision_transformer import VisionTransformer

__all__ = ["SOFTMAX", "Block", "BlockTransformer", "CausalLanguageModel", "CausalSoftmaxAttention", "MixerBuilder",
           "PointerNetwork", "SequenceClassifier", "SoftmaxAttention", "VisionTransformer", "create_model",
           "list_models", "mixer_factory", "register_model", "usable_mixers"]
