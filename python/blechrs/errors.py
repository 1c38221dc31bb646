"""The one error base class of blechrs.

Every problem a user can cause and fix (a bad parameter, file, header, layout or sort file) is a
:class:`BlechrsError`: the CLI prints it as one line. Anything else is a bug and gets a traceback.
The subclasses also derive from the built-in error a caller would expect (``ValueError``, ...).
"""

from __future__ import annotations


class BlechrsError(Exception):
    """A problem with the user's input or files, said in one line that names the file or value."""


class ParamsError(BlechrsError, ValueError):
    """A parameter (``.params`` key or argument) with a bad type or value."""


class RecordingError(BlechrsError, ValueError):
    """A recording folder or file that cannot be read as it is."""


class LayoutError(BlechrsError, ValueError):
    """An electrode layout or ``.info`` file that cannot be used."""


class TrialsError(BlechrsError, ValueError):
    """Trial settings (``.info``), a trial table or digital inputs that cannot be used."""


class SortFileError(BlechrsError, ValueError):
    """A sort file that cannot be read at all (bad rows are reported row by row instead)."""


class PipelineError(BlechrsError, RuntimeError):
    """A stage asked for in the wrong order or on a folder that is not ready for it."""


class WorkFileError(BlechrsError, ValueError):
    """A work file under ``blechrs_work/`` that cannot be read (delete it, or re-run with ``--force``)."""


class PhyError(BlechrsError, ValueError):
    """A phy folder that cannot be exported to or imported from as it is (e.g. a merge of units of
    two electrodes, a cluster without a good/mua/noise label)."""


class NwbError(BlechrsError, ValueError):
    """An NWB export that cannot be written as asked: a field NWB/DANDI needs missing from the
    ``.info`` file or a value in the wrong form."""


class MissingExtraError(BlechrsError, ImportError):
    """An optional extra (SpikeInterface, pynwb ...) that is not installed; the message says which
    ``pip install 'blechrs[...]'`` to run."""


class SpikeInterfaceError(BlechrsError, ValueError):
    """A SpikeInterface curation that cannot be applied to the unit store as it is (a merge of
    units of two electrodes, unit ids that are not the store's ...)."""
