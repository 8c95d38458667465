"""StepCritic: find the first wrong step of a solution with a DeepCritic critique, rewarded against the verifier."""
