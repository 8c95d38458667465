"""JudgePairs: judge one labelled preference pair with Think-RM's pairwise verdict, rewarded against the label."""
