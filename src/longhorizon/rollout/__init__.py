"""Running episodes: the batched runner and the policies it drives."""

from longhorizon.rollout.policies import (ModelPolicy, NoisyOraclePolicy, OraclePolicy, model_policy, oracle_action,
                                          scripted_policy, text_generator)
from longhorizon.rollout.runner import Action, EpisodeSpec, LiveEpisode, make_env, run_episodes

__all__ = ["Action", "EpisodeSpec", "LiveEpisode", "ModelPolicy", "NoisyOraclePolicy", "OraclePolicy", "make_env",
           "model_policy", "oracle_action", "run_episodes", "scripted_policy", "text_generator"]
