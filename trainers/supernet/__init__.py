"""A pre-trained BERT as a slicing weight-sharing super-network, its sub-networks and their export."""
from search_spaces.sub_network import IllegalSubNetworkError, SubNetwork
from trainers.supernet.checkpoint import CheckpointError
from trainers.supernet.model import SuperNetwork
from trainers.supernet.standalone import CompactBert, CompactBertConfig, Encoded

__all__ = ["CheckpointError", "CompactBert", "CompactBertConfig", "Encoded", "IllegalSubNetworkError", "SubNetwork", "SuperNetwork"]
