"""Feature-map linear attention (Katharopoulos et al. 2020, arXiv 2006.16236): reference, chunked and recurrent
forms with explicit ``initial_state`` / ``final_state``; the causal forms are lightning attention's without decay
(:mod:`attnzoo.ops.lightning`)."""

from attnzoo.ops.linear.feature_maps import FEATURE_MAPS, random_projection
from attnzoo.ops.linear.feature_linear import linear_attention

__all__ = ["FEATURE_MAPS", "linear_attention", "random_projection"]
