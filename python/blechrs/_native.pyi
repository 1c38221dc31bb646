__version__: str

class SampleSource:
    """A readable recording handed to the streaming engine (from an Intan folder or an array)."""
    @property
    def n_channels(self) -> int: ...
    @property
    def n_samples(self) -> int: ...
