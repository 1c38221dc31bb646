"""Running the stages on a recording folder: resume, executors, reports."""
