"""From the cache to the numbers users ask for (shared by the CLI, the report and the explorer).

    configurations  runs grouped by configuration; their seeds are replicates
    runs            one run loaded once: PreparedRun, prepare_run, path_costs_of
    summary         a configuration at theta (Summary of MeanStd), its curve, sweep
    tables          the paper's Tables 1-4, a run's cost per path
    calibration     reliability diagrams and the populations at theta
    report          the paper's tables and figures as files, REPRODUCTION.md
The math itself is in engine.metrics.
"""
