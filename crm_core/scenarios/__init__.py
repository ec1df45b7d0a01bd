"""Scenario automation (ステップ配信): triggers computed in SQL, steps sent once through the live-send ledger."""
