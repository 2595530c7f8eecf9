"""Optional peer libraries as benchmark cases, imported lazily: the library never needs them.

Each adapter converts our canonical inputs to the peer's layout outside the timed region and back for the
error check, and turns a missing package or a missing capability into a skip reason.
"""

from attnzoo.bench.peers.local_attention import local_attention_case
from attnzoo.bench.peers.natten import natten_case
from attnzoo.bench.peers.routing_transformer import routing_transformer_case

__all__ = ["local_attention_case", "natten_case", "routing_transformer_case"]
