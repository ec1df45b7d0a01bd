"""Stage 7 — planning: campaign plans around sale events (phases, recipients, conflicts) and message costs."""

__all__ = ["calendar_views", "costs", "frequency", "plan_editor", "planner"]
