"""The ReviewPulse service: settings, Faust app and agents, dead letters, store, CLI."""
