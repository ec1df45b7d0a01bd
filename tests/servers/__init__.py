"""Test helpers for messages: a LINE Messaging API mock, an SMTP sink and a tiny customer model."""
