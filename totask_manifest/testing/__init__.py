"""Real servers for tests and benchmarks: a Synapse contract server and a plain file server.

Both are aiohttp applications on 127.0.0.1 running on a background thread (or in their own
process for benchmarks); they record every request so tests can assert what reached the wire.
"""

from .file_server import FileServer
from .recording import Fault, Recorded
from .synapse_server import SynapseServer

__all__ = ["Fault", "FileServer", "Recorded", "SynapseServer"]
