"""BC: behaviour cloning on the scripted expert's demonstrations, the baseline of Lynch et al. 2019.

The paper trains one BC policy per task on 100 expert demonstrations each; one agent here
acts on all 18 tasks in the goal env, so ours is multitask BC conditioned on the goal: a
demonstration's goal is its final state (not a hindsight window end), and the policy and loss
are Play-GCBC's (``agents/play_gcbc.py``), trained on ``envs/play_table/demos.py`` logs
instead of play. Demonstrations are short (26-100 steps), so the default window is 16.
The paper's multitask variant reports 66.2% (v2), its per-task experts 70.3%.
"""

from __future__ import annotations

from selfgym.agents.play_gcbc import PlayGCBCAgent


class BCAgent(PlayGCBCAgent):
    """Goal-conditioned BC on expert demonstrations; hyperparameters as ``OfflinePlayAgent``'s."""

    agent_name = "bc"
    dataset_kind = "expert_demos"
    goal_at_episode_end = True
