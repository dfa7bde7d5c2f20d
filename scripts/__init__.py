"""sockbench's scripts: small command-line tools that read result files and
write reports and figures (`report`, `compare`, `collect_criterion`), run
other programs beside sockbench (`webbench`, `crosscheck.peers`), and the
modules they share: `cli` (arguments, the one-line `fatal:`), `outputs`
(writes that never go through a link), `labels` (sizes, Markdown cells,
transport colours), `stats` (medians and bootstrap CIs, numpy/scipy), `runstats`
(comparing sets of runs, standard library only), `resultfiles` (reading
result directories and criterion's output), `webtable`, and `plots` (the
figures, by job: `base`, `by_size`, `by_layer`, `by_condition`).
Run each as a module from the repository root (`python3 -m scripts.report`)
or through its wrapper (`scripts/report`), which does that from anywhere.
"""
