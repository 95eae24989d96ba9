"""Stage 2, generators: the plan (Table 1), generators (gan/), generating synthetic sets, and judging them."""
