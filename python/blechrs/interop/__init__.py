"""Other tools' formats, written from (and read into) blechrs's own files: NWB, SpikeInterface.

Each module imports its optional library (pynwb, spikeinterface) inside the functions that need
it, so the base install never needs them; a missing extra is a one-line error saying which
``pip install 'blechrs[...]'`` to run.
"""
