"""Running episodes: the batched runner and the policies it drives."""

from longhorizon.rollout.policies import (ModelPolicy, NoisyOraclePolicy, OraclePolicy, model_policy, scripted_policy,
                                          text_generator)
from longhorizon.rollout.runner import Action, EpisodeSpec, LiveEpisode, run_episodes

__all__ = ["Action", "EpisodeSpec", "LiveEpisode", "ModelPolicy", "NoisyOraclePolicy", "OraclePolicy",
           "model_policy", "run_episodes", "scripted_policy", "text_generator"]
