"""Running the stages on a recording folder: resume, executors, reports.

``run`` is the whole chain; each stage is also its own function (and CLI subcommand):
``init`` -> ``extract`` -> ``cluster`` -> ``save_autosort`` (or ``post_process`` with a sort file),
then pictures, trial arrays and unit QA.
"""

from blechrs.pipeline.clustering import cluster
from blechrs.pipeline.executors import n_workers, start_pool
from blechrs.pipeline.extraction import extract, extraction_batches
from blechrs.pipeline.init_recording import describe_binary
from blechrs.pipeline.folder import car_group_ids, init, load_params, needs_init, read_layout, sorted_electrodes
from blechrs.pipeline.report import RunReport, stored_units_table
from blechrs.pipeline.chain import outputs_after_store, run, trials_and_qa
from blechrs.io.paths import autosort_sort_file_path
from blechrs.pipeline.store_units import post_process, save_autosort
from blechrs.schemes.sort_electrode import cluster_work, sort_electrode

__all__ = [
    "RunReport", "autosort_sort_file_path", "car_group_ids", "cluster", "cluster_work", "describe_binary", "extract",
    "extraction_batches", "init", "load_params", "n_workers", "needs_init", "outputs_after_store", "post_process", "read_layout", "run",
    "save_autosort", "sort_electrode", "sorted_electrodes", "start_pool", "stored_units_table", "trials_and_qa",
]
