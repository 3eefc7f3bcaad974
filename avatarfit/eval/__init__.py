"""The evaluation: the paper's Tables 6-9 (plan, cells, cache, process pool, orchestration,
reports, paired comparisons) and re-projection checks of captures."""
