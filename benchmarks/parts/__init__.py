"""The parts of the benchmark drivers that are not the driver: resumable runs (reused when
finished, continued when killed) and the data they train on."""
